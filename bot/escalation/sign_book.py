"""signs.yml as typed data: the policy's terms, signs, cues and combinations (no spaCy needed).

`load_sign_book()` reads, validates and caches the file; a malformed file raises SignsFileError
when it is loaded, never while a message is checked. The file's header comments document every
key. The cue sections are parsed in cues.py, the field readers live in signs_file.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

import yaml

from bot import paths
from bot.escalation.cues import (
    Boundaries,
    HypotheticalRules,
    NegationRules,
    WhoseRules,
    parse_boundaries,
    parse_hypothetical,
    parse_negation,
    parse_whose_sign,
)
from bot.escalation.signs_file import (
    PatternBlock,
    SignsFileError,
    read_level,
    read_pattern_block,
    read_required,
    read_section,
    read_str_list,
)
from bot.levels import max_level

MESSAGE_SCOPE = "message"  # a combination whose signs must all be in one message
CONVERSATION_SCOPE = "conversation"  # a combination over every sign of the conversation

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_TERM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class TermDef:
    name: str
    patterns: PatternBlock
    exclude: PatternBlock


@dataclass(frozen=True)
class SignDef:
    id: str
    level: str
    patterns: PatternBlock
    all_of: Tuple[Tuple[str, ...], ...]  # alternatives, each a list of term names
    window: int
    exclude: PatternBlock
    suppressed_by: Tuple[str, ...]
    history: bool = False  # a past event by nature: the writer's resolved past keeps it


@dataclass(frozen=True)
class CombinationDef:
    id: str
    level: str
    requires: Tuple[str, ...]
    any_of: Tuple[str, ...]
    scope: str  # MESSAGE_SCOPE | CONVERSATION_SCOPE

    def satisfied_by(self, pool: FrozenSet[str]) -> bool:
        if not all(sign in pool for sign in self.requires):
            return False
        return not self.any_of or any(sign in pool for sign in self.any_of)

    def used_signs(self, pool: FrozenSet[str]) -> Tuple[str, ...]:
        return tuple(self.requires) + tuple(s for s in self.any_of if s in pool)


@dataclass(frozen=True)
class Settings:
    max_chars: int  # longer messages are cut
    max_term_candidates: int  # all_of: spans of each further term tried per anchor
    max_match_chars: int  # the text reported for a sign is cut to this length


@dataclass(frozen=True)
class SignBook:
    """signs.yml as typed data."""

    settings: Settings
    boundaries: Boundaries
    negation: NegationRules
    hypothetical: HypotheticalRules
    whose: WhoseRules
    terms: Mapping[str, TermDef]
    signs: Mapping[str, SignDef]
    combinations: Tuple[CombinationDef, ...]

    @property
    def sign_ids(self) -> Tuple[str, ...]:
        return tuple(self.signs)

    @property
    def combination_ids(self) -> Tuple[str, ...]:
        return tuple(combination.id for combination in self.combinations)

    def level_of(self, sign_id: str) -> Optional[str]:
        """Level of a sign or combination id, None when the id is unknown."""
        if sign_id in self.signs:
            return self.signs[sign_id].level
        return next((c.level for c in self.combinations if c.id == sign_id), None)

    def conversation_combinations(self, sign_ids: Iterable[str]) -> Tuple[CombinationDef, ...]:
        """The conversation-scope combinations that `sign_ids` (of any turns) satisfy."""
        pool = _clean_ids(sign_ids)
        return tuple(
            c for c in self.combinations if c.scope == CONVERSATION_SCOPE and c.satisfied_by(pool)
        )

    def combine_level(self, sign_ids: Iterable[str]) -> str:
        """Level of stored sign ids (signs and combination ids, any turns).

        The highest level of the known ids, raised by every conversation-scope combination the
        ids satisfy. Message-scope combinations count through their own stored id. Unknown ids
        and non-string items are ignored; never raises.
        """
        pool = _clean_ids(sign_ids)
        known = [level for level in map(self.level_of, sorted(pool)) if level is not None]
        fired = [combination.level for combination in self.conversation_combinations(pool)]
        return max_level(*known, *fired)


def _clean_ids(sign_ids: Any) -> FrozenSet[str]:
    """The non-empty strings of `sign_ids` (a str counts as one id; anything odd as none)."""
    if isinstance(sign_ids, str):
        return frozenset([sign_ids]) if sign_ids else frozenset()
    if sign_ids is None or isinstance(sign_ids, bytes):
        return frozenset()
    try:
        return frozenset(item for item in sign_ids if isinstance(item, str) and item)
    except TypeError:
        return frozenset()


# -- one parser per section of the file ---------------------------------------------------------


def _parse_settings(raw: Mapping[str, Any]) -> Settings:
    return Settings(
        max_chars=read_required(raw, "max_chars", int, "settings"),
        max_term_candidates=read_required(raw, "max_term_candidates", int, "settings"),
        max_match_chars=read_required(raw, "max_match_chars", int, "settings"),
    )


def _parse_terms(raw: Mapping[str, Any]) -> Dict[str, TermDef]:
    terms: Dict[str, TermDef] = {}
    for name, entry in raw.items():
        where = f"terms.{name}"
        if not _TERM_NAME.match(str(name)):
            raise SignsFileError(f"{where}: term names are UPPER_CASE")
        block = read_pattern_block(entry, where)
        if block.is_empty():
            raise SignsFileError(f"{where}: no patterns")
        terms[name] = TermDef(name, block, read_pattern_block(entry.get("exclude"), f"{where}.exclude"))
    return terms


def _read_id(raw: Any, taken: Iterable[str], where: str) -> str:
    if not isinstance(raw, Mapping):
        raise SignsFileError(f"{where}: expected a mapping")
    sign_id = raw.get("id")
    if not isinstance(sign_id, str) or not _SNAKE_CASE.match(sign_id):
        raise SignsFileError(f"{where}: id {sign_id!r} is not snake_case")
    if sign_id in taken:
        raise SignsFileError(f"{where}: duplicate id {sign_id}")
    return sign_id


def _read_all_of(raw: Any, terms: Mapping[str, TermDef], where: str) -> Tuple[Tuple[str, ...], ...]:
    alternatives: List[Tuple[str, ...]] = []
    for alternative in raw or []:
        names = read_str_list(alternative, where)
        unknown = [name for name in names if name not in terms]
        if unknown:
            raise SignsFileError(f"{where}: unknown term {unknown[0]}")
        if names:
            alternatives.append(names)
    return tuple(alternatives)


def _parse_sign(raw: Mapping[str, Any], sign_id: str, terms: Mapping[str, TermDef], window: int) -> SignDef:
    where = f"signs.{sign_id}"
    description = raw.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SignsFileError(f"{where}: description missing")
    all_of = _read_all_of(raw.get("all_of"), terms, f"{where}.all_of")
    block = read_pattern_block(raw, where)
    if block.is_empty() and not all_of:
        raise SignsFileError(f"{where}: no patterns")
    return SignDef(
        id=sign_id,
        level=read_level(raw, where),
        patterns=block,
        all_of=all_of,
        window=int(raw.get("window", window)),
        exclude=read_pattern_block(raw.get("exclude"), f"{where}.exclude"),
        suppressed_by=read_str_list(raw.get("suppressed_by"), f"{where}.suppressed_by"),
        history=_read_flag(raw, "history", where),
    )


def _read_flag(raw: Mapping[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SignsFileError(f"{where}.{key}: expected true or false")
    return value


def _parse_signs(raw: List[Any], terms: Mapping[str, TermDef], window: int) -> Dict[str, SignDef]:
    signs: Dict[str, SignDef] = {}
    for index, entry in enumerate(raw):
        sign_id = _read_id(entry, signs, f"signs[{index}]")
        signs[sign_id] = _parse_sign(entry, sign_id, terms, window)
    for sign in signs.values():
        for other in sign.suppressed_by:
            if other not in signs:
                raise SignsFileError(f"signs.{sign.id}.suppressed_by: unknown sign {other}")
    return signs


def _parse_combination(raw: Mapping[str, Any], combo_id: str, signs: Mapping[str, SignDef]) -> CombinationDef:
    where = f"combinations.{combo_id}"
    requires = read_str_list(raw.get("requires"), f"{where}.requires")
    any_of = read_str_list(raw.get("any_of"), f"{where}.any_of")
    unknown = [sign_id for sign_id in requires + any_of if sign_id not in signs]
    if unknown:
        raise SignsFileError(f"{where}: unknown sign {unknown[0]}")
    if not requires and not any_of:
        raise SignsFileError(f"{where}: needs requires and/or any_of")
    scope = raw.get("scope")
    if scope not in (MESSAGE_SCOPE, CONVERSATION_SCOPE):
        raise SignsFileError(f"{where}: scope must be {MESSAGE_SCOPE} or {CONVERSATION_SCOPE}")
    return CombinationDef(combo_id, read_level(raw, where), requires, any_of, scope)


def _parse_combinations(raw: List[Any], signs: Mapping[str, SignDef]) -> Tuple[CombinationDef, ...]:
    combinations: List[CombinationDef] = []
    taken: Set[str] = set(signs)
    for index, entry in enumerate(raw):
        combo_id = _read_id(entry, taken, f"combinations[{index}]")
        taken.add(combo_id)
        combinations.append(_parse_combination(entry, combo_id, signs))
    return tuple(combinations)


def parse_sign_book(data: Mapping[str, Any], path: str = "<memory>") -> SignBook:
    """Validate the parsed YAML and build a SignBook. Raises SignsFileError."""
    if not isinstance(data, Mapping):
        raise SignsFileError(f"{path}: top level must be a mapping")
    settings = read_section(data, "settings", path)
    terms = _parse_terms(read_section(data, "terms", path))
    signs = _parse_signs(data.get("signs") or [], terms, read_required(settings, "window", int, "settings"))
    hypothetical = parse_hypothetical(read_section(data, "hypothetical", path))
    whose = parse_whose_sign(read_section(data, "whose_sign", path))
    unknown = [name for name in hypothetical.general_questions.unless_any if name not in whose.markers]
    if unknown:
        raise SignsFileError(f"hypothetical.general_questions.unless_any: unknown marker {unknown[0]}")
    return SignBook(
        settings=_parse_settings(settings),
        boundaries=parse_boundaries(read_section(data, "boundaries", path)),
        negation=parse_negation(read_section(data, "negation", path)),
        hypothetical=hypothetical,
        whose=whose,
        terms=terms,
        signs=signs,
        combinations=_parse_combinations(data.get("combinations") or [], signs),
    )


@lru_cache(maxsize=8)
def _load_sign_book_cached(path: str) -> SignBook:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return parse_sign_book(data, path)


def load_sign_book(path: Path | str = paths.SIGNS) -> SignBook:
    """signs.yml parsed and validated (cached per resolved path)."""
    return _load_sign_book_cached(str(Path(path).resolve()))
