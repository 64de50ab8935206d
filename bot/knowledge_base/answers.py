"""Choose what an answer quotes: the relevant paragraph(s) of an item, not the whole section."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List

from bot.knowledge_base.model import Item

# A paragraph is quoted next to the best one when its score is this close to the best.
SECOND_PARAGRAPH_MARGIN = 0.02
MAX_PARAGRAPHS = 2


def relevant_paragraphs(item: Item, search_hits: Iterable[Dict[str, Any]]) -> List[str]:
    """The item's paragraphs that best match the question, in article order.

    `search_hits` are the `article_search` entries of the parse result (item, paragraph, score).
    Without a hit for this item the first paragraph is quoted; FAQ answers are quoted whole.
    """
    if not item.paragraphs:
        return []
    if item.kind == "faq":
        return list(item.paragraphs)
    scores = {
        hit["paragraph"]: float(hit["score"])
        for hit in search_hits
        if hit.get("item") == item.id and 0 <= hit.get("paragraph", -1) < len(item.paragraphs)
    }
    if not scores:
        return [item.paragraphs[0]]
    best = max(scores.values())
    chosen = sorted(
        (index for index, score in scores.items() if score >= best - SECOND_PARAGRAPH_MARGIN),
        key=lambda index: -scores[index],
    )[:MAX_PARAGRAPHS]
    return [item.paragraphs[index] for index in sorted(chosen)]
