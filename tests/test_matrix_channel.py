"""The staff channel against a real homeserver: Synapse (conftest `matrix`) pushes the staff room's
events to the Matrix channel of the real Rasa server; staff questions, hand-offs and commands."""
from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from typing import Callable, Dict, List
from urllib.parse import quote

import pytest
import requests

from bot.channels.matrix import PATH_SAFE
from conftest import ARTIFACTS, Conversation, MatrixSetup

STAFF_QUESTIONS = [
    "Welke oefeningen helpen tegen rugpijn?",
    "Wat is het DAVID Spine-programma?",
    "Wanneer moet je naar een fysiotherapeut of arts?",
]


def bot_messages(matrix: MatrixSetup, until: Callable[[str], bool], timeout: float = 60.0) -> List[str]:
    """The bot's new messages in the staff room, up to and including the first for which `until` holds."""
    seen: List[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in matrix.staff.sync(timeout_ms=int(min(10.0, deadline - time.monotonic()) * 1000)):
            if event["room_id"] == matrix.room and event["type"] == "m.room.message" and event["sender"] == matrix.settings.bot_user:
                seen.append(event["content"]["body"])
                if until(seen[-1]):
                    return seen
    raise AssertionError(f"no matching message from the bot within {timeout:.0f} s; got {seen}")


def tracker_events(stack, conversation_id: str) -> List[Dict]:
    url = stack.api_url(f"/conversations/{quote(conversation_id, safe=PATH_SAFE)}/tracker?include_events=ALL")
    return requests.get(url, timeout=30).json()["events"]


def staff_conversation(matrix: MatrixSetup) -> str:
    return f"{matrix.staff.user_id}@{matrix.room}"


def ask_staff_question(matrix: MatrixSetup, question: str) -> List[str]:
    """Staff ask; returns the bot's messages up to its cited answer."""
    matrix.staff.sync()
    matrix.staff.say(matrix.room, question)
    return bot_messages(matrix, lambda body: "Bron:" in body)


def test_staff_questions_get_cited_answers_and_latency_is_measured(stack, matrix):
    seconds = []
    for question in STAFF_QUESTIONS:
        matrix.staff.sync()
        start = time.perf_counter()
        matrix.staff.say(matrix.room, question)
        messages = bot_messages(matrix, lambda body: "Bron:" in body)
        seconds.append(time.perf_counter() - start)
        assert not any("Uit onze winkel" in message for message in messages)
    report = {
        "what": "staff sends a question in the Matrix room -> the bot's cited answer appears in the room (client sync)",
        "questions": STAFF_QUESTIONS,
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "max_s": round(max(seconds), 3),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "matrix_latency.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print(f"\nMatrix staff round trip: {report['seconds']} s (median {report['median_s']} s)")
    events = tracker_events(stack, staff_conversation(matrix))
    assert {event.get("input_channel") for event in events if event["event"] == "user"} == {"matrix"}


def test_staff_get_the_policy_text_not_an_escalation(stack, matrix):
    matrix.staff.sync()
    matrix.staff.say(matrix.room, "Een bezoeker schrijft: ik kan sinds vanmorgen niet meer plassen")
    messages = bot_messages(matrix, lambda body: body.startswith("Beleidstekst (niveau "))
    assert "Beleidstekst (niveau urgent_now): " in messages[-1] and "huisarts" in messages[-1]
    # no escalation of the staff conversation, so no hand-off notice about it
    ask_staff_question(matrix, "Welke oefeningen helpen tegen rugpijn?")  # the conversation has settled
    url = stack.api_url(f"/conversations/{quote(staff_conversation(matrix), safe=PATH_SAFE)}/tracker")
    slots = requests.get(url, timeout=30).json()["slots"]
    assert slots["escalation_level"] == "none" and not slots["handoff_active"]


def test_hand_off_round_trip(stack, matrix):
    visitor = Conversation(stack.rest_url)
    visitor.say("hoi, je kunt me mailen op jan.jansen@example.nl of bellen op 06-12345678")
    matrix.staff.sync()
    texts = visitor.texts("ik wil een medewerker spreken")
    assert any("collega" in text and "Anodyne-team" in text for text in texts)

    # the notice of this request (notices leave the outbox after the reply: wait for this one; the
    # first message, which offers contact details, may itself be read as a request for a person)
    notice = bot_messages(matrix, lambda body: body.startswith("Overdracht:") and visitor.sender in body
                          and "bezoeker: ik wil een medewerker spreken" in body)[-1]
    assert f"Gesprek: {visitor.sender} (kanaal: rest)" in notice and "Niveau: none" in notice
    assert "bezoeker: ik wil een medewerker spreken" in notice
    assert "[e-mail]" in notice and "[telefoonnummer]" in notice
    assert "jan.jansen" not in notice and "12345678" not in notice

    # a staff reply reaches the visitor's conversation as a bot utterance
    matrix.staff.say(matrix.room, f"!antwoord {visitor.sender} Hoi Jan, ik bel je vanmiddag.")
    bot_messages(matrix, lambda body: body == f"Verstuurd naar {visitor.sender}.")
    delivered = [e for e in tracker_events(stack, visitor.sender) if e["event"] == "bot" and "ik bel je vanmiddag" in (e.get("text") or "")]
    assert delivered and delivered[-1]["text"] == "Bericht van een medewerker van het Anodyne-team: Hoi Jan, ik bel je vanmiddag."

    # the visitor's next messages are mirrored to the room
    visitor.say("ik ben vanaf drie uur thuis")
    bot_messages(matrix, lambda body: body == f"[{visitor.sender}] bezoeker: ik ben vanaf drie uur thuis")

    # until staff close the hand-off
    matrix.staff.say(matrix.room, f"!klaar {visitor.sender}")
    bot_messages(matrix, lambda body: body.startswith(f"Overdracht van {visitor.sender} afgesloten"))
    matrix.staff.sync()
    visitor.say("welke oefeningen helpen tegen rugpijn?")
    later = ask_staff_question(matrix, "Wat is het DAVID Spine-programma?")  # a full round trip later
    assert not any(visitor.sender in message for message in later)


def test_staff_reply_is_pushed_to_the_chat_widget(stack, matrix):
    """A visitor on the socket.io channel (the widget) sees the staff reply at once."""
    import socketio

    received: List[str] = []
    client = socketio.Client()
    client.on("bot_uttered", lambda data: received.append(data.get("text") or ""))
    confirmed: List[Dict] = []
    client.on("session_confirm", confirmed.append)

    def wait_for(words: str) -> None:
        deadline = time.monotonic() + 60
        while not any(words in text for text in received):
            assert time.monotonic() < deadline, f"no {words!r} in {received}"
            time.sleep(0.1)

    client.connect(stack.url, socketio_path="/socket.io", transports=["polling"], wait_timeout=30)
    try:
        client.call("session_request", {"session_id": None}, timeout=30)  # the server issues the session
        deadline = time.monotonic() + 30
        while not confirmed:
            assert time.monotonic() < deadline, "no session_confirm"
            time.sleep(0.05)
        session_id = confirmed[-1]["session_id"]  # the conversation id: Rasa's sender id, in the notice
        matrix.staff.sync()
        client.emit("user_uttered", {"message": "ik wil een medewerker spreken", "session_id": session_id})
        wait_for("collega")
        notice = bot_messages(matrix, lambda body: body.startswith("Overdracht:") and session_id in body)[-1]
        assert "(kanaal: socketio)" in notice
        matrix.staff.say(matrix.room, f"!antwoord {session_id} Hallo, ik help je verder.")
        wait_for("Bericht van een medewerker van het Anodyne-team: Hallo, ik help je verder.")
    finally:
        client.disconnect()


def test_staff_erase_a_conversation(stack, matrix):
    visitor = Conversation(stack.rest_url)
    visitor.say("Welke oefeningen helpen tegen rugpijn?")
    visitor.say("ik wil een medewerker spreken")  # a hand-off is open: messages are mirrored
    assert any(e["event"] == "user" for e in tracker_events(stack, visitor.sender))
    matrix.staff.sync()
    matrix.staff.say(matrix.room, f"!vergeet {visitor.sender}")
    erased = bot_messages(matrix, lambda body: body.startswith(f"Gesprek {visitor.sender} is gewist"))[-1]
    assert "gebeurtenissen" in erased
    assert not any(e["event"] == "user" for e in tracker_events(stack, visitor.sender)), "a stored row is left"
    matrix.staff.say(matrix.room, f"!vergeet {visitor.sender}")  # a second request is harmless
    bot_messages(matrix, lambda body: body == f"Van gesprek {visitor.sender} is niets (meer) bewaard.")
    # the hand-off ended with the conversation: a new message under the same id is not mirrored
    visitor.say("nog een vraag over oefeningen")
    later = ask_staff_question(matrix, "Wat is het DAVID Spine-programma?")  # a full round trip later
    assert not any(visitor.sender in message for message in later)


def test_unknown_conversation_and_usage(stack, matrix):
    matrix.staff.sync()
    matrix.staff.say(matrix.room, "!antwoord bestaat-niet-123 hallo")
    bot_messages(matrix, lambda body: body == "Gesprek bestaat-niet-123 bestaat niet.")
    matrix.staff.say(matrix.room, "!antwoord")
    bot_messages(matrix, lambda body: body.startswith("Opdrachten: "))


def transaction(stack, matrix: MatrixSetup, txn_id: str, events: List[Dict], **auth) -> requests.Response:
    url = f"{stack.url}/webhooks/matrix/_matrix/app/v1/transactions/{txn_id}"
    headers = {"Authorization": f"Bearer {auth['token']}"} if auth.get("token") else {}
    params = {"access_token": auth["legacy"]} if auth.get("legacy") else {}
    return requests.put(url, json={"events": events}, headers=headers, params=params, timeout=30)


def message_event(room: str, sender: str, text: str) -> Dict:
    return {
        "type": "m.room.message", "room_id": room, "sender": sender, "event_id": f"${uuid.uuid4().hex}",
        "origin_server_ts": int(time.time() * 1000), "content": {"msgtype": "m.text", "body": text},
    }


def test_a_replayed_transaction_is_handled_once(stack, matrix):
    marker = uuid.uuid4().hex[:8]
    question = f"Welke oefeningen helpen tegen rugpijn? ({marker})"
    elsewhere = message_event("!ander:localhost", matrix.staff.user_id, f"Welke oefeningen helpen? ({marker})")
    events = [message_event(matrix.room, matrix.staff.user_id, question), elsewhere]
    txn_id = f"replay-{marker}"
    matrix.staff.sync()
    for _ in range(2):
        assert transaction(stack, matrix, txn_id, events, token=matrix.settings.hs_token).status_code == 200
    bot_messages(matrix, lambda body: "Bron:" in body)
    ask_staff_question(matrix, "Wat is het DAVID Spine-programma?")  # anything queued behind it is done
    asked = [e for e in tracker_events(stack, staff_conversation(matrix)) if e["event"] == "user" and e.get("text") == question]
    assert len(asked) == 1
    assert not any(e["event"] == "user" for e in tracker_events(stack, f"{matrix.staff.user_id}@!ander:localhost"))


@pytest.mark.parametrize("auth, status", [({}, 401), ({"token": "wrong"}, 403), ({"legacy": "wrong"}, 403)])
def test_wrong_homeserver_token_is_refused(stack, matrix, auth, status):
    event = message_event(matrix.room, matrix.staff.user_id, "dit mag niet aankomen")
    response = transaction(stack, matrix, f"bad-{uuid.uuid4().hex}", [event], **auth)
    assert response.status_code == status
    assert response.json()["errcode"] == ("M_UNAUTHORIZED" if status == 401 else "M_FORBIDDEN")


def test_legacy_query_token_is_accepted(stack, matrix):
    assert transaction(stack, matrix, f"legacy-{uuid.uuid4().hex}", [], legacy=matrix.settings.hs_token).status_code == 200


def test_staff_report_in_the_room(stack, matrix):
    visitor = Conversation(stack.rest_url)
    visitor.say("Welke oefeningen helpen tegen rugpijn?")
    visitor.say("ik weet het niet zo goed, iets met dingen")
    matrix.staff.sync()
    matrix.staff.say(matrix.room, "!rapport")
    report = bot_messages(matrix, lambda body: body.startswith("Rapport "))[-1]
    counts = re.search(r": (\d+) gesprekken, (\d+) berichten; beantwoord uit het artikel (\d+) %", report)
    assert counts, report
    conversations, messages, answered = map(int, counts.groups())
    assert conversations >= 1 and messages >= 2 and answered > 0, report
    assert "Antwoordtijd p50 " in report and "Nog te bekijken: " in report
