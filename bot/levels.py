"""Escalation levels of the policy (../shared/spec/escalation.md) and their order.

The one place that knows the order none < soon < urgent_now < urgent_112. Imports nothing of Rasa.
"""
from __future__ import annotations

from typing import Dict, Tuple

NONE = "none"
SOON = "soon"
URGENT_NOW = "urgent_now"
URGENT_112 = "urgent_112"

LEVELS: Tuple[str, ...] = (NONE, SOON, URGENT_NOW, URGENT_112)
URGENT_LEVELS = frozenset({URGENT_NOW, URGENT_112})
_RANK: Dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


def level_rank(level: str) -> int:
    """Position of `level` in LEVELS (none=0 … urgent_112=3). Unknown levels raise ValueError."""
    try:
        return _RANK[level]
    except (KeyError, TypeError):
        raise ValueError(f"unknown escalation level {level!r}; expected one of {LEVELS}") from None


def max_level(*levels: str) -> str:
    """The highest of `levels` (none when there are none). Unknown levels raise ValueError."""
    best = NONE
    for level in levels:
        if level_rank(level) > _RANK[best]:
            best = level
    return best


def is_urgent(level: str) -> bool:
    return level in URGENT_LEVELS


def escalates(level: str) -> bool:
    """True for every level above none: a referral is due."""
    return level_rank(level) > _RANK[NONE]
