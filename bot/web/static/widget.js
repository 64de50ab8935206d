// Starts the rasa-webchat widget with the options the page carries (#webchat-config, made by
// bot/web/app.py), names its icon-only buttons, makes its quick replies ("Bedoel je…?") work with
// the keyboard, shows the privacy notice, disarms links with a non-web scheme (rasa-webchat 1.0.1 renders bot Markdown
// without sanitizing link URLs), turns an answer's `Bron:` line into a link to that part of the
// article on this page, and resumes the conversation with the server's session token.
(function () {
  "use strict";

  var SAFE_LINK_PROTOCOLS = ["http:", "https:", "mailto:"];
  var SESSION_KEY = "chat_session"; // where rasa-webchat keeps its session (and we the token)
  var SOURCE_LINE_PREFIX = "Bron: "; // bot/replies.py SOURCE_LINE_PREFIX
  var CITATION_CHECKED = "citationChecked"; // data-citation-checked on a bot message: done

  function readConfig() {
    return JSON.parse(document.getElementById("webchat-config").textContent);
  }

  function isSafeLink(href) {
    try {
      return SAFE_LINK_PROTOCOLS.indexOf(new URL(href, document.baseURI).protocol) !== -1;
    } catch (error) {
      return false;
    }
  }

  function disarmLinks(root) {
    root.querySelectorAll("a[href]").forEach(function (link) {
      if (!isSafeLink(link.getAttribute("href"))) {
        link.removeAttribute("href");
      }
    });
  }

  function nameButtons(root, labels) {
    Object.keys(labels).forEach(function (selector) {
      root.querySelectorAll(selector).forEach(function (element) {
        if (!element.hasAttribute("aria-label")) {
          element.setAttribute("aria-label", labels[selector]);
        }
      });
    });
  }

  function onReplyKey(event) {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      event.currentTarget.click();
    }
  }

  function makeRepliesFocusable(root) {
    root.querySelectorAll("div.rw-reply:not([tabindex])").forEach(function (reply) {
      reply.setAttribute("tabindex", "0");
      reply.setAttribute("role", "button");
      reply.addEventListener("keydown", onReplyKey);
    });
  }

  // What is kept, how long, how to erase it (site.yml privacy_notice): the first thing in the
  // conversation, put back whenever the widget renders its message list anew (open, reload).
  function showPrivacyNotice(root, text) {
    if (!text) {
      return;
    }
    root.querySelectorAll(".rw-messages-container").forEach(function (messages) {
      if (!messages.querySelector(".privacy-notice")) {
        var notice = document.createElement("p");
        notice.className = "privacy-notice";
        notice.setAttribute("role", "note");
        notice.textContent = text;
        messages.insertBefore(notice, messages.firstChild);
      }
    });
  }

  // -- "Bron:" lines as links to the article on this page (issue 18 item 5) ----------------------
  // An answer from the article ends with `Bron: <citation>` (bot/replies.yml): a section's heading,
  // "Veelgestelde vragen – <question>" for an FAQ entry, the article title for the intro and the
  // "about" answer, "Bronnen" for the sources. The page renders each of them with an anchor (the
  // item id; templates/index.html). Only the text is compared, after normalising (case, accents
  // kept, punctuation and dashes ignored), and only this page's own ids are linked: bot text is
  // only ever set as textContent.

  function normalisedText(text) {
    return (text || "").normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  }

  function addHeading(map, text, id) {
    var key = normalisedText(text);
    if (key && id && !Object.prototype.hasOwnProperty.call(map, key)) {
      map[key] = id; // the first one on the page wins
    }
  }

  // The intro (its item id, templates/index.html) as the place the article title leads to.
  function titleTargetId(main) {
    var target = main.querySelector("section.intro[id]");
    return target ? target.id : null;
  }

  function buildHeadingMap() {
    var map = Object.create(null);
    var main = document.querySelector("main") || document.body;
    main.querySelectorAll("section[id] > h2").forEach(function (heading) {
      addHeading(map, heading.textContent, heading.parentElement.id);
    });
    main.querySelectorAll("h3[id]").forEach(function (heading) {
      addHeading(map, heading.textContent, heading.id);
      // the FAQ format: "<heading of the FAQ section> – <question>"
      var section = heading.closest("section");
      var sectionHeading = section && section.querySelector("h2");
      if (sectionHeading) {
        addHeading(map, sectionHeading.textContent + " " + heading.textContent, heading.id);
      }
    });
    var title = main.querySelector("h1");
    if (title) {
      var titleId = titleTargetId(main);
      addHeading(map, title.textContent, titleId);
    }
    return map;
  }

  var headingMap = null;

  function citedId(citation) {
    headingMap = headingMap || buildHeadingMap();
    var id = headingMap[normalisedText(citation)];
    if (!id) {
      // another prefix before the heading ("Iets: <heading>", "Iets – <heading>")
      var separator = /\s*(?:[:\u2013\u2014]|\s-)\s+/.exec(citation);
      if (separator) {
        id = headingMap[normalisedText(citation.slice(separator.index + separator[0].length))];
      }
    }
    return id && document.getElementById(id) ? id : null;
  }

  // Is `node` (a text node) at the start of a line: first in its block, or after a line break?
  function startsLine(node) {
    var previous = node.previousSibling;
    if (!previous) {
      return true;
    }
    if (previous.nodeType === Node.ELEMENT_NODE) {
      return previous.tagName === "BR";
    }
    return previous.nodeType === Node.TEXT_NODE && /\n$/.test(previous.nodeValue);
  }

  // The "Bron: …" line in `node`'s text: { start of the citation, its end } or null.
  function sourceLineIn(node) {
    var text = node.nodeValue;
    var at = text.indexOf(SOURCE_LINE_PREFIX);
    while (at !== -1) {
      if (at > 0 ? text.charAt(at - 1) === "\n" : startsLine(node)) {
        var start = at + SOURCE_LINE_PREFIX.length;
        var end = text.indexOf("\n", start);
        end = end === -1 ? text.length : end;
        if (text.slice(start, end).trim()) {
          return { start: start, end: end };
        }
      }
      at = text.indexOf(SOURCE_LINE_PREFIX, at + 1);
    }
    return null;
  }

  function citationLink(citation, id) {
    var link = document.createElement("a");
    link.className = "citation-link";
    link.setAttribute("href", "#" + id);
    link.textContent = citation; // the cited heading is the link's accessible name
    link.addEventListener("click", onCitationClick);
    return link;
  }

  // The chat stays open; only where it covers the whole page (a phone) does it close so the
  // section can be read: rasa-webchat keeps the conversation and shows it again when reopened.
  function onCitationClick(event) {
    var widget = event.currentTarget.closest(".rw-widget-container");
    if (!widget) {
      return;
    }
    window.setTimeout(function () {
      var box = widget.getBoundingClientRect();
      var coversPage = box.width >= window.innerWidth * 0.9 && box.height >= window.innerHeight * 0.9;
      var close = coversPage && widget.querySelector(".rw-close-button");
      if (close) {
        close.click();
      }
    }, 0);
  }

  function linkCitation(response) {
    var walker = document.createTreeWalker(response, NodeFilter.SHOW_TEXT);
    var node;
    while ((node = walker.nextNode())) {
      if (node.parentElement && node.parentElement.closest("a")) {
        continue;
      }
      var line = sourceLineIn(node);
      var citation = line && node.nodeValue.slice(line.start, line.end).trim();
      var id = citation && citedId(citation);
      if (id) {
        // split the text node: "…Bron: " stays, the citation becomes the link, the rest follows
        var cited = node.splitText(line.start);
        cited.splitText(line.end - line.start);
        cited.parentNode.replaceChild(citationLink(citation, id), cited);
        return;
      }
    }
  }

  function linkCitations(root) {
    root.querySelectorAll(".rw-response").forEach(function (response) {
      if (response.dataset[CITATION_CHECKED] || response.textContent.indexOf(SOURCE_LINE_PREFIX) === -1) {
        return;
      }
      response.dataset[CITATION_CHECKED] = "true";
      linkCitation(response);
    });
  }

  function watchWidget(labels, privacyNotice) {
    var update = function () {
      disarmLinks(document.body);
      nameButtons(document.body, labels);
      makeRepliesFocusable(document.body);
      showPrivacyNotice(document.body, privacyNotice);
      linkCitations(document.body);
    };
    new MutationObserver(update).observe(document.body, { childList: true, subtree: true });
    update();
  }

  // The Rasa server resumes a conversation only for the session token it signed (see
  // bot/channels/webchat.py); rasa-webchat keeps the confirmed conversation id
  // (chat_session.session_id, the sender id in Rasa) and asks to resume with that bare id, which
  // the server would answer with a new conversation. So: keep the token the server confirms next
  // to the id, and put it in the widget's session_request in place of the id it belongs to.
  function widgetStorage(widget) {
    return widget.params && widget.params.storage === "session" ? window.sessionStorage : window.localStorage;
  }

  function readSession(storage) {
    try {
      return JSON.parse(storage.getItem(SESSION_KEY)) || null;
    } catch (error) {
      return null;
    }
  }

  function keepSessionToken(storage, confirmed) {
    if (!confirmed || typeof confirmed.session_token !== "string") {
      return;
    }
    var session = readSession(storage) || {};
    session.session_token = confirmed.session_token;
    storage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  function tokenFor(storage, sessionId) {
    var session = readSession(storage);
    var token = session && session.session_token;
    var ownToken = typeof token === "string" && typeof sessionId === "string" && token.indexOf(sessionId + ".") === 0;
    return ownToken ? token : null;
  }

  function resumeWithToken(socket, storage) {
    if (socket.__resumesWithToken) {
      return;
    }
    socket.__resumesWithToken = true;
    var emit = socket.emit;
    socket.emit = function (event, data) {
      var args = Array.prototype.slice.call(arguments);
      var token = event === "session_request" && data ? tokenFor(storage, data.session_id) : null;
      if (token) {
        args[1] = Object.assign({}, data, { session_id: token });
      }
      return emit.apply(this, args);
    };
    // after rasa-webchat's own handler, which stores the confirmed id
    socket.on("session_confirm", function (confirmed) {
      keepSessionToken(storage, confirmed);
    });
  }

  function start() {
    var config = readConfig();
    var storage = widgetStorage(config.widget);
    var options = Object.assign({}, config.widget, {
      customMessageDelay: function () {
        return config.messageDelayMs;
      },
      // rasa-webchat calls socket handlers with the socket.io socket as `this`; this one runs
      // before the widget's own, which sends the session_request
      onSocketEvent: {
        connect: function () {
          resumeWithToken(this, storage);
        },
      },
    });
    watchWidget(config.labels || {}, config.privacyNotice);
    window.WebChat.default(options, null);
  }

  start();
})();
