"""Choose what an answer quotes: the relevant paragraph(s) of an item, not the whole section."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence

from bot.knowledge_base.model import Item

# A paragraph is quoted next to the best one when its score is this close to the best.
SECOND_PARAGRAPH_MARGIN = 0.02
MAX_PARAGRAPHS = 2
# A question about what was just said ("en werkt dat?") moves to another paragraph of the item only
# when it matches that one this much better than the paragraphs just quoted.
REFERENT_MARGIN = 0.02


def paragraph_scores(item: Item, search_hits: Iterable[Dict[str, Any]]) -> Dict[int, float]:
    """The search scores of `item`'s paragraphs among `search_hits` (paragraph index → cosine)."""
    return {
        hit["paragraph"]: float(hit["score"])
        for hit in search_hits
        if hit.get("item") == item.id and 0 <= hit.get("paragraph", -1) < len(item.paragraphs)
    }


def relevant_paragraph_indices(
    item: Item, search_hits: Iterable[Dict[str, Any]], exclude: Sequence[int] = ()
) -> List[int]:
    """The indices of the item's paragraphs that best match the question, in article order.

    `search_hits` are the `article_search` entries of the parse result (item, paragraph, score).
    Without a hit for this item the first paragraph not in `exclude` is quoted; FAQ answers are
    quoted whole. `exclude`: paragraphs already quoted in this conversation (a follow-up).
    """
    if not item.paragraphs:
        return []
    if item.kind == "faq":
        return list(range(len(item.paragraphs)))
    scores = {index: score for index, score in paragraph_scores(item, search_hits).items() if index not in exclude}
    if not scores:
        fresh = [index for index in range(len(item.paragraphs)) if index not in exclude]
        return fresh[:1] or [0]
    best = max(scores.values())
    chosen = sorted(
        (index for index, score in scores.items() if score >= best - SECOND_PARAGRAPH_MARGIN),
        key=lambda index: -scores[index],
    )[:MAX_PARAGRAPHS]
    return sorted(chosen)


def next_paragraph_indices(item: Item, quoted: Sequence[int], count: int = MAX_PARAGRAPHS) -> List[int]:
    """"Vertel meer": the item's paragraphs after the last one quoted, else the first ones not yet
    quoted; [] when every paragraph was quoted."""
    after = max(quoted, default=-1)
    following = [index for index in range(after + 1, len(item.paragraphs))]
    earlier = [index for index in range(len(item.paragraphs)) if index not in quoted and index <= after]
    return (following + earlier)[:count]


def referent_paragraph_indices(item: Item, search_hits: Sequence[Dict[str, Any]], referent: Sequence[int]) -> List[int]:
    """A question about what was just said ("en werkt dat?", "voor wie is dat?"): the paragraphs
    just quoted (`referent`), where "dat" points, unless the question matches another paragraph of
    the item better by REFERENT_MARGIN (it names an aspect said elsewhere in the item). A paragraph
    not among the hits scores at most the lowest hit."""
    referent = [index for index in referent if 0 <= index < len(item.paragraphs)]
    if not referent:
        return relevant_paragraph_indices(item, search_hits)
    scores = paragraph_scores(item, search_hits)
    floor = min((float(hit["score"]) for hit in search_hits), default=0.0)
    elsewhere = {index: score for index, score in scores.items() if index not in referent}
    said = max(scores.get(index, floor) for index in referent)
    if elsewhere and max(elsewhere.values()) >= said + REFERENT_MARGIN:
        return relevant_paragraph_indices(item, search_hits, exclude=referent)
    return sorted(referent)


def relevant_paragraphs(item: Item, search_hits: Iterable[Dict[str, Any]]) -> List[str]:
    """The text of `relevant_paragraph_indices`."""
    return [item.paragraphs[index] for index in relevant_paragraph_indices(item, search_hits)]
