"""The weekly staff report: what visitors asked and what the assistant did, from the tracker store.

Read from the `events` table of Rasa's SQLTrackerStore (SQLite or PostgreSQL; the connection as
bot/privacy/retention.py makes it), one row per event in tracker order (`id`). For a period
[start, end):

* conversations: distinct conversation ids with a visitor message (see below) in the period; staff
  conversations (user events with `input_channel` `matrix`) are left out entirely, and so are
  conversations whose only user event is the widget's `/session_start`;
* visitor messages: user events in the period, except payloads (`/session_start` from the widget,
  `/<item>` buttons, ...);
* the outcome of each visitor message, from the events that follow it up to the next user event
  (which may lie after `end`). Exactly one outcome per message, the first that applies:
  `escalated` (a bot message with `escalation` metadata; counted per level, the highest one),
  `handed_off` (slot `handoff_active` set true), `answered` (a bot message with `citation`),
  `clarified` (`action_clarify` offered buttons), `fallback` (intent `nlu_fallback` without
  clarification buttons, or `out_of_scope`), `product` (a bot message with `product`), `other`;
* the most cited article items (once per message), most cited first, ties by item id;
* response time: first bot message after a visitor message minus the message's timestamp, in ms;
  p50 and p95 by nearest rank (0 when there are none);
* questions still to review: the visitor messages the assistant fell back on or clarified, by
  exact lowercase text, most frequent first (ties alphabetical). Texts are as stored: redacted.

Imports nothing of Rasa. Only SQL tracker stores: Redis has no table to query.
"""
from __future__ import annotations

import datetime
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import sqlalchemy as sa
from babel.dates import format_date

from bot.contract import CITATION, ESCALATION, HANDOFF_SLOT, PRODUCT, intent_name
from bot.levels import NONE, SOON, URGENT_112, URGENT_NOW, max_level
from bot.privacy.retention import SQLConversationStore, sql_url
from bot.replies import LOCALE, reply

WEEK_S = 7 * 86400.0
STAFF_CHANNEL = "matrix"  # bot/channels/matrix.py: MatrixInput.name()
CLARIFY_ACTION = "action_clarify"
FALLBACK_INTENTS = ("nlu_fallback", "out_of_scope")
ESCALATION_LEVELS = (SOON, URGENT_NOW, URGENT_112)

ESCALATED, HANDED_OFF, ANSWERED, CLARIFIED, FALLBACK, PRODUCT_LINE, OTHER = (
    "escalated", "handed_off", "answered", "clarified", "fallback", "product", "other")
OUTCOMES = (ESCALATED, HANDED_OFF, ANSWERED, CLARIFIED, FALLBACK, PRODUCT_LINE, OTHER)
UNREVIEWED = (FALLBACK, CLARIFIED)

# Rasa's SQLTrackerStore table, the columns the report reads.
EVENTS = sa.table(
    "events",
    sa.column("id"), sa.column("sender_id"), sa.column("type_name"), sa.column("timestamp"),
    sa.column("intent_name"), sa.column("action_name"), sa.column("data"),
)
Events = Dict[str, List[Dict[str, Any]]]  # per conversation id, its events in tracker order


@dataclass(frozen=True)
class Turn:
    """One visitor message and what the assistant did about it."""

    sender_id: str
    text: str
    outcome: str
    level: str = NONE  # the escalation level, for `escalated`
    cited: Tuple[str, ...] = ()
    response_ms: Optional[int] = None
    event_id: int = 0  # the row of the user event in the events table
    timestamp: float = 0.0  # epoch seconds
    intent: Optional[str] = None
    confidence: Optional[float] = None  # of the intent, from the stored parse data
    next_text: Optional[str] = None  # the visitor's next message in the conversation, if any


def percentile(values: Iterable[int], fraction: float) -> int:
    """Nearest-rank percentile; 0 without values."""
    ordered = sorted(values)
    if not ordered:
        return 0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _share(count: int, total: int) -> int:
    return round(100 * count / total) if total else 0


