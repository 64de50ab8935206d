"""The chat widget's socket.io channel gives each socket only its own visitor's conversation
(bot/channels/webchat.py, bot/channels/session_keys.py), against the real stack.

Each test plays the widget, or someone imitating it, with python-socketio's Client: the attack is
the request a test sends, the assertions are what the server did with it. Requests are sent with
`call` (the server acknowledges once its handler is done, i.e. after Rasa processed an accepted
message), so a dropped message is known to be dropped, not merely late.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import socketio

QUESTION = "Welke oefeningen helpen tegen rugpijn?"
FOLLOW_UP = "Wat is het DAVID Spine-programma?"
CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")
REPLY_TIMEOUT = 60.0


class Visitor:
    """One socket.io client speaking rasa-webchat's protocol to the Rasa server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = socketio.Client()
        self.replies: List[str] = []  # bot_uttered texts, in order
        self.confirmations: List[Any] = []  # session_confirm payloads
        self.client.on("bot_uttered", lambda data: self.replies.append((data or {}).get("text") or ""))
        self.client.on("session_confirm", self.confirmations.append)

    def connect(self) -> "Visitor":
        self.client.connect(self.url, socketio_path="/socket.io", transports=["polling"], wait_timeout=30)
        return self

    def disconnect(self) -> None:
        if self.client.connected:
            self.client.disconnect()

    def request_session(self, session_id: Optional[str] = None) -> Dict[str, str]:
        """session_request as the widget sends it; the server's session_confirm."""
        before = len(self.confirmations)
        self.client.call("session_request", {"session_id": session_id}, timeout=30)
        wait_until(lambda: len(self.confirmations) > before, "no session_confirm")
        confirmed = self.confirmations[-1]
        assert isinstance(confirmed, dict), confirmed
        return confirmed

    def send(self, text: str, session_id: Optional[str]) -> None:
        """user_uttered as the widget sends it; returns when the server has handled it."""
        self.client.call("user_uttered", {"message": text, "session_id": session_id}, timeout=REPLY_TIMEOUT)

    def ask(self, text: str, session_id: str) -> List[str]:
        """Send and wait for the bot's answer (the replies that came in for it)."""
        before = len(self.replies)
        self.send(text, session_id)
        wait_until(lambda: len(self.replies) > before, f"no reply to {text!r}")
        return self.replies[before:]


