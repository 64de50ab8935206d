"""Hand-off to staff: who counts as staff, the notice with its redacted transcript, and posting it."""
from __future__ import annotations

import enum
import logging
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from bot.privacy.redaction import redact_text
from bot.replies import reply
from bot.staff.notifiers import staff_channels, staff_notifier_from_env
from bot.staff.outbox import default_outbox
from bot.staff.rate_limit import Limiter, default_limiter

logger = logging.getLogger(__name__)

TRANSCRIPT_TURNS = 6
LINE_CHARS = 300

def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def transcript(events: Iterable[Dict[str, Any]], extra_bot_texts: Sequence[str] = (), turns: int = TRANSCRIPT_TURNS) -> List[str]:
    """The last `turns` messages of a conversation, one line each ("bezoeker: …", "assistent: …"),
    redacted as the conversation store keeps them (bot/privacy/redaction.py)."""
    lines = [
        f"{'bezoeker' if event['event'] == 'user' else 'assistent'}: {_one_line(redact_text(event.get('text') or ''))}"
        for event in events
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    lines += [f"assistent: {_one_line(redact_text(text))}" for text in extra_bot_texts if text]
    return lines[-turns:]



def is_staff(input_channel: Optional[str]) -> bool:
    """Staff write through a staff channel (STAFF_CHANNELS). The channel is the one Rasa recorded
    for the message, never anything the message itself carries."""
    return input_channel in staff_channels()


def contact_time() -> str:
    """When staff answer a hand-off: HANDOFF_CONTACT_TIME, or the default reply."""
    return os.environ.get("HANDOFF_CONTACT_TIME") or reply("hand_off_contact_time")


def hand_off_notice(
    reason: str,
    conversation_id: str,
    channel: Optional[str],
    level: str,
    signs: Sequence[str],
    events: Iterable[Dict[str, Any]],
    extra_bot_texts: Sequence[str] = (),
) -> str:
    """The notice staff get: why, which conversation, level and signs, the last turns redacted."""
    lines = transcript(events, extra_bot_texts)
    return reply(
        "hand_off_notice",
        reason=reason,
        conversation_id=conversation_id,
        channel=channel or "onbekend",
        level=level,
        signs=", ".join(signs) or "geen",
        transcript="\n".join(f"  {line}" for line in lines) or "  (geen berichten)",
    )


class NoticeStatus(enum.Enum):
    QUEUED = "queued"  # in the outbox: staff get it as soon as their channel answers
    LIMITED = "limited"  # held back by the rate limits
    NO_CHANNEL = "no_channel"  # no staff channel configured


def queue_notice(conversation_id: str, notice: str, limiter: Optional[Limiter] = None) -> NoticeStatus:
    """Queue a notice for staff (bot/staff/outbox.py), within the rate limits (bot/staff/rate_limit.py;
    shared by every action server when the endpoints file configures Redis). Never waits for the
    staff channel: the visitor's reply goes out first. When the total limit holds notices back,
    staff get one summary per window instead."""
    if staff_notifier_from_env() is None:
        return NoticeStatus.NO_CHANNEL
    limiter = limiter or default_limiter()
    if not limiter.allow(conversation_id):
        if limiter.total_reached() and limiter.summary_due():
            default_outbox().enqueue("-", reply("hand_off_rate_limited_summary", minutes=round(limiter.window_s / 60)))
        logger.warning("Hand-off notice for %s held back by the rate limits", conversation_id)
        return NoticeStatus.LIMITED
    default_outbox().enqueue(conversation_id, notice)
    return NoticeStatus.QUEUED
