"""The contract between the NLU components, the tracker and the actions: the names of what the
components add to a message's parse data, of the slots, of the intents the dialogue relies on and
of the metadata that bot messages carry, and small readers of parse data (a plain dict, as Rasa
stores it in `tracker.latest_message` and in each user event's `parse_data`).

Imports nothing of Rasa: components, actions, channels and tools all use it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

# -- parse data: what the NLU components add to a message ---------------------------------------
WARNING_SIGNS = "warning_signs"  # WarningSignDetector: {"level", "signs" (each with its "layer"), "hypothetical", "negated", "scope"}
ORIGINAL_INTENT = "original_intent"  # WarningSignDetector: the classifier's intent before the override
SEMANTIC_SIGNS = "semantic_signs"  # SemanticSignRecognizer: {"sign_id", "level", "score"} or None
UNKNOWN_WORDS = "unknown_words"  # UnknownWordsClassifier: True when no word of the message is known
ARTICLE_SEARCH = "article_search"  # KnowledgeBaseSearch: [{"item", "paragraph", "score"}], best first
INTENT = "intent"
INTENT_RANKING = "intent_ranking"
TEXT = "text"

# -- intents ------------------------------------------------------------------------------------
REPORT_WARNING_SIGN = "report_warning_sign"
SESSION_START = "session_start"
ERASE_CONVERSATION = "erase_conversation"  # a visitor asks to erase their conversation
CONFIRM_ERASURE = "confirm_erasure"  # the confirmation button (payload /confirm_erasure)
CANCEL_ERASURE = "cancel_erasure"

# -- slots --------------------------------------------------------------------------------------
ESCALATION_LEVEL_SLOT = "escalation_level"  # the conversation's highest level; never lowered
WARNING_SIGNS_SLOT = "warning_signs"  # every sign reported in the conversation, in order
PRODUCTS_MENTIONED_SLOT = "products_mentioned"
HANDOFF_SLOT = "handoff_active"  # a hand-off to staff is open: the visitor's messages are mirrored
# Set (True) by the erasure action once the visitor confirmed: the tracker store then deletes the
# conversation instead of saving it (bot/stores/tracker_store.py). Never stored itself.
ERASURE_CONFIRMED_SLOT = "erasure_confirmed"

# -- metadata of bot messages (BotUttered metadata in the tracker) ------------------------------
CITATION = "citation"  # {"item": item id, "heading": the `Bron:` text}: an answer from the article
ESCALATION = "escalation"  # {"level", "signs", "time"}: a referral (audit)
PRODUCT = "product"  # product id: a line about one of the article's products
STAFF_USER = "staff_user"  # the staff member who wrote this message (a staff reply, `!antwoord`)
ERASURE_QUESTION = "erasure_question"  # True: "Wil je dat ik dit gesprek wis?" (its buttons confirm)


def intent_name(parse_data: Mapping[str, Any]) -> Optional[str]:
    return (parse_data.get(INTENT) or {}).get("name")


def intent_ranking(parse_data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return list(parse_data.get(INTENT_RANKING) or [])


def original_intent_name(parse_data: Mapping[str, Any]) -> Optional[str]:
    return (parse_data.get(ORIGINAL_INTENT) or {}).get("name")


def search_hits(parse_data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return list(parse_data.get(ARTICLE_SEARCH) or [])


def warning_signs(parse_data: Mapping[str, Any]) -> Dict[str, Any]:
    """The detection the WarningSignDetector stored: level, signs, hypothetical, negated."""
    return dict(parse_data.get(WARNING_SIGNS) or {})


# -- readers of a tracker (Rasa's tracker JSON: {"events": [...], "slots": {...}}) ---------------
def latest_turn_bot_events(tracker: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The bot messages that answered the conversation's latest user message, in order."""
    events = list(tracker.get("events") or [])
    last_user = max((i for i, event in enumerate(events) if event.get("event") == "user"), default=-1)
    return [event for event in events[last_user + 1 :] if event.get("event") == "bot"]


def cited_items(bot_events: List[Mapping[str, Any]]) -> List[str]:
    """The article items these bot messages cite (their `citation` metadata), in order."""
    return [
        (event.get("metadata") or {})[CITATION]["item"]
        for event in bot_events
        if (event.get("metadata") or {}).get(CITATION)
    ]


def earlier_warning_signs(events: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """The warning-sign detections of every user message before the latest one (tracker events as dicts)."""
    user_events = [event for event in events if event.get("event") == "user"][:-1]
    return [warning_signs(event.get("parse_data") or {}) for event in user_events]



def previous_bot_event(events: List[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The last bot message before the conversation's latest user message (tracker events as dicts)."""
    last_user = max((i for i, event in enumerate(events) if event.get("event") == "user"), default=len(events))
    return next((event for event in reversed(events[:last_user]) if event.get("event") == "bot"), None)
