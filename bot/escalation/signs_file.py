"""Reading signs.yml: the error it raises, the pattern block its entries share, typed field readers.

Each reader names the place it read ("signs.fever.words") in the SignsFileError it raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, FrozenSet, Mapping, Tuple

from bot.escalation.text import fold_word
from bot.levels import LEVELS

SENTENCE_SCOPE = "sentence"  # a hypothetical cue that runs to the sentence end
CLAUSE_SCOPE = "clause"  # a hypothetical cue that stops at the first punctuation


class SignsFileError(ValueError):
    """signs.yml is malformed (raised when loading, never while detecting)."""


@dataclass(frozen=True)
class PatternBlock:
    """words / forms / regex / phrases / tokens of one term, sign, exclusion or cue."""

    words: Tuple[str, ...] = ()
    forms: Tuple[str, ...] = ()
    regex: Tuple[str, ...] = ()
    phrases: Tuple[str, ...] = ()
    tokens: Tuple[Tuple[Mapping[str, Any], ...], ...] = ()

    def is_empty(self) -> bool:
        return not (self.words or self.forms or self.regex or self.phrases or self.tokens)


def read_section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """The mapping under `key` ({} when absent)."""
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise SignsFileError(f"{where}.{key}: expected a mapping")
    return value


def read_required(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """The value under `key`, which must be there and of type `kind`."""
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SignsFileError(f"{where}.{key}: required, a {kind.__name__}")
    return value


def read_str_list(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SignsFileError(f"{where}: expected a list, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            # YAML 1.1 reads bare no/yes/on/off as booleans: quote them in signs.yml.
            raise SignsFileError(f"{where}: {item!r} is not a non-empty string (quote it)")
    return tuple(value)


def read_words(value: Any, where: str) -> FrozenSet[str]:
    """A word list, folded as the matcher sees text."""
    return frozenset(fold_word(word) for word in read_str_list(value, where))


def read_level(raw: Mapping[str, Any], where: str) -> str:
    level = raw.get("level")
    if level not in LEVELS:
        raise SignsFileError(f"{where}: level {level!r} is not one of {LEVELS}")
    return str(level)


def read_clause_scope(value: Any, where: str) -> bool:
    """True for `clause`, False for `sentence`."""
    if value not in (SENTENCE_SCOPE, CLAUSE_SCOPE):
        raise SignsFileError(f"{where}: scope must be {SENTENCE_SCOPE} or {CLAUSE_SCOPE}")
    return value == CLAUSE_SCOPE


def _read_token_patterns(raw: Any, where: str) -> Tuple[Tuple[Mapping[str, Any], ...], ...]:
    if isinstance(raw, list) and raw and all(isinstance(t, Mapping) for t in raw):
        raw = [raw]  # a single pattern written without the outer list
    if not isinstance(raw, list):
        raise SignsFileError(f"{where}: expected a list of token patterns")
    for index, pattern in enumerate(raw):
        if not isinstance(pattern, list) or not pattern or not all(isinstance(t, Mapping) for t in pattern):
            raise SignsFileError(f"{where}[{index}]: expected a list of token dicts")
    return tuple(tuple(pattern) for pattern in raw)


def _read_regexes(raw: Any, where: str) -> Tuple[str, ...]:
    regexes = read_str_list(raw, where)
    for regex in regexes:
        try:
            re.compile(regex)
        except re.error as error:
            raise SignsFileError(f"{where}: bad pattern {regex!r}: {error}") from None
    return regexes


def read_pattern_block(raw: Any, where: str) -> PatternBlock:
    if raw is None:
        return PatternBlock()
    if not isinstance(raw, Mapping):
        raise SignsFileError(f"{where}: expected a mapping")
    return PatternBlock(
        words=read_str_list(raw.get("words"), f"{where}.words"),
        forms=read_str_list(raw.get("forms"), f"{where}.forms"),
        regex=_read_regexes(raw.get("regex"), f"{where}.regex"),
        phrases=read_str_list(raw.get("phrases"), f"{where}.phrases"),
        tokens=_read_token_patterns(raw.get("tokens") or [], f"{where}.tokens"),
    )