@dataclass(frozen=True)
class WeeklyReport:
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    conversations: int = 0
    messages: int = 0
    outcomes: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    escalations: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(ESCALATION_LEVELS, 0))
    top_items: List[Tuple[str, int]] = field(default_factory=list)  # (item id, messages citing it)
    p50_ms: int = 0
    p95_ms: int = 0
    unreviewed: List[Tuple[str, int]] = field(default_factory=list)  # (lowercase text, times asked)

    def share(self, outcome: str) -> int:
        """The percentage (rounded) of visitor messages with this outcome; 0 without messages."""
        return _share(self.outcomes.get(outcome, 0), self.messages)

    def period(self) -> str:
        """E.g. '23–30 november' or '28 november–5 december' (local dates of start and end)."""
        first, last = (datetime.date.fromtimestamp(moment) for moment in (self.start, self.end))
        last_text = format_date(last, format="d MMMM", locale=LOCALE)
        if (first.year, first.month) == (last.year, last.month):
            return f"{first.day}–{last_text}"
        return f"{format_date(first, format='d MMMM', locale=LOCALE)}–{last_text}"

    def text(self) -> str:
        """The report for the staff room, in Dutch (bot/replies.yml `staff_report`)."""
        nothing = reply("staff_report_nothing")
        items = ", ".join(reply("staff_report_item", item=item, count=count) for item, count in self.top_items)
        questions = "; ".join(reply("staff_report_question", text=text, count=count) for text, count in self.unreviewed)
        return reply(
            "staff_report",
            period=self.period(),
            conversations=self.conversations,
            messages=self.messages,
            answered=self.share(ANSWERED),
            clarified=self.share(CLARIFIED),
            fallback=self.share(FALLBACK),
            soon=self.escalations[SOON],
            urgent_now=self.escalations[URGENT_NOW],
            urgent_112=self.escalations[URGENT_112],
            handed_off=self.outcomes[HANDED_OFF],
            top_items=items or nothing,
            p50=self.p50_ms,
            p95=self.p95_ms,
            questions=questions or nothing,
        )


# -- reading the events --------------------------------------------------------------------------
def _store(config: Mapping[str, Any]) -> SQLConversationStore:
    if str(config.get("type") or "").strip().lower() == "redis":
        raise ValueError("the staff report needs a SQL tracker store, not Redis")
    return SQLConversationStore(sql_url(config))


def _read(store: SQLConversationStore, query: sa.sql.Select) -> Events:
    conversations: Events = {}
    if store._absent():  # a SQLite file Rasa has not created: nothing stored, and none created
        return conversations
    with store.engine.connect() as connection:
        if not store._has_events(connection):
            return conversations
        for row_id, sender_id, type_name, timestamp, intent, action, data in connection.execute(query):
            try:
                event = json.loads(data or "{}")
            except ValueError:
                event = {}
            conversations.setdefault(sender_id, []).append({
                "id": int(row_id), "type": type_name, "timestamp": float(timestamp or 0.0), "intent": intent,
                "action": action, "event": event if isinstance(event, dict) else {},
            })
    return conversations


def _columns() -> sa.sql.Select:
    return sa.select(EVENTS.c.id, EVENTS.c.sender_id, EVENTS.c.type_name, EVENTS.c.timestamp,
                     EVENTS.c.intent_name, EVENTS.c.action_name, EVENTS.c.data)


def _events(store: SQLConversationStore, start: float, end: float) -> Events:
    """The events from `start` on (also after `end`: the answers to the period's last messages) of
    every conversation with a user event in the period, per conversation, in tracker order."""
    talking = (
        sa.select(EVENTS.c.sender_id)
        .where(EVENTS.c.type_name == "user", EVENTS.c.timestamp >= start, EVENTS.c.timestamp < end)
        .distinct()
    )
    query = (_columns().where(EVENTS.c.sender_id.in_(talking), EVENTS.c.timestamp >= start)
             .order_by(EVENTS.c.sender_id, EVENTS.c.id))
    return _read(store, query)


def conversation_events(config: Mapping[str, Any], sender_id: str) -> List[Dict[str, Any]]:
    """Every stored event of one conversation, in tracker order (each: id, type, timestamp, intent,
    action and the event's JSON as `event`); empty when the conversation is not stored."""
    with _store(config) as store:
        events = _read(store, _columns().where(EVENTS.c.sender_id == sender_id).order_by(EVENTS.c.id))
    return events.get(sender_id, [])


def _is_staff(events: List[Dict[str, Any]]) -> bool:
    return any(e["type"] == "user" and e["event"].get("input_channel") == STAFF_CHANNEL for e in events)


def _metadata(event: Mapping[str, Any]) -> Dict[str, Any]:
    return dict(event["event"].get("metadata") or {})


