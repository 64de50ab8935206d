"""The weekly staff report (bot/staff/report.py) against a real SQLite tracker store, written by this
project's PrivateSQLTrackerStore (Rasa's SQLTrackerStore with redaction at rest)."""
from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.contract import CITATION, ESCALATION, HANDOFF_SLOT, PRODUCT
from bot.staff.report import WeeklyReport, last_week, percentile, unreviewed_questions, weekly_report
from bot.stores.tracker_store import PrivateSQLTrackerStore

DAY = 86400.0
NOW = datetime.datetime(2024, 11, 30, 12, 0).timestamp()  # local time: the period is 23–30 november
START = NOW - 7 * DAY
VAGUE = "Hmm iets vaags"

DOMAIN = Domain.from_yaml(
    f"""
version: '3.1'
intents: [oefeningen, david_spine, nlu_fallback, out_of_scope, report_warning_sign, request_human, thanks, products, session_start]
slots:
  {HANDOFF_SLOT}:
    type: bool
    initial_value: false
    mappings: [{{type: custom}}]
"""
)


class Builder:
    """Events of one conversation with explicit timestamps (epoch seconds)."""

    def __init__(self, channel: str = "rest") -> None:
        self.channel = channel
        self.events: List[Event] = []

    def user(self, at: float, text: str, intent: str) -> Builder:
        parse_data = {"intent": {"name": intent, "confidence": 0.9}, "entities": [], "text": text}
        self.events.append(UserUttered(text, intent=parse_data["intent"], parse_data=parse_data, timestamp=at,
                                       input_channel=self.channel))
        return self

    def bot(self, at: float, text: str = "antwoord", buttons: Optional[List[Dict[str, Any]]] = None, **metadata: Any) -> Builder:
        self.events.append(BotUttered(text, data={"buttons": buttons} if buttons else {}, metadata=metadata, timestamp=at))
        return self

    def action(self, at: float, name: str) -> Builder:
        self.events.append(ActionExecuted(name, timestamp=at))
        return self

    def slot(self, at: float, name: str, value: Any) -> Builder:
        self.events.append(SlotSet(name, value, timestamp=at))
        return self


def cite(item: str) -> Dict[str, Any]:
    return {CITATION: {"item": item, "heading": f"Kop van {item}"}}


def escalate(level: str) -> Dict[str, Any]:
    return {ESCALATION: {"level": level, "signs": ["x"], "time": "nu"}}


BUTTONS = [{"title": "Oefeningen", "payload": "/oefeningen"}]


