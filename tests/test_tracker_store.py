"""bot/stores/tracker_store.py against a real SQLite file: what is written is redacted, a confirmed
erasure deletes the conversation instead of saving it, errors carry no message text."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.contract import ERASURE_CONFIRMED_SLOT, STAFF_USER
from bot.stores.tracker_store import PrivateSQLTrackerStore

DOMAIN = Domain.from_yaml(f"""
version: "3.1"
slots:
  {ERASURE_CONFIRMED_SLOT}: {{type: bool, influence_conversation: false, mappings: [{{type: custom}}]}}
  escalation_level: {{type: text, influence_conversation: false, mappings: [{{type: custom}}]}}
""")


@pytest.fixture
def store(tmp_path: Path) -> PrivateSQLTrackerStore:
    return PrivateSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "conversations.db"))


def rows(store: PrivateSQLTrackerStore, sender: str):
    with sqlite3.connect(store.engine.url.database) as db:
        return [json.loads(data) for (data,) in db.execute("SELECT data FROM events WHERE sender_id = ?", (sender,))]


def save(store: PrivateSQLTrackerStore, tracker: DialogueStateTracker) -> None:
    asyncio.run(store.save(tracker))


def test_what_people_typed_is_stored_redacted_the_assistants_own_text_as_sent(store):
    typed = "mail me op jan@voorbeeld.nl of bel 06-12345678"
    tracker = DialogueStateTracker.from_events("visitor", [
        UserUttered(typed, {"name": "request_human", "confidence": 1.0}, parse_data={"text": typed, "intent": {"name": "request_human"}}),
        BotUttered("Het artikel is gepubliceerd op 17 januari 2026."),
        BotUttered("Bericht van een medewerker: ik bel je op 06-87654321", metadata={STAFF_USER: "@staff:example.org"}),
    ], slots=DOMAIN.slots)
    save(store, tracker)
    stored = rows(store, "visitor")
    user = next(event for event in stored if event["event"] == "user")
    assert user["text"] == "mail me op [e-mail] of bel [telefoonnummer]"
    assert user["parse_data"]["text"] == user["text"] and user["parse_data"]["intent"]["name"] == "request_human"
    bots = [event["text"] for event in stored if event["event"] == "bot"]
    assert bots == ["Het artikel is gepubliceerd op 17 januari 2026.", "Bericht van een medewerker: ik bel je op [telefoonnummer]"]
    # the tracker Rasa reads back is the redacted one
    assert asyncio.run(store.retrieve("visitor")).latest_message.text == user["text"]


def test_a_confirmed_erasure_deletes_the_conversation_instead_of_saving_it(store):
    tracker = DialogueStateTracker.from_events("visitor", [UserUttered("hallo"), BotUttered("Hoi!")], slots=DOMAIN.slots)
    save(store, tracker)
    other = DialogueStateTracker.from_events("other", [UserUttered("hallo")], slots=DOMAIN.slots)
    save(store, other)
    tracker.update(UserUttered("/confirm_erasure"))
    tracker.update(SlotSet(ERASURE_CONFIRMED_SLOT, True))
    tracker.update(BotUttered("Je gesprek is gewist."))
    save(store, tracker)
    assert rows(store, "visitor") == [] and asyncio.run(store.retrieve("visitor")) is None
    assert len(rows(store, "other")) == 1
    save(store, DialogueStateTracker.from_events("visitor", [SlotSet(ERASURE_CONFIRMED_SLOT, True)], slots=DOMAIN.slots))
    assert rows(store, "visitor") == []  # a second erasure is harmless


def test_errors_hide_the_events_and_deleted_rows_are_overwritten(store):
    assert store.engine.hide_parameters
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_a_turn_read_and_saved_adds_its_new_events_once_without_counting_the_stored_ones(store):
    save(store, DialogueStateTracker.from_events("visitor", [UserUttered("hallo"), BotUttered("Hoi!")], slots=DOMAIN.slots))
    statements = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda conn, cursor, statement, *rest: statements.append(statement))
    tracker = asyncio.run(store.retrieve("visitor"))
    tracker.update(UserUttered("welke oefeningen helpen?"))
    tracker.update(BotUttered("Wandelen."))
    save(store, tracker)
    tracker.update(BotUttered("Nog iets?"))
    save(store, tracker)  # the same tracker saved again: only what is new since the first save
    assert [event.get("text") for event in rows(store, "visitor")] == [
        "hallo", "Hoi!", "welke oefeningen helpen?", "Wandelen.", "Nog iets?"]
    assert not [statement for statement in statements if "count(" in statement.lower()]
    # a tracker that was not read from the store: its stored events are counted, as Rasa does
    statements.clear()
    events = [event for event in tracker.events] + [BotUttered("Tot ziens.")]
    save(store, DialogueStateTracker.from_events("visitor", events, slots=DOMAIN.slots))
    assert [event.get("text") for event in rows(store, "visitor")][-2:] == ["Nog iets?", "Tot ziens."]
    assert [statement for statement in statements if "count(" in statement.lower()]
