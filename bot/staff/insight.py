"""The staff page's figures: the weekly report's figures (bot/staff/report.py) over any number of
days, split per local day, and the recent escalations. Read once from the tracker store per request.

Imports nothing of Rasa and nothing of bot/web.
"""
from __future__ import annotations

import datetime
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bot.contract import CITATION, ESCALATION, ORIGINAL_INTENT, intent_name, search_hits, warning_signs
from bot.levels import NONE
from bot.staff.report import ESCALATED, Turn, WeeklyReport, conversation_events, percentile, report_of, visitor_turns

DAY_S = 86400.0
DEFAULT_DAYS = 7
MAX_DAYS = 90  # the page shows at most this many days (the retention period is usually shorter)
RECENT_ESCALATIONS = 20


@dataclass(frozen=True)
class DayFigures:
    """One local calendar day."""

    day: datetime.date
    conversations: int
    messages: int
    p50_ms: int
    p95_ms: int


@dataclass(frozen=True)
class Escalation:
    """A visitor message that got a referral, for the review of escalations."""

    sender_id: str
    timestamp: float
    level: str
    text: str


@dataclass(frozen=True)
class Insight:
    report: WeeklyReport  # the period's figures, as `!rapport` computes them
    days: List[DayFigures]  # every day of the period, oldest first, days without messages included
    escalations: List[Escalation]  # most recent first


def clamp_days(days: Any, default: int = DEFAULT_DAYS) -> int:
    """A number of days from a query string: an integer in 1..MAX_DAYS, else `default`."""
    try:
        value = int(days)
    except (TypeError, ValueError):
        return default
    return min(MAX_DAYS, max(1, value))


def per_day(turns: List[Turn], start: float, end: float) -> List[DayFigures]:
    """The figures of each local day from `start` to `end` (inclusive of both days)."""
    by_day: Dict[datetime.date, List[Turn]] = defaultdict(list)
    for turn in turns:
        by_day[datetime.date.fromtimestamp(turn.timestamp)].append(turn)
    first = datetime.date.fromtimestamp(start)
    last = datetime.date.fromtimestamp(max(start, end - 1e-6))
    days: List[DayFigures] = []
    day = first
    while day <= last:
        turns_of_day = by_day.get(day, [])
        times = [turn.response_ms for turn in turns_of_day if turn.response_ms is not None]
        days.append(DayFigures(day, len({turn.sender_id for turn in turns_of_day}), len(turns_of_day),
                               percentile(times, 0.50), percentile(times, 0.95)))
        day += datetime.timedelta(days=1)
    return days


def escalations(turns: List[Turn], limit: int = RECENT_ESCALATIONS) -> List[Escalation]:
    """The escalated visitor messages, most recent first."""
    escalated = sorted((turn for turn in turns if turn.outcome == ESCALATED), key=lambda turn: -turn.timestamp)
    return [Escalation(turn.sender_id, turn.timestamp, turn.level, turn.text) for turn in escalated[:limit]]


def insight_of(turns: List[Turn], start: float, end: float, top: int = 10, questions: int = 10) -> Insight:
    return Insight(report_of(turns, start, end, top, questions), per_day(turns, start, end), escalations(turns))


def insight(config: Mapping[str, Any], days: int = DEFAULT_DAYS, now: Optional[float] = None) -> Insight:
    """The figures of the `days` days before `now` from the tracker store of `config`."""
    end = time.time() if now is None else now
    start = end - clamp_days(days) * DAY_S
    return insight_of(visitor_turns(config, start, end), start, end)


# -- one conversation, for the review of escalations ----------------------------------------------
@dataclass(frozen=True)
class Line:
    """One message of a conversation with what the assistant decided about it."""

    who: str  # "user" or "bot"
    timestamp: float
    text: str
    intent: Optional[str] = None  # user: the final intent
    original_intent: Optional[str] = None  # user: the classifier's, when a warning sign overrode it
    confidence: Optional[float] = None
    level: str = NONE  # user: the level the warning-sign detector found; bot: the referral's level
    signs: Tuple[str, ...] = ()  # user: the signs found (sign id and layer)
    search_item: Optional[str] = None  # user: the best article_search hit
    cited: Optional[str] = None  # bot: the article item cited
    buttons: Tuple[str, ...] = ()  # bot: the titles of the buttons offered


def _user_line(event: Mapping[str, Any]) -> Line:
    data = event["event"]
    parse = data.get("parse_data") or {}
    detection = warning_signs(parse)
    signs = tuple(f"{sign.get('sign_id')} ({sign.get('layer') or '?'})" for sign in detection.get("signs") or []
                  if isinstance(sign, dict))
    hits = search_hits(parse)
    confidence = (parse.get("intent") or {}).get("confidence")
    return Line(
        "user", event["timestamp"], str(data.get("text") or ""),
        intent=event.get("intent") or intent_name(parse),
        original_intent=(parse.get(ORIGINAL_INTENT) or {}).get("name"),
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        level=str(detection.get("level") or NONE), signs=signs,
        search_item=str(hits[0].get("item")) if hits and isinstance(hits[0], dict) else None,
    )


def _bot_line(event: Mapping[str, Any]) -> Line:
    data = event["event"]
    metadata = data.get("metadata") or {}
    citation = metadata.get(CITATION) if isinstance(metadata.get(CITATION), dict) else {}
    escalation = metadata.get(ESCALATION) if isinstance(metadata.get(ESCALATION), dict) else {}
    buttons = tuple(str(button.get("title") or button.get("payload") or "")
                    for button in (data.get("data") or {}).get("buttons") or [] if isinstance(button, dict))
    return Line("bot", event["timestamp"], str(data.get("text") or ""), level=str(escalation.get("level") or NONE),
                cited=str(citation["item"]) if citation.get("item") else None, buttons=buttons)


def conversation_lines(config: Mapping[str, Any], sender_id: str) -> List[Line]:
    """The messages of one stored conversation, in order (empty when it is not stored)."""
    lines = []
    for event in conversation_events(config, sender_id):
        if event["type"] == "user":
            lines.append(_user_line(event))
        elif event["type"] == "bot":
            lines.append(_bot_line(event))
    return lines
