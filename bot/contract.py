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
ARTICLE_ITEM = "article_item"  # ArticleItemResolver: the item a question asks about when no example trains it
# KnowledgeBaseSearch, only when a message asks two or more questions: [{"text", "hits"}] in the
# order asked, `hits` like ARTICLE_SEARCH for that question alone
ARTICLE_QUESTIONS = "article_questions"
INTENT = "intent"
INTENT_RANKING = "intent_ranking"
TEXT = "text"

# -- intents ------------------------------------------------------------------------------------
REPORT_WARNING_SIGN = "report_warning_sign"
SESSION_START = "session_start"
ERASE_CONVERSATION = "erase_conversation"  # a visitor asks to erase their conversation
CONFIRM_ERASURE = "confirm_erasure"  # the confirmation button (payload /confirm_erasure)
CANCEL_ERASURE = "cancel_erasure"
ASK_MORE = "ask_more"  # "vertel meer": the next paragraphs of the item last answered
FOLLOW_UP = "follow_up"  # a question that only makes sense with the item last answered ("en werkt dat?")

# -- slots --------------------------------------------------------------------------------------
ESCALATION_LEVEL_SLOT = "escalation_level"  # the conversation's highest level; never lowered
WARNING_SIGNS_SLOT = "warning_signs"  # every sign reported in the conversation, in order
PRODUCTS_MENTIONED_SLOT = "products_mentioned"
HANDOFF_SLOT = "handoff_active"  # a hand-off to staff is open: the visitor's messages are mirrored
# Set (True) by the erasure action once the visitor confirmed: the tracker store then deletes the
# conversation instead of saving it (bot/stores/tracker_store.py). Never stored itself.
ERASURE_CONFIRMED_SLOT = "erasure_confirmed"

# -- metadata of bot messages (BotUttered metadata in the tracker) ------------------------------
CITATION = "citation"  # {"item", "heading": the `Bron:` text, "paragraphs": indices quoted}: an answer from the article
SUGGESTIONS = "suggestions"  # [item ids]: the "Misschien wil je ook weten" buttons under an answer
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


# What the action server keeps of the parse data of the user messages *before* the latest one:
# `earlier_warning_signs` reads WARNING_SIGNS; the text and the (original) intent say what the message
# was. Rasa sends the action server the whole tracker, and the rest of each earlier message's parse
# data (rankings, search hits) is most of its size (bot/rasa_patches.py trims it).
EARLIER_MESSAGE_KEYS = (TEXT, INTENT, WARNING_SIGNS, ORIGINAL_INTENT)


def earlier_message_parse_data(parse_data: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of an earlier user message's parse data that actions read (EARLIER_MESSAGE_KEYS)."""
    return {key: parse_data[key] for key in EARLIER_MESSAGE_KEYS if key in parse_data}


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


def current_session(events: List[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The events since the conversation's last session start (all of them when there is none)."""
    start = max((i for i, event in enumerate(events) if event.get("event") == "session_started"), default=-1)
    return list(events[start + 1 :])


def earlier_bot_events(events: List[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The bot messages of the current session before its latest user message, in order."""
    session = current_session(events)
    last_user = max((i for i, event in enumerate(session) if event.get("event") == "user"), default=len(session))
    return [event for event in session[:last_user] if event.get("event") == "bot"]


def session_referral_levels(events: List[Mapping[str, Any]]) -> List[str]:
    """The levels of the referrals (`escalation` metadata) this session's bot messages sent before
    the latest user message, in order."""
    referrals = [(event.get("metadata") or {}).get(ESCALATION) or {} for event in earlier_bot_events(events)]
    return [referral["level"] for referral in referrals if referral.get("level")]


def last_citation(events: List[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The `citation` of the last article answer before the latest user message (this session)."""
    cited = [(event.get("metadata") or {}).get(CITATION) for event in earlier_bot_events(events)]
    return next((dict(citation) for citation in reversed(cited) if citation), None)


def quoted_paragraphs(events: List[Mapping[str, Any]], item_id: str) -> List[int]:
    """Every paragraph of `item_id` quoted in this session before the latest user message."""
    quoted: List[int] = []
    for event in earlier_bot_events(events):
        citation = (event.get("metadata") or {}).get(CITATION) or {}
        if citation.get("item") == item_id:
            quoted += [index for index in citation.get("paragraphs") or [] if index not in quoted]
    return quoted


def answered_items(events: List[Mapping[str, Any]]) -> List[str]:
    """The items this session's answers cited, the latest turn's included, first answer first."""
    return list(dict.fromkeys(cited_items([event for event in current_session(events) if event.get("event") == "bot"])))


def last_products(events: List[Mapping[str, Any]]) -> List[str]:
    """The products of the last earlier bot messages that presented products (this session)."""
    products: List[str] = []
    for event in reversed(earlier_bot_events(events)):
        product = (event.get("metadata") or {}).get(PRODUCT)
        if product:
            products.insert(0, product)
        elif products:
            break
    return list(dict.fromkeys(products))


def last_answer_is_product(events: List[Mapping[str, Any]]) -> bool:
    """True when the latest earlier answer (this session) presented products rather than quoting
    the article: a follow-up ("en wat kost dat?") is then about those products."""
    for event in reversed(earlier_bot_events(events)):
        metadata = event.get("metadata") or {}
        if metadata.get(PRODUCT):
            return True
        if metadata.get(CITATION):
            return False
    return False
