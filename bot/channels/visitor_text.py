"""What a visitor's message may be: plain text, or one of the few `/` payloads the assistant itself
offers. Used by every visitor channel (REST, socket.io) before Rasa sees the text.

Rasa reads text of the form `/intent{"slot": …}` as a command: its RegexMessageHandler sets the
intent and slots and drops what the NLU components found (the warning-sign detector included), and
`/restart` wipes the conversation. A visitor may therefore send only the payloads of the widget's
session start and of the buttons the bot offers (an article item, the erasure confirmation); any other text that starts with
`/` is handled as plain text: its leading slashes are removed, so the NLU pipeline, the warning-sign
detector included, reads it like any other message. Imports nothing of Rasa.
"""
from __future__ import annotations

from functools import lru_cache
from typing import FrozenSet

from bot.contract import CANCEL_ERASURE, CONFIRM_ERASURE, SESSION_START
from bot.knowledge_base import current_knowledge_base

COMMAND_PREFIX = "/"


@lru_cache(maxsize=1)
def allowed_payloads() -> FrozenSet[str]:
    """The session start, the erasure buttons and one payload per article item (the clarification
    buttons). A visitor who sends /confirm_erasure unasked is asked first (actions/privacy.py)."""
    items = current_knowledge_base().item_ids
    commands = (SESSION_START, CONFIRM_ERASURE, CANCEL_ERASURE, *items)
    return frozenset(f"{COMMAND_PREFIX}{command}" for command in commands)


def visitor_text(text: str, allowed: FrozenSet[str] | None = None) -> str:
    """`text` as Rasa may read it from a visitor: an allowed payload unchanged, anything else
    without leading slashes (plain text, never a command)."""
    allowed = allowed_payloads() if allowed is None else allowed
    stripped = text.strip()
    if not stripped.startswith(COMMAND_PREFIX) or stripped in allowed:
        return text
    return stripped.lstrip(COMMAND_PREFIX).lstrip()
