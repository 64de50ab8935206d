"""Health data handled as health data (issue 15), on the real stack: the retention job, erasure on
a visitor's request, redaction at rest, private files, and logs without message text.

The stack's tracker store is bot.stores.tracker_store.PrivateSQLTrackerStore on SQLite (the
fixture's own file); its retention job runs every 2 s here (PURGE_INTERVAL_S, conftest.py). Unit
tests of the parts: tests/test_redaction.py, tests/test_retention.py; erasure from the staff room:
tests/test_matrix_channel.py; from the widget: tests/test_widget_browser.py.
"""
from __future__ import annotations

import sqlite3
import stat
import time
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
import requests

from bot import paths
from bot.cli import main as cli
from bot.tokens import ACTION_SERVER_TOKEN, secret
from conftest import ARTIFACTS, Conversation, stored_events

pytestmark = pytest.mark.without_matrix

DAY_S = 86400.0

# What a visitor might type, and the forms it must not be stored in
CONTACT_DETAILS: Dict[str, List[str]] = {
    "Mail me op j.de.vries+rug@voorbeeld.nl alsjeblieft": ["j.de.vries+rug@voorbeeld.nl", "voorbeeld.nl"],
    "Bel me terug op 06-12345678 of +31 6 87654321": ["06-12345678", "12345678", "87654321"],
    "Mijn BSN is 111222333, staat dat in mijn dossier?": ["111222333"],
    "Terugstorten op NL91 ABNA 0417 1643 00 graag": ["NL91 ABNA", "0417 1643", "NL91ABNA"],
    "Ik woon op 1234 AB 56 in Utrecht": ["1234 AB 56"],
    "Ik ben geboren op 12-03-1965": ["12-03-1965"],
}


def wait_until(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def buttons(replies: List[Dict]) -> List[str]:
    return [button["payload"] for reply in replies for button in reply.get("buttons") or []]


# --- retention ------------------------------------------------------------------------------

def test_the_retention_job_deletes_a_conversation_idle_past_the_retention(stack):
    idle, active = Conversation(stack.rest_url), Conversation(stack.rest_url)
    idle.say("Welke oefeningen helpen bij rugpijn?")
    active.say("Welke oefeningen helpen bij rugpijn?")
    assert stored_events(stack, idle.sender) > 0
    # as if the first conversation's last message were 31 days old (retention: 30 days)
    with sqlite3.connect(stack.tracker_db) as db:
        db.execute("UPDATE events SET timestamp = timestamp - ? WHERE sender_id = ?", (31 * DAY_S, idle.sender))
    assert wait_until(lambda: stored_events(stack, idle.sender) == 0), "the job did not delete the idle conversation"
    assert stored_events(stack, active.sender) > 0, "the job deleted a conversation within the retention"


# --- erasure on request -----------------------------------------------------------------------

def test_a_visitor_erases_their_conversation_after_confirming(stack):
    visitor = Conversation(stack.rest_url)
    visitor.say("Welke oefeningen helpen bij rugpijn?")
    question = visitor.say("verwijder mijn gesprek")
    assert "/confirm_erasure" in buttons(question) and "/cancel_erasure" in buttons(question)
    assert "wis" in question[0]["text"]
    assert stored_events(stack, visitor.sender) > 0, "erased before the visitor confirmed"

    done = " ".join(visitor.texts("/confirm_erasure"))
    assert "gewist" in done
    assert stored_events(stack, visitor.sender) == 0

    # a second request is harmless: asked again, erased again, nothing left
    assert "/confirm_erasure" in buttons(visitor.say("wis mijn gegevens"))
    assert "gewist" in " ".join(visitor.texts("/confirm_erasure"))
    assert stored_events(stack, visitor.sender) == 0
    # and the conversation goes on as a new one
    assert any("Bron:" in text for text in visitor.texts("Welke oefeningen helpen bij rugpijn?"))


def test_a_confirmation_out_of_the_blue_asks_first(stack):
    visitor = Conversation(stack.rest_url)
    visitor.say("Welke oefeningen helpen bij rugpijn?")
    replies = visitor.say("/confirm_erasure")
    assert "/confirm_erasure" in buttons(replies)
    assert stored_events(stack, visitor.sender) > 0


def test_cancelling_keeps_the_conversation(stack):
    visitor = Conversation(stack.rest_url)
    visitor.say("verwijder mijn gesprek")
    assert "niet" in " ".join(visitor.texts("/cancel_erasure"))
    assert stored_events(stack, visitor.sender) > 0


def test_an_escalated_conversation_keeps_its_advice_when_erased(stack):
    visitor = Conversation(stack.rest_url)
    visitor.say("Sinds vanochtend kan ik niet meer plassen en mijn rug doet pijn")
    visitor.say("verwijder mijn gesprek")
    done = " ".join(visitor.texts("/confirm_erasure"))
    assert "gewist" in done and ("huisarts" in done or "112" in done)
    assert stored_events(stack, visitor.sender) == 0


def test_the_cli_erases_one_conversation_by_id(stack):
    visitor = Conversation(stack.rest_url)
    visitor.say("Welke oefeningen helpen bij rugpijn?")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.ENDPOINTS_VARIABLE, str(Path(stack.tracker_db).parent / "endpoints.yml"))
        cli(["erase", visitor.sender])  # the command line, against the stack's files
        cli(["erase", visitor.sender])  # harmless
    assert stored_events(stack, visitor.sender) == 0