def wait_until(condition: Callable[[], bool], message: str, timeout: float = REPLY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def user_texts(stack, conversation_id: str) -> List[str]:
    return [event.get("text") for event in stack.tracker(conversation_id)["events"] if event["event"] == "user"]


def forged_signature(conversation_id: str) -> str:
    """What an attacker can make without the server's key: an HMAC under a key of their own."""
    digest = hmac.new(secrets.token_bytes(32), conversation_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def visitors(stack) -> Iterator[Callable[[], Visitor]]:
    """Connected clients, disconnected after the test."""
    made: List[Visitor] = []

    def make() -> Visitor:
        made.append(Visitor(stack.url).connect())
        return made[-1]

    yield make
    for visitor in made:
        visitor.disconnect()


def test_server_issues_a_signed_session_and_answers(stack, visitors):
    visitor = visitors()
    # the widget's first session_request carries no id
    confirmed = visitor.request_session(None)
    conversation, token = confirmed["session_id"], confirmed["session_token"]
    assert CONVERSATION_ID.fullmatch(conversation)
    signature = token.removeprefix(f"{conversation}.")
    assert signature != token and len(signature) >= 43  # <conversation id>.<HMAC-SHA256, base64url>

    answer = visitor.ask(QUESTION, conversation)
    assert any("Bron: " in text for text in answer), answer
    # Rasa's sender id is the conversation id; the token (the secret part) is nobody's sender id
    assert QUESTION in user_texts(stack, conversation)
    assert user_texts(stack, token) == []


@pytest.mark.parametrize("attack", ["bare conversation id", "forged signature", "tampered token", "no session"])
def test_another_visitors_conversation_cannot_be_joined_or_written_to(stack, visitors, attack):
    victim = visitors()
    victim_session = victim.request_session(None)
    conversation, token = victim_session["session_id"], victim_session["session_token"]
    victim.ask(QUESTION, conversation)

    # the attacker knows the victim's conversation id (staff see it in hand-off notices)
    attacker = visitors()
    claimed = {
        "bare conversation id": conversation,
        "forged signature": f"{conversation}.{forged_signature(conversation)}",
        "tampered token": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "no session": None,
    }[attack]
    if claimed is not None:
        # attack 1: ask to join the victim's conversation
        attacker_session = attacker.request_session(claimed)
        # refused: a new conversation of its own, not the victim's
        assert attacker_session["session_id"] != conversation
        assert CONVERSATION_ID.fullmatch(attacker_session["session_id"])
        assert attacker_session["session_token"] != token

    # attack 2: post into the victim's conversation, by its id and by the claimed token
    attack_text = f"bericht van een ander {secrets.token_hex(4)}"
    attacker.send(attack_text, conversation)
    attacker.send(attack_text + " (token)", claimed or conversation)
    # the server dropped both (call returned after its handler: an accepted message would be in
    # the tracker by now, with the bot's replies sent)
    assert not any(attack_text in (text or "") for text in user_texts(stack, conversation))

    # the victim's conversation goes on, and its replies reach the victim only
    replies_for_victim = victim.ask(FOLLOW_UP, conversation)
    assert replies_for_victim
    time.sleep(2)  # room for a stray bot_uttered to reach the attacker over polling
    assert attacker.replies == [], f"the attacker received {attacker.replies}"
    assert user_texts(stack, conversation).count(FOLLOW_UP) == 1


def test_own_signed_token_resumes_the_conversation(stack, visitors):
    first = visitors()
    session = first.request_session(None)
    conversation, token = session["session_id"], session["session_token"]
    first.ask(QUESTION, conversation)
    first.disconnect()  # the page reloads: a new socket

    again = visitors()
    # the widget (bot/web/static/widget.js) asks to resume with the token the server gave it
    resumed = again.request_session(token)
    assert resumed == {"session_id": conversation, "session_token": token}
    answer = again.ask(FOLLOW_UP, conversation)
    assert answer
    texts = user_texts(stack, conversation)
    assert QUESTION in texts and FOLLOW_UP in texts

    # a message may name the conversation by its token too; Rasa's sender stays the conversation id
    again.ask("Hoe lang duurt het herstel?", token)
    assert "Hoe lang duurt het herstel?" in user_texts(stack, conversation)
    assert user_texts(stack, token) == []


@pytest.mark.parametrize("command, expected", [("/restart", "restart"), ('/greet{"x":1}', 'greet{"x":1}')])
def test_slash_commands_arrive_as_plain_text(stack, visitors, command, expected):
    visitor = visitors()
    conversation = visitor.request_session(None)["session_id"]
    visitor.send("/session_start", conversation)  # the widget's own payload still passes
    visitor.ask(QUESTION, conversation)

    # the attack: a Rasa command typed into the widget
    visitor.send(command, conversation)
    events = stack.tracker(conversation)["events"]
    texts = [event.get("text") for event in events if event["event"] == "user"]
    assert texts[0] == "/session_start"
    assert expected in texts and command not in texts
    assert not any(text.startswith("/") for text in texts[1:])
    # it was read as text: no restart, no intent or entity taken from the payload
    assert not any(event["event"] == "restart" for event in events)
    assert QUESTION in texts  # the conversation was not wiped
    parsed = next(event for event in reversed(events) if event["event"] == "user")["parse_data"]
    assert parsed["text"] == expected
    assert not any(entity.get("entity") == "x" for entity in parsed.get("entities") or [])
