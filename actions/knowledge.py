"""What the actions read from the conversation and the knowledge base."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from babel.dates import format_date
from rasa_sdk import Tracker

from bot.knowledge_base import KNOWLEDGE_BASE_PATH, KnowledgeBase, load_knowledge_base

LOCALE = "nl_NL"


def knowledge_base() -> KnowledgeBase:
    """The knowledge base the action server answers from (KNOWLEDGE_BASE to override)."""
    return load_knowledge_base(Path(os.environ.get("KNOWLEDGE_BASE", KNOWLEDGE_BASE_PATH)))


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def intent_ranking(tracker: Tracker) -> List[Dict[str, Any]]:
    return tracker.latest_message.get("intent_ranking") or []


def search_hits(tracker: Tracker) -> List[Dict[str, Any]]:
    return tracker.latest_message.get("article_search") or []


def dutch_date(iso_date: str) -> str:
    import datetime

    return format_date(datetime.date.fromisoformat(iso_date), format="long", locale=LOCALE)


def metadata_values(kb: KnowledgeBase) -> Dict[str, Any]:
    """Template values for responses that speak about the article itself."""
    meta = kb.metadata
    return {
        "title": meta.title,
        "author": meta.author,
        "reviewer_name": meta.reviewer.name,
        "reviewer_role": meta.reviewer.role,
        "reviewer_profession": meta.reviewer.profession or meta.reviewer.role,
        "reviewer_bio": meta.reviewer.bio,
        "date": dutch_date(meta.date),
        "reading_time_minutes": meta.reading_time_minutes,
    }
