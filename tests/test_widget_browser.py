"""The chat widget on the demo page, in a real browser (Debian's chromium driven by Playwright).

Against the real stack (conftest's `stack`: Rasa, actions and the demo page on free ports):
keyboard use, the introduction, a cited answer, the conversation surviving a reload (same sender
in Rasa's tracker), the referral for a red flag, and hostile text staying text. A second test puts
hostile *bot* text on the page through a stub socket.io server, since the real bot never echoes.
Screenshots go to tests/artifacts/screenshots/.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from typing import List
from urllib.parse import urlsplit

import socketio
from aiohttp import web

from bot.stack import free_port
from bot.web.app import WebConfig, create_app
from conftest import SCREENSHOTS, stored_events

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
REPLY_TIMEOUT_MS = 30_000

QUESTION = "Welke oefeningen helpen tegen rugpijn?"
FOLLOW_UP = "Wat is het DAVID Spine-programma?"
RED_FLAG = "Ik heb rugpijn en kan sinds vanochtend mijn plas niet ophouden"
REFERRAL = re.compile(r"112|huisarts|spoedeisende", re.IGNORECASE)
# the last one tends to get "Bedoel je…?" with quick replies, which the keyboard check then uses
XSS_PAYLOADS = ["[klik](javascript:alert(1))", "<img src=x onerror=alert(1)>"]
HOSTILE_BOT_TEXT = (
    '<img src=x onerror="window.__xss=1"> '
    "[klik](javascript:window.__xss=1) [ook](JaVaScRiPt:alert(1)) "
    "[web](https://example.org/)"
)


class ChatPage:
    """One browser tab on the demo page, recording what could reveal injected code."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: List[str] = []
        self.requests: List[str] = []
        self.errors: List[str] = []
        page.on("dialog", self._on_dialog)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.set_default_timeout(REPLY_TIMEOUT_MS)

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector(".rw-launcher", state="visible")

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def tab_to(self, selector: str, limit: int = 60) -> None:
        """Press Tab until the element matching `selector` has the keyboard focus."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            if self.page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    def focus_outline(self) -> str:
        """The outline the focused element shows, when it matches :focus-visible."""
        return self.page.evaluate(
            """() => { const e = document.activeElement;
                       if (!e.matches(':focus-visible')) return 'none';
                       const s = getComputedStyle(e); return s.outlineStyle + ' ' + s.outlineWidth; }"""
        )

    def open_chat_with_keyboard(self) -> None:
        self.tab_to(".rw-launcher")
        assert self.focus_outline().startswith("solid"), "the focused launcher shows no outline"
        self.page.keyboard.press("Enter")
        self.page.wait_for_selector(".rw-conversation-container", state="visible")

    def responses(self) -> List[str]:
        return self.page.locator(".rw-response").all_inner_texts()

    def client_messages(self) -> List[str]:
        return self.page.locator(".rw-client").all_inner_texts()

    def wait_for_response(self, pattern: str, after: int = 0) -> str:
        """The first bot message after the first `after` ones whose text matches `pattern`."""
        self.page.wait_for_function(
            """([pattern, after]) => [...document.querySelectorAll('.rw-response')].slice(after)
                 .some(e => new RegExp(pattern, 'i').test(e.innerText))""",
            arg=[pattern, after],
        )
        return next(text for text in self.responses()[after:] if re.search(pattern, text, re.IGNORECASE))

    def type_and_send(self, text: str) -> int:
        """Type into the focused message field and press Enter; the number of earlier replies."""
        before = len(self.responses())
        field = self.page.locator(".rw-new-message")
        if not self.page.evaluate("() => document.activeElement.matches('.rw-new-message')"):
            field.focus()
        self.page.keyboard.type(text)
        self.page.keyboard.press("Enter")
        self.page.locator(".rw-client", has_text=text).last.wait_for()
        return before

    def ask(self, text: str, expected: str) -> str:
        return self.wait_for_response(expected, after=self.type_and_send(text))

    def settle(self, quiet_ms: int = 1200, rounds: int = 20) -> None:
        """Wait until the bot has stopped typing and no message arrived for `quiet_ms`."""
        count = -1
        for _ in range(rounds):
            if count == len(self.responses()) and not self.page.locator(".rw-typing-indication").count():
                return
            count = len(self.responses())
            self.page.wait_for_timeout(quiet_ms)

    def session_id(self) -> str:
        session = self.page.evaluate("() => sessionStorage.getItem('chat_session')")
        assert session, "the widget stored no session"
        return json.loads(session)["session_id"]

    def injected_images(self) -> int:
        return self.page.locator("#rasaWebchatPro img[src='x'], #rasaWebchatPro img[onerror]").count()

    def script_links(self) -> int:
        return self.page.evaluate(
            """() => [...document.querySelectorAll('#rasaWebchatPro a[href]')]
                 .filter(a => !/^(https?|mailto):/i.test(a.href)).length"""
        )

    def assert_inert(self) -> None:
        assert self.dialogs == [], f"a script ran: {self.dialogs}"
        assert self.page.evaluate("() => window.__xss") is None
        assert self.injected_images() == 0
        assert self.script_links() == 0
        assert self.errors == [], self.errors


def tracker_user_texts(stack, sender: str) -> List[str]:
    return [event.get("text") for event in stack.tracker(sender)["events"] if event["event"] == "user"]


def test_chat_widget_in_the_browser(stack, browser):
    context = browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
    chat = ChatPage(context.new_page())
    try:
        chat.open(stack.web_url)
        assert "digitale assistent" in chat.page.inner_text("#assistant-note")
        assert "geen diagnose" in chat.page.inner_text("#assistant-note")
        chat.screenshot("01-page")

        # keyboard: Tab to the launcher (visible focus), Enter opens, the introduction follows
        chat.open_chat_with_keyboard()
        assert "digitale assistent" in chat.wait_for_response("digitale assistent")
        assert chat.page.get_attribute(".rw-new-message", "placeholder") == "Typ je vraag…"
        chat.screenshot("02-introduction")

        # typing + Enter sends; the answer names its source
        answer = chat.ask(QUESTION, r"Bron: ")
        assert re.search(r"oefening", answer, re.IGNORECASE)
        chat.screenshot("03-answer")
        sender = chat.session_id()
        assert QUESTION in tracker_user_texts(stack, sender)

        # the send button is reachable and shows its focus too
        chat.page.keyboard.type("test")
        chat.tab_to(".rw-send")
        assert chat.focus_outline().startswith("solid"), "the focused send button shows no outline"
        chat.page.locator(".rw-new-message").fill("")

        # reload: the history is still there and the conversation goes on under the same sender
        chat.page.reload()
        chat.page.wait_for_selector(".rw-launcher", state="visible")
        if not chat.page.locator(".rw-conversation-container").is_visible():
            chat.open_chat_with_keyboard()
        chat.page.locator(".rw-client", has_text=QUESTION).wait_for()
        assert any("Bron: " in text for text in chat.responses())
        assert chat.session_id() == sender
        chat.ask(FOLLOW_UP, r"Bron: .*Therapeutische invalshoeken")
        user_texts = tracker_user_texts(stack, sender)
        assert QUESTION in user_texts and FOLLOW_UP in user_texts
        assert user_texts.count("/session_start") <= 1, "the reload started the conversation again"
        chat.screenshot("04-after-reload")

        # a red flag gets the referral
        referral = chat.ask(RED_FLAG, REFERRAL.pattern)
        assert REFERRAL.search(referral) and "Bron:" not in referral  # a referral, not an article answer
        chat.screenshot("05-red-flag")

        # hostile input stays text
        chat.settle()
        for payload in XSS_PAYLOADS:
            before = chat.type_and_send(payload)
            assert payload in chat.client_messages()
            chat.wait_for_response(".", after=before)  # the bot answered it
        chat.settle()  # room for any injected handler to run
        chat.assert_inert()
        chat.screenshot("06-hostile-input")

        # quick replies ("Bedoel je…?", when the bot is unsure) work with the keyboard too
        if chat.page.locator("div.rw-reply").count():
            chat.tab_to("div.rw-reply")
            assert chat.focus_outline().startswith("solid"), "the focused quick reply shows no outline"
            before = len(chat.responses())
            chat.page.keyboard.press("Enter")
            chat.wait_for_response(r"Bron: ", after=before)
            chat.screenshot("07-quick-reply")

        # nothing left the machine: every request went to this stack
        outside = [url for url in chat.requests if urlsplit(url).hostname not in LOCAL_HOSTS and not url.startswith("data:")]
        assert outside == []
    finally:
        context.close()


def test_privacy_notice_and_erasure_in_the_widget(stack, browser):
    """The chat opens with the privacy notice; "verwijder mijn gesprek" asks, the button erases."""
    context = browser.new_context(locale="nl-NL", viewport={"width": 390, "height": 800})  # a phone
    chat = ChatPage(context.new_page())
    try:
        chat.open(stack.web_url)
        chat.open_chat_with_keyboard()
        notice = chat.page.locator(".rw-messages-container .privacy-notice")
        notice.wait_for(state="visible")
        text = notice.inner_text()
        assert "digitale assistent" in text and "30 dagen" in text and "verwijder mijn gesprek" in text
        chat.ask(QUESTION, r"Bron: ")
        sender = chat.session_id()
        assert stored_events(stack, sender) > 0
        chat.screenshot("08-privacy-notice")

        chat.ask("verwijder mijn gesprek", r"Wil je dat ik dit gesprek wis")
        assert stored_events(stack, sender) > 0, "erased before the visitor confirmed"
        before = len(chat.responses())
        chat.page.locator("div.rw-reply", has_text="Ja, wis mijn gesprek").click()
        chat.wait_for_response(r"gewist", after=before)
        chat.screenshot("09-erased")
        assert stored_events(stack, sender) == 0
        assert chat.errors == [], chat.errors
    finally:
        context.close()


# --- hostile bot text, through a stub socket.io server on the page's own origin ---------------


class HostileBotServer:
    """The demo page plus a socket.io server that answers every message with `reply`."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.runner: web.AppRunner | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _application(self) -> web.Application:
        app = create_app(WebConfig(socket_url=self.url))
        sio = socketio.AsyncServer(async_mode="aiohttp")
        sio.attach(app)

        @sio.on("session_request")
        async def session_request(sid, data):
            await sio.emit("session_confirm", (data or {}).get("session_id") or uuid.uuid4().hex, room=sid)

        @sio.on("user_uttered")
        async def user_uttered(sid, data):
            await sio.emit("bot_uttered", {"text": self.reply}, room=sid)

        return app

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self._application())
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)  # socket.io's ping and service tasks
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def __enter__(self) -> "HostileBotServer":
        self.thread.start()
        assert self.ready.wait(30), "stub server did not start"
        return self

    def __exit__(self, *exc) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        except TimeoutError:
            pass  # a socket still open; the loop stops anyway
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_hostile_bot_text_stays_inert(browser):
    with HostileBotServer(HOSTILE_BOT_TEXT) as server:
        context = browser.new_context(locale="nl-NL")
        chat = ChatPage(context.new_page())
        popups: List[str] = []  # tabs a clicked link opened
        context.on("page", lambda page: popups.append(page.url))
        try:
            chat.open(server.url)
            chat.open_chat_with_keyboard()
            chat.wait_for_response("klik")  # the stub answers the start payload
            for link in chat.page.locator("#rasaWebchatPro .rw-response a:not([href^='https:'])").all():
                link.click()
            chat.page.wait_for_timeout(1000)
            chat.assert_inert()
            assert popups == []
            # the safe link stays a link; the image markup is shown as text
            assert chat.page.locator("#rasaWebchatPro a[href='https://example.org/']").count() >= 1
            assert "<img src=x" in chat.responses()[0]
            chat.screenshot("08-hostile-bot-text")
        finally:
            context.close()


