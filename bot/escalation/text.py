"""Text normalisation, applied to messages and to every word of signs.yml alike.

HTML removed, entities unescaped, diacritics folded ("knieën" -> "knieen"), apostrophes
straightened, glued punctuation split ("plassen!!Help"), letters repeated 3+ times shortened to 2
("koooorts" -> "koorts"), run-together chat split and chat spellings written out
("kanplasnie" -> "kan plas niet", bot/escalation/segment.py), whitespace collapsed (spaCy makes a
token of every extra space).
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from bot.escalation.segment import robust_text

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u02bc": "'"})
_HTML_TAG = re.compile(r"<[^<>]{0,500}>")
_GLUED_PUNCT = re.compile(r"(?<=[^\W\d_])([!?.;,:]+)(?=[^\W\d_])")
_GLUED_SLASH = re.compile(r"(?<=[^\W\d_])([/+])(?=[^\W\d_])")
_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" ?\n[\s]*")


def fold(text: str) -> str:
    """Diacritics removed ("knieën" -> "knieen"), apostrophes straightened; case is kept."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped.translate(_APOSTROPHES))


def fold_word(word: str) -> str:
    """A word of signs.yml as the matcher compares it: folded, lower case, stripped."""
    return fold(word).lower().strip()


def _as_text(value: Any) -> str:
    """Anything a channel may hand over (None, bytes, numbers) as a str."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def normalise_text(value: Any, max_chars: int) -> str:
    """The message as the matcher sees it. Accepts anything; returns a str of <= max_chars."""
    text = _as_text(value)[: max_chars * 2]  # a first cut, before markup shrinks the text
    text = _HTML_TAG.sub(" ", text)
    text = html.unescape(text)
    text = fold(text)
    text = _CONTROL.sub(" ", text)
    text = _GLUED_PUNCT.sub(r"\1 ", text)
    text = _GLUED_SLASH.sub(r" \1 ", text)
    text = _ELONGATED.sub(r"\1\1", text)
    text = robust_text(text)
    text = _SPACES.sub(" ", text)
    text = _NEWLINES.sub("\n", text)
    return text.strip()[:max_chars]
