// Starts the rasa-webchat widget with the options the page carries (#webchat-config, made by
// bot/web/app.py), names its icon-only buttons, makes its quick replies ("Bedoel je…?") work with
// the keyboard, and disarms links with a non-web scheme (rasa-webchat 1.0.1 renders bot Markdown
// without sanitizing link URLs).
(function () {
  "use strict";

  var SAFE_LINK_PROTOCOLS = ["http:", "https:", "mailto:"];

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

  function watchWidget(labels) {
    var update = function () {
      disarmLinks(document.body);
      nameButtons(document.body, labels);
      makeRepliesFocusable(document.body);
    };
    new MutationObserver(update).observe(document.body, { childList: true, subtree: true });
    update();
  }

  function start() {
    var config = readConfig();
    var options = Object.assign({}, config.widget, {
      customMessageDelay: function () {
        return config.messageDelayMs;
      },
    });
    watchWidget(config.labels || {});
    window.WebChat.default(options, null);
  }

  start();
})();