def cited_items(stack, sender: str) -> List[dict]:
    """The `citation` metadata ({"item", "heading"}) of the bot's messages, in order."""
    events = stack.tracker(sender)["events"]
    return [
        event["metadata"]["citation"]
        for event in events
        if event["event"] == "bot" and (event.get("metadata") or {}).get("citation")
    ]


def test_citation_link_leads_to_the_section(stack, browser):
    """The `Bron:` line of an answer links to the item it cites on the page (issue 18 item 5)."""
    context = browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
    chat = ChatPage(context.new_page())
    console_errors: List[str] = []
    chat.page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    try:
        chat.open(stack.web_url)
        chat.open_chat_with_keyboard()
        chat.wait_for_response("digitale assistent")
        before = len(chat.responses())
        answer = chat.ask(QUESTION, r"Bron: ")

        # the item the bot cited, as the tracker has it (the tracker is saved just after the reply)
        sender = chat.session_id()
        for _ in range(20):
            citations = cited_items(stack, sender)
            if citations:
                break
            chat.page.wait_for_timeout(250)
        assert citations, "the tracker has no cited answer"
        citation = citations[-1]
        assert f"Bron: {citation['heading']}" in answer

        # the Bron: line is a real link to that item's anchor, named by the heading
        response = chat.page.locator(".rw-response").nth(before)
        link = response.locator("a.citation-link")
        link.wait_for()
        assert link.count() == 1
        assert link.get_attribute("href") == f"#{citation['item']}"
        assert link.inner_text().strip() == citation["heading"]
        assert chat.page.get_by_role("link", name=citation["heading"]).count() == 1
        assert chat.page.evaluate("id => !!document.getElementById(id)", citation["item"])
        assert "Bron: " in response.inner_text()  # the line itself stays as it was
        assert chat.script_links() == 0  # disarmLinks keeps it (a link into this page)

        # following it scrolls the page to the section; the chat stays open with the conversation
        assert chat.page.evaluate("() => window.scrollY") == 0
        link.click()
        chat.page.wait_for_function("hash => location.hash === hash", arg=f"#{citation['item']}")
        assert chat.page.evaluate("() => location.hash") == f"#{citation['item']}"
        in_view = chat.page.evaluate(
            """id => { const box = document.getElementById(id).getBoundingClientRect();
                       return box.top >= 0 && box.top < window.innerHeight && box.bottom > 0; }""",
            citation["item"],
        )
        assert in_view, "the cited section is not in the viewport"
        assert chat.page.evaluate("id => document.querySelector(':target') === document.getElementById(id)", citation["item"])
        assert chat.page.locator(".rw-conversation-container").is_visible()
        assert any(f"Bron: {citation['heading']}" in text for text in chat.responses())
        chat.screenshot("10-citation-link")

        assert chat.errors == [], chat.errors
        assert console_errors == [], console_errors
    finally:
        context.close()
