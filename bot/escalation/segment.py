"""Robust text for both warning-sign layers: run-together chat split into known words
("kanplasnie" -> "kan plas niet") and chat or dialect spellings written out, by the data of
bot/escalation/segmentation.yml. Known words come from spaCy's Dutch and English lookup tables
(spacy-lookups-data, which the project's spaCy pipeline already ships) and every word written in
signs.yml (a word the patterns know is never split). Imports nothing of Rasa.
"""
from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

import yaml
from rapidfuzz import fuzz, process
from spacy.lookups import load_lookups

from bot import paths

SETTINGS = paths.BOT_DIR / "escalation" / "segmentation.yml"
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# rapidfuzz scores 0-100 in floating point: the typo check keeps candidates a hair below the cutoff,
# so rounding never drops a word at exactly the cutoff (difflib's ratio has the last word).
SCORE_SLACK = 1e-6


@lru_cache(maxsize=1)
def segmentation_settings() -> Dict[str, Any]:
    return yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))


def _words_in(value: Any) -> List[str]:
    """Every word of every string in a YAML value (lower case)."""
    if isinstance(value, str):
        return [word.lower() for word in WORD.findall(value)]
    if isinstance(value, dict):
        return [word for item in value.values() for word in _words_in(item)]
    if isinstance(value, list):
        return [word for item in value for word in _words_in(item)]
    return []


@lru_cache(maxsize=1)
def _tables() -> tuple:
    dutch = load_lookups("nl", ["lemma_lookup"]).get_table("lemma_lookup")
    english = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
    extra = frozenset(segmentation_settings()["extra_words"])
    # a word the patterns know is never split ("vanochtend", "ischias")
    sign_words = frozenset(_words_in(yaml.safe_load(paths.SIGNS.read_text(encoding="utf-8"))))
    listed = extra | sign_words
    return dutch, english, frozenset(dutch.values()) | listed, frozenset(english.values()), listed


def is_known(word: str) -> bool:
    """A word as it stands: Dutch, English, or listed."""
    dutch, english, dutch_words, english_words, _ = _tables()
    return word in dutch_words or word in dutch or word in english_words or word in english


def is_piece(word: str) -> bool:
    """A piece a run-together token may be split into: a Dutch or listed word; short ones
    (up to short_piece_chars) only when listed, since the tables hold many short oddities."""
    dutch, _, dutch_words, _, listed = _tables()
    if len(word) <= segmentation_settings()["short_piece_chars"]:
        return word in listed
    return word in dutch_words or word in dutch


def split_word(word: str) -> Optional[List[str]]:
    """The fewest known pieces `word` is made of (at most max_pieces), or None."""
    settings = segmentation_settings()
    shortest = settings["min_piece_chars"]
    listed = _tables()[4]

    def cost(pieces: List[str]) -> tuple:  # fewest pieces, then most listed pieces
        return len(pieces), -sum(piece in listed for piece in pieces)

    best: List[Optional[List[str]]] = [None] * (len(word) + 1)
    best[0] = []
    for end in range(shortest, len(word) + 1):
        for start in range(0, end - shortest + 1):
            head = best[start]
            if head is None or not is_piece(word[start:end]):
                continue
            candidate = head + [word[start:end]]
            if best[end] is None or cost(candidate) < cost(best[end]):
                best[end] = candidate
    pieces = best[len(word)]
    return pieces if pieces and 1 < len(pieces) <= settings["max_pieces"] else None


def looks_like_a_typo(word: str) -> bool:
    """Close to a word the patterns know ("gevalen", "gevoelloss"): their typo tolerance reads it;
    split, it would become other words ("geval en"). Close means difflib's ratio >= typo_similarity
    (`difflib.get_close_matches`), checked only for the words rapidfuzz's ratio keeps: that ratio is
    2·LCS / total length and difflib's matching blocks never exceed the LCS, so it keeps every word
    difflib would accept, and is computed in C++ (the pure-Python scan cost ~1 ms per unknown word)."""
    cutoff = segmentation_settings()["typo_similarity"]
    near = process.extract(word, _typo_candidates(len(word)), scorer=fuzz.ratio,
                           score_cutoff=100 * cutoff - SCORE_SLACK, limit=None)
    return any(difflib.SequenceMatcher(None, candidate, word).ratio() >= cutoff for candidate, _, _ in near)


@lru_cache(maxsize=64)
def _typo_candidates(length: int) -> Tuple[str, ...]:
    """The listed words a word of `length` letters may be a typo of (two letters more or less)."""
    listed = _sign_words_by_length()
    return tuple(word for size in range(length - 2, length + 3) for word in listed.get(size, ()))


@lru_cache(maxsize=1)
def _sign_words_by_length() -> Dict[int, List[str]]:
    by_length: Dict[int, List[str]] = {}
    for word in sorted(_tables()[4]):
        by_length.setdefault(len(word), []).append(word)
    return by_length


def _respell(word: str, spellings: Dict[str, str]) -> str:
    return spellings.get(word.lower(), word)


def robust_text(text: str, keep_compounds: bool = False) -> str:
    """`text` with run-together words split and chat spellings written out; the rest unchanged.
    `keep_compounds`: a word that splits into two content words only ("rugoefeningen",
    "warmtekussen") stays whole: a compound, not run-together chat (the semantic layer reads
    compounds as they are; a second encoding would cost a forward pass and tell it nothing)."""
    settings = segmentation_settings()
    spellings = settings["spellings"]
    function_words = frozenset(settings["extra_words"])

    def fix(match: "re.Match[str]") -> str:
        word = match.group(0)
        lower = word.lower()
        if len(lower) >= settings["min_token_chars"] and not is_known(lower) and not looks_like_a_typo(lower):
            pieces = split_word(lower)
            compound = pieces is not None and len(pieces) == 2 and not function_words & set(pieces)
            if pieces and not (keep_compounds and compound):
                return " ".join(_respell(piece, spellings) for piece in pieces)
        return _respell(word, spellings)

    return WORD.sub(fix, text)


def known_words() -> FrozenSet[str]:
    return _tables()[4]