def conversations() -> Dict[str, Builder]:
    a, b, c = START + 1 * DAY, START + 2 * DAY, START + 3 * DAY
    return {
        # 3 visitor messages: answered (100 ms), answered with two items (200 ms), clarified (300 ms)
        "bezoeker-a": Builder("socketio")
        .user(START - DAY, "oude vraag over oefeningen", "oefeningen").bot(START - DAY + 1, **cite("oud_item"))  # before the period
        .user(a, "/session_start", "session_start").action(a + 0.01, "action_session_start").bot(a + 0.02, "Welkom")
        .user(a + 10, "Welke oefeningen helpen tegen rugpijn?", "oefeningen").action(a + 10.05, "action_article")
        .bot(a + 10.1, **cite("oefeningen")).action(a + 10.2, "action_listen")
        .user(a + 20, "Wat is DAVID Spine?", "david_spine").bot(a + 20.2, **cite("david_spine"))
        .bot(a + 20.3, **cite("behandeling")).bot(a + 20.4, "Uit onze winkel", **{PRODUCT: "david"})
        .user(a + 30, VAGUE, "nlu_fallback").action(a + 30.1, "action_clarify").bot(a + 30.3, "Bedoel je…?", buttons=BUTTONS)
        .user(a + 40, "/oefeningen", "oefeningen").bot(a + 40.1, **cite("oefeningen")),  # a button: not a visitor message
        # 4: escalated urgent_now (400 ms), handed off (500 ms), answered (150 ms), fallback: clarify without buttons (600 ms)
        "bezoeker-b": Builder()
        .user(b, "ik kan niet meer plassen", "report_warning_sign").bot(b + 0.4, "Bel je huisarts", **escalate("urgent_now"))
        .user(b + 10, "ik wil een medewerker", "request_human").slot(b + 10.1, HANDOFF_SLOT, True).bot(b + 10.5, "Collega")
        .user(b + 20, "Welke oefeningen helpen tegen rugpijn?", "oefeningen").bot(b + 20.15, **cite("oefeningen"))
        .user(b + 30, VAGUE, "nlu_fallback").action(b + 30.1, "action_clarify").bot(b + 30.6, "Dat weet ik niet"),
        # 6: fallback out_of_scope (250), escalated 112 (350), escalated soon (450), fallback nlu_fallback (700),
        # product (50), other (80); then a message after the period
        "bezoeker-c": Builder()
        .user(c, "wat kost een auto?", "out_of_scope").bot(c + 0.25, "Daar gaat het artikel niet over")
        .user(c + 10, "druk op de borst", "report_warning_sign").bot(c + 10.35, "Bel 112", **escalate("urgent_112"))
        .bot(c + 10.4, **escalate("soon"))  # the highest level counts
        .user(c + 20, "rugpijn al weken", "report_warning_sign").bot(c + 20.45, **escalate("soon"))
        .user(c + 30, VAGUE.upper(), "nlu_fallback").bot(c + 30.7, "Dat begrijp ik niet")
        .user(c + 40, "welke producten hebben jullie", "products").bot(c + 40.05, **{PRODUCT: "kussen"})
        .user(c + 50, "dank je", "thanks").bot(c + 50.08, "Graag gedaan")
        .user(NOW + 60, VAGUE, "nlu_fallback").action(NOW + 60.1, "action_clarify").bot(NOW + 60.2, buttons=BUTTONS),
        # only outside the period
        "oud": Builder().user(START - 3 * DAY, VAGUE, "nlu_fallback").bot(START - 3 * DAY + 0.1, "Dat begrijp ik niet"),
        # only the widget opening
        "alleen-start": Builder("socketio").user(START + DAY, "/session_start", "session_start").bot(START + DAY + 0.1, "Welkom"),
        # staff in the Matrix room: left out entirely
        "@staff:localhost@!room:localhost": Builder("matrix")
        .user(START + DAY, "Welke oefeningen helpen tegen rugpijn?", "oefeningen").bot(START + DAY + 5, **cite("staff_item"))
        .user(START + DAY + 10, VAGUE, "nlu_fallback").action(START + DAY + 10.1, "action_clarify")
        .bot(START + DAY + 10.2, buttons=BUTTONS),
    }


@pytest.fixture
def config(tmp_path: Path) -> Dict[str, Any]:
    db = tmp_path / "conversations.db"
    store = PrivateSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(db))
    try:
        for sender_id, builder in conversations().items():
            tracker = DialogueStateTracker.from_events(sender_id, builder.events, slots=DOMAIN.slots)
            asyncio.run(store.save(tracker))
    finally:
        store.engine.dispose()
    return {"type": "bot.stores.tracker_store.PrivateSQLTrackerStore", "dialect": "sqlite", "db": str(db)}


def test_every_figure_of_the_week(config: Dict[str, Any]) -> None:
    report = last_week(config, now=NOW)
    assert (report.start, report.end) == (START, NOW)
    assert report.conversations == 3  # a, b, c: not the staff room, not the old one, not the widget opening only
    assert report.messages == 13  # no /session_start, no button payload, nothing outside the period
    assert report.outcomes == {"escalated": 3, "handed_off": 1, "answered": 3, "clarified": 1, "fallback": 3,
                               "product": 1, "other": 1}
    assert report.escalations == {"soon": 1, "urgent_now": 1, "urgent_112": 1}
    assert (report.share("answered"), report.share("clarified"), report.share("fallback")) == (23, 8, 23)
    assert report.top_items == [("oefeningen", 2), ("behandeling", 1), ("david_spine", 1)]
    # 50 80 100 150 200 250 300 350 400 450 500 600 700: nearest rank 7 and 13 of 13
    assert (report.p50_ms, report.p95_ms) == (300, 700)
    assert report.unreviewed == [("hmm iets vaags", 3), ("wat kost een auto?", 1)]


