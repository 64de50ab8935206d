"""Choose what an answer quotes: the relevant paragraph(s) of an item, not the whole section."""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Collection, Dict, FrozenSet, Iterable, List, Sequence

from bot.knowledge_base.model import Item, KnowledgeBase

# A paragraph is quoted next to the best one when its score is this close to the best.
SECOND_PARAGRAPH_MARGIN = 0.02
MAX_PARAGRAPHS = 2
# A question about what was just said ("en werkt dat?") moves to another paragraph of the item only
# when it matches that one this much better than the paragraphs just quoted.
REFERENT_MARGIN = 0.02
# A word of the question names a paragraph of the item when that paragraph alone in the item has
# it and the word is distinctive: this long at least, not a Dutch stop word, in at most this many of
# the article's paragraphs ("lasertherapie": one; "rugpijn": most).
NAMING_WORD_MIN_LETTERS = 5
DISTINCTIVE_MAX_PARAGRAPHS = 2
WORD = re.compile(r"\w+")


def paragraph_scores(item: Item, search_hits: Iterable[Dict[str, Any]]) -> Dict[int, float]:
    """The search scores of `item`'s paragraphs among `search_hits` (paragraph index → cosine)."""
    return {
        hit["paragraph"]: float(hit["score"])
        for hit in search_hits
        if hit.get("item") == item.id and 0 <= hit.get("paragraph", -1) < len(item.paragraphs)
    }


STOP_WORDS_FILE = Path(__file__).with_name("stop_words.txt")


@lru_cache(maxsize=None)
def stop_words() -> FrozenSet[str]:
    """Dutch stop words (stop_words.txt: spaCy's list as data, so that no process loads spaCy for it)."""
    lines = STOP_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def content_words(text: str) -> FrozenSet[str]:
    """The lower-cased words of `text` that can name something (NAMING_WORD_MIN_LETTERS, no stop words)."""
    return frozenset(word for word in WORD.findall(text.lower()) if len(word) >= NAMING_WORD_MIN_LETTERS and word not in stop_words())


@lru_cache(maxsize=4096)
def paragraph_words(paragraph: str) -> FrozenSet[str]:
    """`content_words` of an article paragraph, remembered (every answer reads the whole article; a
    visitor's text is never remembered)."""
    return content_words(paragraph)


def distinctive_words(kb: KnowledgeBase, question: str) -> FrozenSet[str]:
    """The question's words that only a few of the article's paragraphs contain."""
    asked = content_words(question)
    if not asked:
        return frozenset()
    counts = Counter(word for item in kb.items for paragraph in item.paragraphs for word in paragraph_words(paragraph) & asked)
    return frozenset(word for word, count in counts.items() if count <= DISTINCTIVE_MAX_PARAGRAPHS)


def named_paragraph_indices(item: Item, asked: Collection[str], exclude: Collection[int] = ()) -> List[int]:
    """The paragraphs of `item` that the `asked` words (distinctive_words) name: each the only one in
    the item that has such a word ("Helpt lasertherapie?" names the paragraph about laser therapy),
    the most named MAX_PARAGRAPHS of them not in `exclude`, in article order."""
    if not asked or len(item.paragraphs) < 2:
        return []
    holding = [paragraph_words(paragraph) & frozenset(asked) for paragraph in item.paragraphs]
    named = {index: sum(1 for word in held if sum(word in other for other in holding) == 1) for index, held in enumerate(holding)}
    most_named = sorted((index for index, count in named.items() if count and index not in exclude), key=lambda index: -named[index])
    return sorted(most_named[:MAX_PARAGRAPHS])


def relevant_paragraph_indices(
    item: Item, search_hits: Iterable[Dict[str, Any]], exclude: Sequence[int] = (), asked: Collection[str] = ()
) -> List[int]:
    """The indices of the item's paragraphs that best match the question, in article order.

    `search_hits` are the `article_search` entries of the parse result (item, paragraph, score).
    The paragraphs the question names by a distinctive word only they have (`asked`, from
    distinctive_words) are quoted; else the best hits; without a hit for this item the first
    paragraph not in `exclude`. FAQ answers are quoted whole. `exclude`: paragraphs already quoted
    in this conversation (a follow-up).
    """
    if not item.paragraphs:
        return []
    if item.kind == "faq":
        return list(range(len(item.paragraphs)))
    named = named_paragraph_indices(item, asked, exclude)
    if named:
        return named
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


def referent_paragraph_indices(item: Item, search_hits: Sequence[Dict[str, Any]], referent: Sequence[int],
                               asked: Collection[str] = ()) -> List[int]:
    """A question about what was just said ("en werkt dat?", "voor wie is dat?"): the paragraphs
    just quoted (`referent`), where "dat" points, unless the question names paragraphs of the item
    (named_paragraph_indices) or matches another one better by REFERENT_MARGIN (it asks about an
    aspect said elsewhere in the item). A paragraph not among the hits scores at most the lowest hit."""
    referent = [index for index in referent if 0 <= index < len(item.paragraphs)]
    named = named_paragraph_indices(item, asked)
    if named:
        return named
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
