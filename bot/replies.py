"""What the assistant says: the reply catalogue (bot/replies.yml) and the rendering of an article
answer, the one place that turns a knowledge-base item into the text a visitor reads.

Used by the custom actions, the channels, the staff room, the Rasa server's referral fallback and
the benchmark's baselines alike. Imports nothing of Rasa.
"""
from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml
from babel.dates import format_date

from bot import paths
from bot.contract import CITATION
from bot.knowledge_base import Item, KnowledgeBase
from bot.knowledge_base.answers import distinctive_words, relevant_paragraph_indices

LOCALE = "nl_NL"
SOURCE_LINE_PREFIX = "Bron: "


@lru_cache(maxsize=None)
def replies() -> Dict[str, str]:
    return yaml.safe_load(paths.REPLIES.read_text(encoding="utf-8"))


def reply(reply_name: str, /, **values: Any) -> str:
    """The reply `reply_name` with its {placeholders} filled in."""
    return replies()[reply_name].format(**values)


def dutch_date(iso_date: str) -> str:
    return format_date(datetime.date.fromisoformat(iso_date), format="long", locale=LOCALE)


def article_metadata_values(kb: KnowledgeBase) -> Dict[str, Any]:
    """Template values for replies that speak about the article itself."""
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


def item_text(
    kb: KnowledgeBase, item: Item, search_hits: Iterable[Dict[str, Any]] = (), paragraphs: Optional[Sequence[int]] = None
) -> str:
    """What an answer about `item` quotes: the given paragraphs (indices), else the relevant
    ones, or for the article's metadata and sources the text made from them. No source line."""
    if item.kind == "about":
        return reply("article_about", **article_metadata_values(kb))
    if item.kind == "sources":
        return reply("article_sources", sources="\n".join(f"{s.number}. {s.text}" for s in kb.sources))
    indices = relevant_paragraph_indices(item, search_hits) if paragraphs is None else paragraphs
    return "\n".join(item.paragraphs[index] for index in indices)


def article_answer(
    kb: KnowledgeBase, item: Item, search_hits: Iterable[Dict[str, Any]] = (), paragraphs: Optional[Sequence[int]] = None,
    safety_net: bool = True, question: str = "",
) -> Dict[str, Any]:
    """The message answering with `item`: its text (the given paragraphs, else the relevant ones),
    the safety net for self-care answers (`safety_net=False` after a referral in the same turn: its
    "na 3 à 4 weken" would contradict "binnen een paar dagen"), the line `Bron: <citation>`, and the
    item as structured metadata (`citation`: item, heading and the paragraphs quoted) next to that line.
    `question`: the text asked, for the paragraphs it names (relevant_paragraph_indices)."""
    indices = list(paragraphs if paragraphs is not None else
                   relevant_paragraph_indices(item, search_hits, asked=distinctive_words(kb, question)))
    template = "article_answer_with_safety_net" if item.self_care and safety_net else "article_answer"
    text = reply(template, answer=item_text(kb, item, paragraphs=indices), citation=item.citation)
    quoted = indices if item.kind not in ("about", "sources") else []
    return {"text": text, CITATION: {"item": item.id, "heading": item.citation, "paragraphs": quoted}}


def source_lines(texts: Iterable[str]) -> List[str]:
    """The `Bron:` lines of some reply texts (for channels and people; programs read `citation`)."""
    return [
        line.removeprefix(SOURCE_LINE_PREFIX).strip()
        for text in texts
        for line in (text or "").splitlines()
        if line.startswith(SOURCE_LINE_PREFIX)
    ]
