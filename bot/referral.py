"""The referral of an escalation (../shared/spec/escalation.md, "Levels"): what a turn escalates
to, which reply refers at that level, and its text at a given moment (huisarts in office hours,
huisartsenpost outside them).

Rendered by the escalation action and, when the action server is down, by the Rasa server itself:
both import this. Imports nothing of Rasa."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from bot import clock
from bot.escalation.memory import remember
from bot.levels import LEVELS, NONE, SOON, URGENT_NOW, escalates, max_level
from bot.replies import reply

# A symptom report recognised only by the learned intent: a doctor should look (policy: when
# unsure, the higher level), but it is never urgent on a guess.
LEARNED_SYMPTOM_REPORT = "learned_symptom_report"
LEARNED_LEVEL = SOON
# Persistent, non-alarming pain: the `soon` reply also says a fysiotherapeut needs no referral.
PERSISTENT_PAIN_SIGNS = frozenset({"no_improvement", "recurrent_pain", "daily_life_limited"})


def referral_reply_name(level: str, office_hours: bool, signs: Iterable[str] = ()) -> str:
    """The name of the reply (bot/replies.yml) that refers at `level`."""
    signs = set(signs)
    if level == URGENT_NOW:
        return "escalate_urgent_now_office" if office_hours else "escalate_urgent_now_after_hours"
    if level == SOON and signs and PERSISTENT_PAIN_SIGNS.issuperset(signs):
        return "escalate_soon_persistent"
    return f"escalate_{level}"


def referral_text(level: str, moment: datetime.datetime, signs: Iterable[str] = ()) -> str:
    return reply(referral_reply_name(level, clock.is_office_hours(moment), signs))


@dataclass(frozen=True)
class Escalation:
    """What a turn that reported a warning sign escalates to."""

    level: str  # this turn's level: the conversation's signs combined
    signs: Tuple[str, ...]  # every sign of the conversation so far (the slot), in order
    new_signs: Tuple[str, ...]  # the signs this message reported (the audit metadata)
    referral_signs: Tuple[str, ...]  # this message's signs above level none (choose the reply)


def decide_escalation(
    kept: Iterable[str], earlier_detections: Iterable[Mapping[str, Any]], detection: Mapping[str, Any]
) -> Optional[Escalation]:
    """The escalation of a message the NLU sent to the referral, or None when only the learned
    intent fired and the patterns understood the sign as denied or hypothetical (a guess may not
    overrule them). A learned report alone counts as LEARNED_SYMPTOM_REPORT at LEARNED_LEVEL."""
    learned_only = detection.get("level", NONE) == NONE  # any other value: the patterns found a sign
    if learned_only and (detection.get("negated") or detection.get("hypothetical")):
        return None
    extra = [LEARNED_SYMPTOM_REPORT] if learned_only else []
    memory = remember(kept, earlier_detections, detection, extra)
    signs = [sign["sign_id"] for sign in detection.get("signs", [])]
    detected = detection.get("level") if detection.get("level") in LEVELS else NONE  # both layers
    return Escalation(
        level=max_level(memory.level, detected, LEARNED_LEVEL if learned_only else NONE),
        signs=tuple(memory.signs),
        new_signs=tuple(signs + extra),
        referral_signs=tuple(s["sign_id"] for s in detection.get("signs", []) if escalates(s.get("level", NONE))),
    )


def escalation_metadata(escalation: Escalation, moment: datetime.datetime, **extra: Any) -> Dict[str, Any]:
    """The audit record a referral message carries (contract.ESCALATION)."""
    return {"level": escalation.level, "signs": list(escalation.new_signs), "time": moment.isoformat(timespec="minutes"), **extra}