# --- redaction at rest ------------------------------------------------------------------------

def test_the_database_holds_no_contact_details_a_visitor_typed(stack):
    visitor = Conversation(stack.rest_url)
    for message in CONTACT_DETAILS:
        visitor.say(message)
    # the live turn still sees what was typed: a warning sign next to a phone number escalates
    referral = " ".join(visitor.texts("Bel me op 0612345678, ik kan sinds vanochtend niet meer plassen"))
    assert "huisarts" in referral or "112" in referral

    stored = [event.get("text") or "" for event in stack.tracker(visitor.sender)["events"] if event["event"] == "user"]
    assert any("[telefoonnummer]" in text for text in stored) and any("[e-mail]" in text for text in stored)
    database = b"".join(path.read_bytes() for path in Path(stack.tracker_db).parent.glob(Path(stack.tracker_db).name + "*"))
    for message, forms in CONTACT_DETAILS.items():
        for form in forms:
            assert form.encode() not in database, f"{form!r} is stored"
    assert b"0612345678" not in database


# --- private files and logs -------------------------------------------------------------------

def server_logs(stack) -> List[Path]:
    """The logs of the stack's own servers (rasa, actions, web)."""
    return [ARTIFACTS / "logs" / f"{service.name}.log" for service in stack.services]


def test_the_servers_files_are_private_whatever_the_umask(stack):
    files = [Path(stack.tracker_db), *server_logs(stack),
             *(p for p in paths.VAR_DIR.rglob("*") if p.is_file())]
    assert Path(stack.tracker_db).exists()
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
    assert stat.S_IMODE(paths.VAR_DIR.stat().st_mode) == 0o700


def test_logs_carry_no_message_text_not_even_after_an_action_error(stack):
    marker = f"geheim{uuid.uuid4().hex[:10]}"
    visitor = Conversation(stack.rest_url)
    visitor.say(f"Ik heb rugpijn en heet {marker}")
    visitor.say(f"Ik kan sinds vanochtend niet plassen, {marker}")
    # an action error: the escalation action called with slots it cannot read, the text in the tracker
    body = {"next_action": "action_escalate", "sender_id": visitor.sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": visitor.sender, "slots": {"warning_signs": 42, "escalation_level": 7},
                        "latest_message": {"text": marker, "intent": {"name": "report_warning_sign"}, "warning_signs": "?"},
                        "events": [{"event": "user", "text": marker, "parse_data": {"text": marker}}]}}
    response = requests.post(f"http://127.0.0.1:{stack.actions_port}/webhook", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {secret(ACTION_SERVER_TOKEN)}"})
    assert response.status_code == 500 and marker not in response.text
    time.sleep(1.0)  # let the servers flush their logs
    logs = server_logs(stack)
    assert len(logs) == 3 and all(path.exists() for path in logs)
    for path in logs:
        assert marker not in path.read_text(encoding="utf-8", errors="replace"), f"{path.name} holds message text"