def _turn(sender_id: str, message: Dict[str, Any], following: List[Dict[str, Any]]) -> Turn:
    bots = [e for e in following if e["type"] == "bot"]
    metadata = [_metadata(e) for e in bots]
    levels = [str((m.get(ESCALATION) or {}).get("level") or NONE) for m in metadata if m.get(ESCALATION)]
    levels = [level for level in levels if level in ESCALATION_LEVELS]
    cited = tuple(dict.fromkeys(str(m[CITATION].get("item")) for m in metadata
                                if isinstance(m.get(CITATION), dict) and m[CITATION].get("item")))
    clarify = any(e["type"] == "action" and e["action"] == CLARIFY_ACTION for e in following)
    buttons = any((e["event"].get("data") or {}).get("buttons") for e in bots)
    handed_off = any(e["type"] == "slot" and e["event"].get("name") == HANDOFF_SLOT and e["event"].get("value") is True
                     for e in following)
    intent = message["intent"] or intent_name(message["event"].get("parse_data") or {})
    if levels:
        outcome = ESCALATED
    elif handed_off:
        outcome = HANDED_OFF
    elif cited:
        outcome = ANSWERED
    elif clarify and buttons:
        outcome = CLARIFIED
    elif clarify or intent in FALLBACK_INTENTS:
        outcome = FALLBACK
    elif any(m.get(PRODUCT) for m in metadata):
        outcome = PRODUCT_LINE
    else:
        outcome = OTHER
    response_ms = round((bots[0]["timestamp"] - message["timestamp"]) * 1000) if bots else None
    confidence = ((message["event"].get("parse_data") or {}).get("intent") or {}).get("confidence")
    return Turn(sender_id, str(message["event"].get("text") or ""), outcome,
                max_level(*levels) if levels else NONE, cited, response_ms,
                event_id=int(message.get("id") or 0), timestamp=message["timestamp"], intent=intent,
                confidence=float(confidence) if isinstance(confidence, (int, float)) else None)


def _visitor_text(event: Mapping[str, Any]) -> str:
    """The text of a visitor message, or "" for a payload (`/session_start`, a button) or an empty one."""
    text = str(event["event"].get("text") or "").strip()
    return "" if text.startswith("/") else text


def visitor_turns(config: Mapping[str, Any], start: float, end: float) -> List[Turn]:
    """Every visitor message of the period (staff conversations and payloads left out), classified."""
    with _store(config) as store:
        conversations = _events(store, start, end)
    return turns_of(conversations, start, end)


def turns_of(conversations: Events, start: float, end: float) -> List[Turn]:
    """The visitor messages in [start, end) of these conversations (staff conversations left out),
    each classified; `next_text` is the conversation's next visitor message, if any."""
    turns: List[Turn] = []
    for sender_id, events in conversations.items():
        if _is_staff(events):
            continue
        users = [i for i, e in enumerate(events) if e["type"] == "user"] + [len(events)]
        texts = [_visitor_text(events[i]) if i < len(events) else "" for i in users]
        for position, (here, following) in enumerate(zip(users, users[1:])):
            message = events[here]
            if not start <= message["timestamp"] < end or not texts[position]:
                continue
            later = next((text for text in texts[position + 1:] if text), None)
            turn = _turn(sender_id, message, events[here + 1:following])
            turns.append(replace(turn, next_text=later))
    return turns


def _unreviewed(turns: Iterable[Turn], limit: int) -> List[Tuple[str, int]]:
    counts = Counter(turn.text.strip().lower() for turn in turns if turn.outcome in UNREVIEWED)
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:limit]


def unreviewed_questions(config: Mapping[str, Any], start: float, end: float, limit: int = 5) -> List[Tuple[str, int]]:
    """The visitor messages of the period the assistant fell back on or clarified, as (lowercase
    text, times asked), most frequent first."""
    return _unreviewed(visitor_turns(config, start, end), limit)


def weekly_report(config: Mapping[str, Any], start: float, end: float, top: int = 5, questions: int = 5) -> WeeklyReport:
    """The figures of [start, end) (epoch seconds) from the tracker store of `config` (the
    `tracker_store:` section of endpoints.yml)."""
    return report_of(visitor_turns(config, start, end), start, end, top, questions)


def report_of(turns: List[Turn], start: float, end: float, top: int = 5, questions: int = 5) -> WeeklyReport:
    """The figures of these turns (the visitor messages of [start, end))."""
    outcomes = dict.fromkeys(OUTCOMES, 0)
    outcomes.update(Counter(turn.outcome for turn in turns))
    escalations = dict.fromkeys(ESCALATION_LEVELS, 0)
    escalations.update(Counter(turn.level for turn in turns if turn.outcome == ESCALATED))
    items = Counter(item for turn in turns for item in turn.cited)
    times = [turn.response_ms for turn in turns if turn.response_ms is not None]
    return WeeklyReport(
        start=start,
        end=end,
        conversations=len({turn.sender_id for turn in turns}),
        messages=len(turns),
        outcomes=outcomes,
        escalations=escalations,
        top_items=sorted(items.items(), key=lambda pair: (-pair[1], pair[0]))[:top],
        p50_ms=percentile(times, 0.50),
        p95_ms=percentile(times, 0.95),
        unreviewed=_unreviewed(turns, questions),
    )


def last_week(config: Mapping[str, Any], now: Optional[float] = None) -> WeeklyReport:
    """The report of the 7 days before `now` (default: the current time)."""
    now = time.time() if now is None else now
    return weekly_report(config, now - WEEK_S, now)
