"""Conversation memory: the warning signs of a whole conversation and their combined level.

The one owner of memory. The detector judges one message (the combinations within it
included); across turns, the combinations with scope `conversation` (signs.yml) are evaluated
here, by `SignBook.combine_level`, over every sign id the conversation reported, context signs
of level none (back_pain, age_over_50) included. Pure Python: no Rasa, no spaCy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from bot.escalation.sign_book import SignBook, load_sign_book


@dataclass(frozen=True)
class ConversationSigns:
    signs: Tuple[str, ...]  # every sign id of the conversation, in the order first reported
    level: str  # their combined level (SignBook.combine_level), i.e. this turn's level


def _sign_ids_of(detection: Optional[Mapping[str, Any]]) -> List[str]:
    """The sign ids of a detection dict (Detection.to_dict(), as stored in parse data)."""
    signs = (detection or {}).get("signs") or []
    return [sign.get("sign_id") for sign in signs if isinstance(sign, Mapping)]


def remember(
    kept: Iterable[str],
    earlier_detections: Iterable[Mapping[str, Any]],
    detection: Mapping[str, Any],
    extra: Iterable[str] = (),
    book: Optional[SignBook] = None,
) -> ConversationSigns:
    """The conversation's signs after this turn, and their level.

    `kept`: the sign ids kept so far (the slot); `earlier_detections`: the `warning_signs` dicts
    of earlier user messages; `detection`: this message's dict; `extra`: more sign ids of this
    turn. Order: kept, earlier, this message, extra; each id once. Odd items are ignored.
    """
    ordered: Dict[str, None] = {}
    sources: List[Iterable[Any]] = [kept or ()]
    sources += [_sign_ids_of(earlier) for earlier in earlier_detections or ()]
    sources += [_sign_ids_of(detection), extra or ()]
    for source in sources:
        for sign_id in source:
            if isinstance(sign_id, str) and sign_id:
                ordered.setdefault(sign_id, None)
    signs = tuple(ordered)
    book = book if book is not None else load_sign_book()
    return ConversationSigns(signs, book.combine_level(signs))


def conversation_level(sign_ids: Iterable[str]) -> str:
    """The combined level of a conversation's sign ids (see SignBook.combine_level)."""
    return load_sign_book().combine_level(sign_ids)