def test_the_dutch_text(config: Dict[str, Any]) -> None:
    assert last_week(config, now=NOW).text() == (
        "Rapport 23–30 november: 3 gesprekken, 13 berichten; beantwoord uit het artikel 23 %, verduidelijkt 8 %, "
        "niet begrepen 23 %, doorverwezen: 1 binnen enkele dagen, 1 huisarts nu, 1 112; overgedragen 1. "
        "Meest gevraagd: oefeningen (2×), behandeling (1×), david_spine (1×). Antwoordtijd p50 300 ms, p95 700 ms. "
        "Nog te bekijken: “hmm iets vaags” (3×); “wat kost een auto?” (1×)."
    )


def test_unreviewed_questions(config: Dict[str, Any]) -> None:
    assert unreviewed_questions(config, START, NOW) == [("hmm iets vaags", 3), ("wat kost een auto?", 1)]
    assert unreviewed_questions(config, START, NOW, limit=1) == [("hmm iets vaags", 3)]
    # the message after the period, and the old conversation's, count in their own periods
    assert unreviewed_questions(config, NOW, NOW + DAY) == [("hmm iets vaags", 1)]
    assert unreviewed_questions(config, START - 4 * DAY, START) == [("hmm iets vaags", 1)]


def test_another_period(config: Dict[str, Any]) -> None:
    report = weekly_report(config, START - 4 * DAY, START)  # the old conversation and a's first message
    assert (report.conversations, report.messages) == (2, 2)
    assert report.outcomes["answered"] == 1 and report.outcomes["fallback"] == 1
    assert report.top_items == [("oud_item", 1)]
    assert (report.p50_ms, report.p95_ms) == (100, 1000)


def test_an_empty_store_gives_zeros(tmp_path: Path) -> None:
    missing = tmp_path / "nog-niet.db"
    report = last_week({"type": "SQL", "dialect": "sqlite", "db": str(missing)}, now=NOW)
    assert not missing.exists(), "looking must not create the database"
    empty = tmp_path / "leeg.db"
    PrivateSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(empty)).engine.dispose()  # the table, no rows
    assert last_week({"type": "SQL", "dialect": "sqlite", "db": str(empty)}, now=NOW) == report
    assert (report.conversations, report.messages, report.p50_ms, report.p95_ms) == (0, 0, 0, 0)
    assert set(report.outcomes.values()) == {0} and set(report.escalations.values()) == {0}
    assert report.share("answered") == 0 and report.top_items == [] and report.unreviewed == []
    assert report.text() == (
        "Rapport 23–30 november: 0 gesprekken, 0 berichten; beantwoord uit het artikel 0 %, verduidelijkt 0 %, "
        "niet begrepen 0 %, doorverwezen: 0 binnen enkele dagen, 0 huisarts nu, 0 112; overgedragen 0. "
        "Meest gevraagd: geen. Antwoordtijd p50 0 ms, p95 0 ms. Nog te bekijken: geen."
    )


def test_redis_is_refused() -> None:
    with pytest.raises(ValueError, match="SQL"):
        last_week({"type": "redis", "url": "localhost"}, now=NOW)


def test_period_across_months_and_percentiles() -> None:
    end = datetime.datetime(2024, 12, 3, 9, 0).timestamp()
    assert WeeklyReport(start=end - 7 * DAY, end=end).period() == "26 november–3 december"
    assert percentile([], 0.5) == 0
    assert percentile([5], 0.95) == 5
    assert percentile(range(1, 101), 0.5) == 50 and percentile(range(1, 101), 0.95) == 95
