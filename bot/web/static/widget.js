// Starts the rasa-webchat widget with the options the page carries (#webchat-config, made by
// bot/web/app.py), names its icon-only buttons, makes its quick replies ("Bedoel je…?") work with
// the keyboard, shows the privacy notice, disarms links with a non-web scheme (rasa-webchat 1.0.1 renders bot Markdown
// without sanitizing link URLs), and resumes the conversation with the server's session token.
(function () {
  "use strict";

  var SAFE_LINK_PROTOCOLS = ["http:", "https:", "mailto:"];
  var SESSION_KEY = "chat_session"; // where rasa-webchat keeps its session (and we the token)

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

  function watchWidget(labels, privacyNotice) {
    var update = function () {
      disarmLinks(document.body);
      nameButtons(document.body, labels);
      makeRepliesFocusable(document.body);
      showPrivacyNotice(document.body, privacyNotice);
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
