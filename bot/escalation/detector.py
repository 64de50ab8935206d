"""Deterministic warning-sign detector for the escalation policy (shared/spec/escalation.md).

Everything the detector knows about the policy lives in `signs.yml` (terms, signs, negation and
hypothetical cues, combinations); this module is the generic engine:

1. normalise the text (HTML removed, diacritics folded, glued punctuation split) and run the
   assistant's Dutch spaCy pipeline (`bot.nlp.load_dutch_pipeline()`);
2. find terms and sign patterns with one spaCy `Matcher` + one `PhraseMatcher` (LOWER / LEMMA);
3. build sign instances: direct patterns, or `all_of` term co-occurrences within a window;
4. drop negated instances and set hypothetical ones apart (scope rules documented in the YAML);
5. apply `combinations` over this message's signs plus `earlier_sign_ids` (conversation memory);
6. return the highest level.

Same input, same output: every collection is sorted before it is used. `detect()` never raises.
"""
from __future__ import annotations

import bisect
import html
import itertools
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

import yaml

logger = logging.getLogger(__name__)

LEVELS: Tuple[str, ...] = ("none", "soon", "urgent_now", "urgent_112")
_RANK: Dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}
DEFAULT_SIGNS_PATH = Path(__file__).with_name("signs.yml")

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_TERM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

# --------------------------------------------------------------------------------------------
# Levels
# --------------------------------------------------------------------------------------------


def level_rank(level: str) -> int:
    """Position of `level` in LEVELS (none=0 … urgent_112=3). Unknown levels raise ValueError."""
    try:
        return _RANK[level]
    except (KeyError, TypeError):
        raise ValueError(f"unknown escalation level {level!r}; expected one of {LEVELS}") from None


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as level `a` is lower than, equal to or higher than level `b`."""
    ra, rb = level_rank(a), level_rank(b)
    return (ra > rb) - (ra < rb)


def max_level(*levels: str) -> str:
    """The highest of the given levels ("none" when none are given)."""
    best = "none"
    for level in levels:
        if level_rank(level) > _RANK[best]:
            best = level
    return best


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignMatch:
    """One warning sign (or combination) found in a message, with the text that triggered it
    (as the matcher saw it: HTML removed, diacritics folded; combinations join their parts)."""

    sign_id: str
    level: str
    text: str

    def to_dict(self) -> Dict[str, str]:
        return {"sign_id": self.sign_id, "level": self.level, "text": self.text}


@dataclass(frozen=True)
class Detection:
    """The detector's verdict on one message.

    `signs` are present signs (context signs of level none included, for memory and audit) and
    fired combinations; `hypothetical` and `negated` signs never raise the level.
    """

    level: str
    signs: Tuple[SignMatch, ...] = ()
    hypothetical: Tuple[SignMatch, ...] = ()
    negated: Tuple[SignMatch, ...] = ()

    @property
    def sign_ids(self) -> Tuple[str, ...]:
        return tuple(match.sign_id for match in self.signs)

    @property
    def escalates(self) -> bool:
        """True when the message carries a sign above level none."""
        return self.level != "none"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "level": self.level,
            "signs": [match.to_dict() for match in self.signs],
            "hypothetical": [match.to_dict() for match in self.hypothetical],
            "negated": [match.to_dict() for match in self.negated],
        }


NO_DETECTION = Detection(level="none")

# --------------------------------------------------------------------------------------------
# Text normalisation (applied to messages and to every word of signs.yml alike)
# --------------------------------------------------------------------------------------------

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


def normalise_text(text: Any, max_chars: int = 50000) -> str:
    """The message as the matcher sees it. Accepts anything; returns a str of <= max_chars."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    text = text[: max_chars * 2]
    text = _HTML_TAG.sub(" ", text)
    text = html.unescape(text)
    text = fold(text)
    text = _CONTROL.sub(" ", text)
    text = _GLUED_PUNCT.sub(r"\1 ", text)
    text = _GLUED_SLASH.sub(r" \1 ", text)
    text = _ELONGATED.sub(r"\1\1", text)
    text = _SPACES.sub(" ", text)  # one space: spaCy makes a token of every extra space
    text = _NEWLINES.sub("\n", text)
    return text.strip()[:max_chars]


def _fold_word(word: str) -> str:
    return fold(word).lower().strip()


# --------------------------------------------------------------------------------------------
# The sign book: signs.yml parsed and validated (no spaCy needed)
# --------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class TermDef:
    name: str
    patterns: PatternBlock
    exclude: PatternBlock


@dataclass(frozen=True)
class SignDef:
    id: str
    level: str
    description: str
    patterns: PatternBlock
    all_of: Tuple[Tuple[str, ...], ...]
    window: int
    exclude: PatternBlock
    suppressed_by: Tuple[str, ...]


@dataclass(frozen=True)
class CombinationDef:
    id: str
    level: str
    description: str
    requires: Tuple[str, ...]
    any_of: Tuple[str, ...]
    scope: str  # "message" | "conversation"

    def satisfied_by(self, pool: FrozenSet[str]) -> bool:
        if not all(sign in pool for sign in self.requires):
            return False
        return not self.any_of or any(sign in pool for sign in self.any_of)

    def used_signs(self, pool: FrozenSet[str]) -> Tuple[str, ...]:
        return tuple(self.requires) + tuple(s for s in self.any_of if s in pool)


@dataclass(frozen=True)
class HypotheticalCueDef:
    patterns: PatternBlock
    requires_any: FrozenSet[str]
    unless_any: FrozenSet[str]
    until_any: FrozenSet[str]  # scope ends after the first of these words (must occur)
    clause_scope: bool  # scope ends at the first punctuation instead of the sentence end


@dataclass(frozen=True)
class PostCueDef:
    patterns: PatternBlock
    clause_final: bool
    not_followed_by: FrozenSet[str]


@dataclass(frozen=True)
class SignBook:
    """signs.yml as typed data."""

    path: str
    window: int
    max_chars: int
    sentence_chars: str
    clause_words: FrozenSet[str]
    strong_words: FrozenSet[str]
    strong_phrases: Tuple[str, ...]
    negation_max_gap: int
    negation_post_max_gap: int
    coordination: FrozenSet[str]
    negation_cues: PatternBlock
    negation_clause_cues: PatternBlock
    normal_function: PatternBlock
    normal_function_not_followed_by: FrozenSet[str]
    pseudo_negation: PatternBlock
    post_cues: Tuple[PostCueDef, ...]
    hypothetical_cues: Tuple[HypotheticalCueDef, ...]
    hypothetical_max_scope: int
    question_words: FrozenSet[str]
    generic_words: FrozenSet[str]
    first_person_words: FrozenSet[str]
    terms: Mapping[str, TermDef]
    signs: Mapping[str, SignDef]
    combinations: Tuple[CombinationDef, ...]

    # -- lookups ---------------------------------------------------------------------------
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
        for combination in self.combinations:
            if combination.id == sign_id:
                return combination.level
        return None

    def description_of(self, sign_id: str) -> Optional[str]:
        if sign_id in self.signs:
            return self.signs[sign_id].description
        for combination in self.combinations:
            if combination.id == sign_id:
                return combination.description
        return None

    def combine_level(self, sign_ids: Iterable[str]) -> str:
        """Level of a set of stored sign ids (signs and combination ids, any turns).

        The highest level of the known ids, raised by every conversation-scope combination the
        ids satisfy. Message-scope combinations count through their own stored id. Unknown ids
        and non-string items are ignored; never raises.
        """
        pool = _clean_ids(sign_ids)
        best = "none"
        for sign_id in sorted(pool):
            level = self.level_of(sign_id)
            if level is not None:
                best = max_level(best, level)
        for combination in self.combinations:
            if combination.scope == "conversation" and combination.satisfied_by(pool):
                best = max_level(best, combination.level)
        return best


def _clean_ids(sign_ids: Any) -> FrozenSet[str]:
    if sign_ids is None or isinstance(sign_ids, (str, bytes)):
        return frozenset([sign_ids]) if isinstance(sign_ids, str) and sign_ids else frozenset()
    try:
        return frozenset(item for item in sign_ids if isinstance(item, str) and item)
    except TypeError:
        return frozenset()


def _as_str_list(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SignsFileError(f"{where}: expected a list, got {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            # YAML 1.1 reads bare no/yes/on/off as booleans: quote them in signs.yml.
            raise SignsFileError(f"{where}: {item!r} is not a non-empty string (quote it)")
        out.append(item)
    return tuple(out)


def _pattern_block(raw: Any, where: str) -> PatternBlock:
    if raw is None:
        return PatternBlock()
    if not isinstance(raw, Mapping):
        raise SignsFileError(f"{where}: expected a mapping")
    tokens_raw = raw.get("tokens") or []
    if isinstance(tokens_raw, list) and tokens_raw and all(isinstance(t, Mapping) for t in tokens_raw):
        tokens_raw = [tokens_raw]  # a single pattern written without the outer list
    if not isinstance(tokens_raw, list):
        raise SignsFileError(f"{where}.tokens: expected a list of token patterns")
    tokens: List[Tuple[Mapping[str, Any], ...]] = []
    for index, pattern in enumerate(tokens_raw):
        if not isinstance(pattern, list) or not pattern or not all(
            isinstance(tok, Mapping) for tok in pattern
        ):
            raise SignsFileError(f"{where}.tokens[{index}]: expected a list of token dicts")
        tokens.append(tuple(pattern))
    for regex in raw.get("regex") or []:
        try:
            re.compile(regex)
        except (re.error, TypeError) as error:
            raise SignsFileError(f"{where}.regex: bad pattern {regex!r}: {error}") from None
    return PatternBlock(
        words=_as_str_list(raw.get("words"), f"{where}.words"),
        forms=_as_str_list(raw.get("forms"), f"{where}.forms"),
        regex=_as_str_list(raw.get("regex"), f"{where}.regex"),
        phrases=_as_str_list(raw.get("phrases"), f"{where}.phrases"),
        tokens=tuple(tokens),
    )


def _words(value: Any, where: str) -> FrozenSet[str]:
    return frozenset(_fold_word(word) for word in _as_str_list(value, where))


def _scope(value: Any, where: str) -> bool:
    if value not in ("sentence", "clause"):
        raise SignsFileError(f"{where}: scope must be sentence or clause")
    return value == "clause"


def _check_level(level: Any, where: str) -> str:
    if level not in _RANK:
        raise SignsFileError(f"{where}: level {level!r} is not one of {LEVELS}")
    return str(level)


def parse_sign_book(data: Mapping[str, Any], path: str = "<memory>") -> SignBook:
    """Validate the parsed YAML and build a SignBook. Raises SignsFileError."""
    if not isinstance(data, Mapping):
        raise SignsFileError(f"{path}: top level must be a mapping")
    settings = data.get("settings") or {}
    window = int(settings.get("window", 10))
    boundaries = data.get("boundaries") or {}
    negation = data.get("negation") or {}
    hypothetical = data.get("hypothetical") or {}

    terms: Dict[str, TermDef] = {}
    for name, raw in (data.get("terms") or {}).items():
        if not _TERM_NAME.match(str(name)):
            raise SignsFileError(f"terms.{name}: term names are UPPER_CASE")
        block = _pattern_block(raw, f"terms.{name}")
        if block.is_empty():
            raise SignsFileError(f"terms.{name}: no patterns")
        terms[name] = TermDef(name, block, _pattern_block((raw or {}).get("exclude"), f"terms.{name}.exclude"))

    signs: Dict[str, SignDef] = {}
    for index, raw in enumerate(data.get("signs") or []):
        where = f"signs[{index}]"
        if not isinstance(raw, Mapping):
            raise SignsFileError(f"{where}: expected a mapping")
        sign_id = raw.get("id")
        if not isinstance(sign_id, str) or not _SNAKE_CASE.match(sign_id):
            raise SignsFileError(f"{where}: id {sign_id!r} is not snake_case")
        if sign_id in signs:
            raise SignsFileError(f"{where}: duplicate id {sign_id}")
        where = f"signs.{sign_id}"
        description = raw.get("description")
        if not isinstance(description, str) or not description.strip():
            raise SignsFileError(f"{where}: description missing")
        all_of_raw = raw.get("all_of") or []
        all_of: List[Tuple[str, ...]] = []
        for alternative in all_of_raw:
            names = _as_str_list(alternative, f"{where}.all_of")
            for name in names:
                if name not in terms:
                    raise SignsFileError(f"{where}.all_of: unknown term {name}")
            if names:
                all_of.append(names)
        block = _pattern_block(raw, where)
        if block.is_empty() and not all_of:
            raise SignsFileError(f"{where}: no patterns")
        signs[sign_id] = SignDef(
            id=sign_id,
            level=_check_level(raw.get("level"), where),
            description=description.strip(),
            patterns=block,
            all_of=tuple(all_of),
            window=int(raw.get("window", window)),
            exclude=_pattern_block(raw.get("exclude"), f"{where}.exclude"),
            suppressed_by=_as_str_list(raw.get("suppressed_by"), f"{where}.suppressed_by"),
        )
    for sign in signs.values():
        for other in sign.suppressed_by:
            if other not in signs:
                raise SignsFileError(f"signs.{sign.id}.suppressed_by: unknown sign {other}")

    combinations: List[CombinationDef] = []
    seen: Set[str] = set(signs)
    for index, raw in enumerate(data.get("combinations") or []):
        where = f"combinations[{index}]"
        combo_id = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(combo_id, str) or not _SNAKE_CASE.match(combo_id) or combo_id in seen:
            raise SignsFileError(f"{where}: id {combo_id!r} missing, not snake_case or duplicate")
        seen.add(combo_id)
        requires = _as_str_list(raw.get("requires"), f"{where}.requires")
        any_of = _as_str_list(raw.get("any_of"), f"{where}.any_of")
        for sign_id in requires + any_of:
            if sign_id not in signs:
                raise SignsFileError(f"{where}: unknown sign {sign_id}")
        if not requires and not any_of:
            raise SignsFileError(f"{where}: needs requires and/or any_of")
        scope = raw.get("scope", "conversation")
        if scope not in ("message", "conversation"):
            raise SignsFileError(f"{where}: scope must be message or conversation")
        combinations.append(
            CombinationDef(
                id=combo_id,
                level=_check_level(raw.get("level"), where),
                description=str(raw.get("description") or "").strip(),
                requires=requires,
                any_of=any_of,
                scope=scope,
            )
        )

    post_cues = tuple(
        PostCueDef(
            _pattern_block(raw, f"negation.post[{i}]"),
            bool(raw.get("clause_final", False)),
            _words(raw.get("not_followed_by"), f"negation.post[{i}].not_followed_by"),
        )
        for i, raw in enumerate(negation.get("post") or [])
    )
    hyp_cues = tuple(
        HypotheticalCueDef(
            patterns=_pattern_block(raw, f"hypothetical.cues[{i}]"),
            requires_any=_words(raw.get("requires_any"), f"hypothetical.cues[{i}].requires_any"),
            unless_any=_words(raw.get("unless_any"), f"hypothetical.cues[{i}].unless_any"),
            until_any=_words(raw.get("until_any"), f"hypothetical.cues[{i}].until_any"),
            clause_scope=_scope(
                raw.get("scope", hypothetical.get("scope", "clause")), f"hypothetical.cues[{i}].scope"
            ),
        )
        for i, raw in enumerate(hypothetical.get("cues") or [])
    )
    general = hypothetical.get("general_questions") or {}
    normal = negation.get("normal_function") or {}
    return SignBook(
        path=path,
        window=window,
        max_chars=int(settings.get("max_chars", 50000)),
        sentence_chars=str(boundaries.get("sentence_chars", ".!?;")),
        clause_words=_words(boundaries.get("clause_words"), "boundaries.clause_words"),
        strong_words=_words(boundaries.get("strong_words"), "boundaries.strong_words"),
        strong_phrases=_as_str_list(boundaries.get("strong_phrases"), "boundaries.strong_phrases"),
        negation_max_gap=int(negation.get("max_gap", 4)),
        negation_post_max_gap=int(negation.get("post_max_gap", 1)),
        coordination=_words(negation.get("coordination"), "negation.coordination"),
        negation_cues=_pattern_block(negation.get("cues"), "negation.cues"),
        negation_clause_cues=_pattern_block(negation.get("clause_cues"), "negation.clause_cues"),
        normal_function=_pattern_block(normal, "negation.normal_function"),
        normal_function_not_followed_by=_words(
            normal.get("not_followed_by"), "negation.normal_function.not_followed_by"
        ),
        pseudo_negation=_pattern_block(negation.get("pseudo"), "negation.pseudo"),
        post_cues=post_cues,
        hypothetical_cues=hyp_cues,
        hypothetical_max_scope=int(hypothetical.get("max_scope", 40)),
        question_words=_words(general.get("question_words"), "general_questions.question_words"),
        generic_words=_words(general.get("generic_words"), "general_questions.generic_words"),
        first_person_words=_words(
            general.get("first_person_words"), "general_questions.first_person_words"
        ),
        terms=terms,
        signs=signs,
        combinations=tuple(combinations),
    )


@lru_cache(maxsize=8)
def _load_sign_book_cached(path: str) -> SignBook:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return parse_sign_book(data, path)


def load_sign_book(path: Path | str = DEFAULT_SIGNS_PATH) -> SignBook:
    """signs.yml parsed and validated (cached per resolved path)."""
    return _load_sign_book_cached(str(Path(path).resolve()))


def combine_level(sign_ids: Iterable[str], path: Path | str = DEFAULT_SIGNS_PATH) -> str:
    """Level of stored sign ids, for the action server (see SignBook.combine_level)."""
    try:
        return load_sign_book(path).combine_level(sign_ids)
    except SignsFileError:
        raise
    except Exception:  # pragma: no cover - defensive: a broken id list never breaks a turn
        logger.exception("combine_level failed")
        return "none"


# --------------------------------------------------------------------------------------------
# Matching engine
# --------------------------------------------------------------------------------------------

Span = Tuple[int, int]  # token start (inclusive), end (exclusive)


@dataclass(frozen=True)
class _Instance:
    sign_id: str
    parts: Tuple[Span, ...]

    @property
    def start(self) -> int:
        return min(part[0] for part in self.parts)

    @property
    def end(self) -> int:
        return max(part[1] for part in self.parts)


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class _Coverage:
    """Which tokens a set of spans covers; `hits(span)` in O(1) (long messages stay linear)."""

    def __init__(self, n: int, spans: Iterable[Span]) -> None:
        marks = [0] * (n + 1)
        for start, end in spans:
            if end > start:
                marks[start] += 1
                marks[min(end, n)] -= 1
        covered = list(itertools.accumulate(marks[:n]))
        self._prefix = list(itertools.accumulate([0] + [1 if c > 0 else 0 for c in covered]))
        self._n = n

    def hits(self, span: Span) -> bool:
        start, end = max(span[0], 0), min(span[1], self._n)
        return end > start and self._prefix[end] - self._prefix[start] > 0


class _DocView:
    """Token facts of one doc: sentences, clause and strong boundaries (prefix sums)."""

    def __init__(self, doc: Any, book: SignBook) -> None:
        self.doc = doc
        n = len(doc)
        self.n = n
        self.lower: List[str] = [token.lower_ for token in doc]
        self.sentence: List[int] = [0] * n
        clause_boundary = [0] * n
        strong_boundary = [0] * n
        sentence_chars = set(book.sentence_chars)
        sentence = 0
        for i, token in enumerate(doc):
            text = token.text
            newline = token.is_space and "\n" in text
            ends_sentence = newline or (bool(text) and all(ch in sentence_chars for ch in text))
            self.sentence[i] = sentence
            if ends_sentence:
                sentence += 1
            if ends_sentence or token.is_punct or newline or self.lower[i] in book.clause_words:
                clause_boundary[i] = 1
            if ends_sentence or self.lower[i] in book.strong_words:
                strong_boundary[i] = 1
        self.clause_boundary = clause_boundary
        self.is_punct: List[bool] = [token.is_punct for token in doc]
        self._sentence_spans: List[Span] = []
        for i in range(n):
            if i == 0 or self.sentence[i] != self.sentence[i - 1]:
                self._sentence_spans.append((i, i + 1))
            else:
                first, _ = self._sentence_spans[-1]
                self._sentence_spans[-1] = (first, i + 1)
        self._clause_prefix = list(itertools.accumulate([0] + clause_boundary))
        self.strong_boundary = strong_boundary

    def clause_break_between(self, start: int, end: int) -> bool:
        """Whether a clause boundary lies in tokens [start, end)."""
        if end <= start:
            return False
        return self._clause_prefix[end] - self._clause_prefix[start] > 0

    def sentence_bounds(self, index: int) -> Span:
        return self._sentence_spans[self.sentence[index]]

    def sentences(self) -> List[Span]:
        return list(self._sentence_spans)

    def text(self, span: Span, limit: int = 160) -> str:
        value = self.doc[span[0] : span[1]].text.strip()
        return value if len(value) <= limit else value[: limit - 1] + "…"


class WarningSignDetector:
    """Finds the policy's warning signs in a message. Build with `from_file()`."""

    def __init__(self, book: SignBook, nlp: Any) -> None:
        from spacy.matcher import Matcher, PhraseMatcher

        self.book = book
        self.nlp = nlp
        self._lock = threading.Lock()
        self._matcher = Matcher(nlp.vocab, validate=True)
        self._phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._labels: Dict[int, str] = {}
        self._term_words: Dict[str, List[str]] = {}
        self._gap_stop: List[str] = sorted(
            book.clause_words | self._single_words(book.negation_cues)
        )
        for name, term in book.terms.items():
            self._term_words[name] = sorted(
                {_fold_word(w) for w in term.patterns.words + term.patterns.forms}
            )
        self._hyp_config: Dict[str, HypotheticalCueDef] = {}
        self._post_config: Dict[str, PostCueDef] = {}
        self._compile()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_file(
        cls, path: Path | str = DEFAULT_SIGNS_PATH, nlp: Optional[Any] = None
    ) -> "WarningSignDetector":
        """Detector for the signs file at `path`, on `nlp` (default: the assistant's pipeline)."""
        book = load_sign_book(path)
        if nlp is None:
            from bot.nlp import load_dutch_pipeline

            nlp = load_dutch_pipeline()
        return cls(book, nlp)

    @staticmethod
    def _single_words(block: PatternBlock) -> Set[str]:
        return {_fold_word(w) for w in block.words + block.forms if " " not in w.strip()}

    def _compile(self) -> None:
        book = self.book
        for name, term in book.terms.items():
            self._add(f"T:{name}", term.patterns)
            self._add(f"TX:{name}", term.exclude)
        for sign in book.signs.values():
            self._add(f"S:{sign.id}", sign.patterns)
            self._add(f"SX:{sign.id}", sign.exclude)
        self._add("NC", book.negation_cues)
        self._add("NCC", book.negation_clause_cues)
        self._add("NF", book.normal_function)
        self._add("NP", book.pseudo_negation)
        for index, post in enumerate(book.post_cues):
            self._post_config[f"NQ:{index}"] = post
            self._add(f"NQ:{index}", post.patterns)
        for index, cue in enumerate(book.hypothetical_cues):
            self._hyp_config[f"H:{index}"] = cue
            self._add(f"H:{index}", cue.patterns)
        self._add("B", PatternBlock(phrases=book.strong_phrases))

    def _label(self, label: str) -> str:
        self._labels[self.nlp.vocab.strings.add(label)] = label
        return label

    def _add(self, label: str, block: PatternBlock) -> None:
        if block.is_empty():
            return
        self._label(label)
        single_lower: Set[str] = set()
        single_both: Set[str] = set()
        phrases: Set[str] = set(_fold_word(p) for p in block.phrases)
        for word in block.words + block.forms:
            folded = _fold_word(word)
            if len(self.nlp.make_doc(folded)) != 1:
                phrases.add(folded)  # "no longer", "50+": tokenised as several tokens
            elif word in block.words:
                single_both.add(folded)
            else:
                single_lower.add(folded)
        patterns: List[List[Dict[str, Any]]] = []
        if single_both | single_lower:
            patterns.append([{"LOWER": {"IN": sorted(single_both | single_lower)}}])
        if single_both:
            patterns.append([{"LEMMA": {"IN": sorted(single_both)}}])
        for regex in block.regex:
            patterns.append([{"LOWER": {"REGEX": regex}}])
        for token_pattern in block.tokens:
            patterns.append(self._expand(token_pattern, label))
        if patterns:
            try:
                self._matcher.add(label, patterns)
            except Exception as error:  # spaCy validation error: report which entry
                raise SignsFileError(f"{label}: invalid token pattern: {error}") from None
        if phrases:
            docs = [self.nlp.make_doc(phrase) for phrase in sorted(phrases) if phrase]
            self._phrases.add(label, docs)

    def _expand(self, pattern: Sequence[Mapping[str, Any]], label: str) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for token in pattern:
            if "GAP" in token:
                gap = int(token["GAP"])
                stop = set(self._gap_stop)
                stop.update(self._expand_value("NOT_IN", token.get("NOT", []), label))
                for _ in range(gap):
                    out.append(
                        {
                            "IS_PUNCT": False,
                            "IS_SPACE": False,
                            "LOWER": {"NOT_IN": sorted(stop)},
                            "OP": "?",
                        }
                    )
                continue
            out.append(self._expand_token(dict(token), label))
        return out

    def _expand_token(self, token: Dict[str, Any], label: str) -> Dict[str, Any]:
        result: Dict[str, Any] = {}
        for key, value in token.items():
            if key in ("LOWER", "LEMMA", "NORM", "TEXT", "ORTH") and isinstance(value, Mapping):
                result[key] = {op: self._expand_value(op, v, label) for op, v in value.items()}
            elif key in ("LOWER", "LEMMA", "NORM") and isinstance(value, str):
                result[key] = _fold_word(value)
            else:
                result[key] = value
        return result

    def _expand_value(self, op: str, value: Any, label: str) -> Any:
        if op not in ("IN", "NOT_IN"):
            return value
        items = value if isinstance(value, list) else [value]
        expanded: Set[str] = set()
        for item in items:
            if isinstance(item, str) and item.startswith("@"):
                name = item[1:]
                if name not in self._term_words:
                    raise SignsFileError(f"{label}: unknown term reference {item}")
                expanded.update(self._term_words[name])
            elif isinstance(item, str):
                expanded.add(_fold_word(item))
            else:
                raise SignsFileError(f"{label}: {item!r} in {op} is not a string (quote it)")
        return sorted(expanded)

    # -- detection -------------------------------------------------------------------------
    def detect(self, text: str, earlier_sign_ids: Iterable[str] = ()) -> Detection:
        """Signs in `text`, negated and hypothetical ones set apart, combinations applied over
        this message plus `earlier_sign_ids`. Never raises."""
        try:
            return self._detect(text, _clean_ids(earlier_sign_ids))
        except Exception:  # pragma: no cover - defensive; tests feed hostile input
            logger.exception("warning-sign detection failed; reporting no signs")
            return NO_DETECTION

    def combine_level(self, sign_ids: Iterable[str]) -> str:
        return self.book.combine_level(sign_ids)

    def _parse(self, text: str) -> Any:
        with self._lock:  # spaCy pipelines are not guaranteed thread-safe
            doc = self.nlp(text)
            if len(doc) and not doc.has_annotation("LEMMA"):
                for token in doc:
                    token.lemma_ = token.lower_
            raw = [(self._labels.get(m, ""), s, e) for m, s, e in self._matcher(doc)]
            raw += [(self._labels.get(m, ""), s, e) for m, s, e in self._phrases(doc)]
        return doc, sorted(set(raw), key=lambda item: (item[1], item[2], item[0]))

    def _detect(self, text: Any, memory: FrozenSet[str]) -> Detection:
        book = self.book
        prepared = normalise_text(text, book.max_chars)
        if not prepared.strip():
            return self._finish((), (), (), memory)
        doc, matches = self._parse(prepared)
        view = _DocView(doc, book)

        by_label: Dict[str, List[Span]] = {}
        for label, start, end in matches:
            by_label.setdefault(label, []).append((start, end))

        # 1. terms (minus their exclusions)
        terms: Dict[str, List[Span]] = {}
        for name in book.terms:
            excluded = _Coverage(view.n, by_label.get(f"TX:{name}", []))
            spans = [s for s in by_label.get(f"T:{name}", []) if not excluded.hits(s)]
            if spans:
                terms[name] = sorted(set(spans))

        # 2. sign instances
        instances: List[_Instance] = []
        for sign in book.signs.values():
            excluded = _Coverage(view.n, by_label.get(f"SX:{sign.id}", []))
            candidates: List[Tuple[Span, ...]] = [(s,) for s in by_label.get(f"S:{sign.id}", [])]
            for alternative in sign.all_of:
                candidates.extend(self._cooccurrences(alternative, terms, view, sign.window))
            seen: Set[Tuple[Span, ...]] = set()
            for parts in candidates:
                key = tuple(sorted(parts))
                if key in seen:
                    continue
                seen.add(key)
                if any(excluded.hits(part) for part in key):
                    continue
                instances.append(_Instance(sign.id, key))

        # 3. spans that absorb cue words: terms, patterns of escalating signs, pseudo negations
        absorbing: List[Span] = [s for spans in terms.values() for s in spans]
        absorbing += by_label.get("NP", [])
        for sign in book.signs.values():
            if sign.level != "none":
                absorbing += by_label.get(f"S:{sign.id}", [])
        absorbing_cover = _Coverage(view.n, absorbing)
        term_like: List[Span] = sorted(
            set(s for spans in terms.values() for s in spans)
            | set(s for label, spans in by_label.items() if label.startswith("S:") for s in spans)
        )

        negated_by_token: Dict[int, List[Span]] = {}
        for span, cue in self._negated_spans(by_label, absorbing_cover, term_like, view):
            for token in range(span[0], span[1]):
                negated_by_token.setdefault(token, []).append(cue)
        hypothetical_cover = _Coverage(
            view.n, self._hypothetical_scopes(by_label, absorbing_cover, view)
        )

        def is_negated(part: Span) -> bool:
            return any(
                not _overlaps(part, cue)  # a cue never negates the phrase it belongs to
                for token in range(part[0], part[1])
                for cue in negated_by_token.get(token, ())
            )

        # 4. status per instance
        present: Dict[str, _Instance] = {}
        hypothetical: Dict[str, _Instance] = {}
        negated: Dict[str, _Instance] = {}
        for instance in sorted(instances, key=lambda i: (i.start, i.end, i.sign_id)):
            if any(is_negated(part) for part in instance.parts):
                negated.setdefault(instance.sign_id, instance)
            elif any(hypothetical_cover.hits(part) for part in instance.parts):
                hypothetical.setdefault(instance.sign_id, instance)
            else:
                present.setdefault(instance.sign_id, instance)

        present_ids = set(present)
        for sign_id in sorted(present_ids):
            if any(other in present_ids for other in book.signs[sign_id].suppressed_by):
                del present[sign_id]

        def matches_of(chosen: Mapping[str, _Instance], skip: Iterable[str] = ()) -> Tuple[SignMatch, ...]:
            skipped = set(skip)
            ordered = sorted(chosen.values(), key=lambda i: (i.start, i.end, i.sign_id))
            return tuple(
                SignMatch(i.sign_id, book.signs[i.sign_id].level, view.text((i.start, i.end)))
                for i in ordered
                if i.sign_id not in skipped
            )

        found = matches_of(present)
        hyp = matches_of(hypothetical, skip=present)
        neg = matches_of(negated, skip=set(present) | set(hypothetical))
        return self._finish(found, hyp, neg, memory)

    def _finish(
        self,
        found: Tuple[SignMatch, ...],
        hyp: Tuple[SignMatch, ...],
        neg: Tuple[SignMatch, ...],
        memory: FrozenSet[str],
    ) -> Detection:
        book = self.book
        message_ids = frozenset(match.sign_id for match in found)
        text_of = {match.sign_id: match.text for match in found}
        combos: List[SignMatch] = []
        for combination in book.combinations:
            pool = message_ids if combination.scope == "message" else message_ids | memory
            if not combination.satisfied_by(pool):
                continue
            used = combination.used_signs(pool)
            if not any(sign in message_ids for sign in used):
                continue  # fired entirely in earlier turns: already reported there
            now = [text_of[s] for s in used if s in message_ids]
            earlier = sorted(s for s in used if s not in message_ids)
            text = " + ".join(now)
            if earlier:
                text += f" [eerder: {', '.join(earlier)}]"
            combos.append(SignMatch(combination.id, combination.level, text))
        combos.sort(key=lambda m: (-_RANK[m.level], m.sign_id))
        level = max_level(*(m.level for m in found), *(m.level for m in combos))
        return Detection(level=level, signs=found + tuple(combos), hypothetical=hyp, negated=neg)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _cooccurrences(
        names: Sequence[str], terms: Mapping[str, List[Span]], view: _DocView, window: int
    ) -> List[Tuple[Span, ...]]:
        if not all(name in terms for name in names):
            return []
        if len(names) == 1:
            return [(span,) for span in terms[names[0]]]
        starts = {name: [s[0] for s in terms[name]] for name in names}
        out: List[Tuple[Span, ...]] = []
        for anchor in terms[names[0]]:
            sentence = view.sentence[anchor[0]]
            pools: List[List[Span]] = [[anchor]]
            for name in names[1:]:
                spans = terms[name]
                lo = bisect.bisect_left(starts[name], anchor[0] - window)
                hi = bisect.bisect_right(starts[name], anchor[1] + window)
                pool = [s for s in spans[lo:hi] if view.sentence[s[0]] == sentence]
                if not pool:
                    break
                pools.append(pool[:12])
            else:
                for combo in itertools.product(*pools):
                    first = min(part[0] for part in combo)
                    last = max(part[1] for part in combo)
                    if last - first <= window:
                        out.append(tuple(combo))
        return out

    def _negated_spans(
        self,
        by_label: Mapping[str, List[Span]],
        absorbing: _Coverage,
        term_like: List[Span],
        view: _DocView,
    ) -> List[Tuple[Span, Span]]:
        book = self.book
        absorbed = absorbing.hits

        cues: List[Span] = [s for s in by_label.get("NC", []) if not absorbed(s)]
        for start, end in by_label.get("NF", []):
            following = view.lower[end] if end < view.n else ""
            if following not in book.normal_function_not_followed_by and not absorbed((start, end)):
                cues.append((start, end))

        governed: List[Tuple[Span, Span]] = []  # (governed span, the cue governing it)
        starts = [s[0] for s in term_like]
        for cue_start, cue_end in sorted(set(by_label.get("NCC", []))):
            # clause cues ("ik denk niet dat"): every term up to the end of the clause
            lo = bisect.bisect_left(starts, cue_end)
            for span in term_like[lo:]:
                if view.clause_break_between(cue_end, span[0]):
                    break
                governed.append((span, (cue_start, cue_end)))
        for cue_start, cue_end in sorted(set(cues)):
            lo = bisect.bisect_left(starts, cue_end)
            hi = bisect.bisect_right(starts, cue_end + book.negation_max_gap)
            candidates = [s for s in term_like[lo:hi] if not view.clause_break_between(cue_end, s[0])]
            if not candidates:
                continue
            first_start = candidates[0][0]
            scope_end = max(s[1] for s in candidates if s[0] == first_start)
            chosen = [s for s in candidates if s[0] < scope_end]
            # chain over coordination: "geen koorts of rillingen"
            while True:
                at = bisect.bisect_left(starts, scope_end)
                if at >= len(term_like) or term_like[at][0] - scope_end > 6:
                    break
                following = term_like[at : bisect.bisect_right(starts, term_like[at][0])]
                nxt = following[0]
                between = view.lower[scope_end : nxt[0]]
                if not between or not all(word in book.coordination for word in between):
                    break
                if not any(word in ("of", "noch", "or", "nor", "en/of") for word in between):
                    break
                group = [s for s in following if s[0] == nxt[0]]
                chosen.extend(group)
                scope_end = max(s[1] for s in group)
            governed.extend((span, (cue_start, cue_end)) for span in chosen)

        ends = sorted(term_like, key=lambda s: (s[1], s[0]))
        end_keys = [s[1] for s in ends]
        for label, spans in by_label.items():
            if not label.startswith("NQ:"):
                continue
            config = self._post_config[label]
            for cue_start, cue_end in spans:
                if absorbed((cue_start, cue_end)):
                    continue
                if config.clause_final and cue_end < view.n and not view.clause_boundary[cue_end]:
                    continue
                if cue_end < view.n and view.lower[cue_end] in config.not_followed_by:
                    continue  # "koorts heb ik niet gemeten" denies the measuring, not the fever
                lo = bisect.bisect_left(end_keys, cue_start - book.negation_post_max_gap)
                hi = bisect.bisect_right(end_keys, cue_start)
                for span in ends[lo:hi]:
                    gap = cue_start - span[1]
                    if 0 <= gap <= book.negation_post_max_gap and not view.clause_break_between(
                        span[1], cue_start
                    ):
                        governed.append((span, (cue_start, cue_end)))
        return sorted(set(governed))

    def _hypothetical_scopes(
        self, by_label: Mapping[str, List[Span]], absorbing: _Coverage, view: _DocView
    ) -> List[Span]:
        book = self.book
        limit = book.hypothetical_max_scope
        strong_starts = sorted(s for s, _ in by_label.get("B", []))
        scopes: List[Span] = []
        for label, spans in sorted(by_label.items()):
            if not label.startswith("H:"):
                continue
            config = self._hyp_config[label]
            for start, end in spans:
                if absorbing.hits((start, start + 1)):
                    continue  # "de ergste pijn ooit": the cue word belongs to a sign
                sent_start, sent_end = view.sentence_bounds(start)
                scope_end = min(sent_end, end + limit)
                for i in range(end, scope_end):
                    if view.strong_boundary[i] or (config.clause_scope and view.is_punct[i]):
                        scope_end = i
                        break
                at = bisect.bisect_left(strong_starts, end)
                if at < len(strong_starts) and strong_starts[at] < scope_end:
                    scope_end = strong_starts[at]
                if config.until_any:
                    stop = next(
                        (
                            i
                            for i in range(end, scope_end)
                            if view.lower[i] in config.until_any or view.is_punct[i]
                        ),
                        None,
                    )
                    if stop is None or view.lower[stop] not in config.until_any:
                        continue
                    scope_end = stop + 1
                if config.requires_any and not config.requires_any.intersection(
                    view.lower[start:scope_end]
                ):
                    continue
                if config.unless_any and config.unless_any.intersection(
                    view.lower[max(sent_start, start - limit) : min(sent_end, end + limit)]
                ):
                    continue
                scopes.append((start, scope_end))

        # general questions: "kun je van rugpijn koorts krijgen?"
        for sent_start, sent_end in view.sentences():
            words = [w for w in view.lower[sent_start:sent_end] if w.strip()]
            if not words:
                continue
            is_question = "?" in words[-1] or words[0] in book.question_words
            generic = any(w in book.generic_words for w in words)
            personal = any(w in book.first_person_words for w in words)
            if is_question and generic and not personal:
                scopes.append((sent_start, sent_end))
        return sorted(set(scopes))


# --------------------------------------------------------------------------------------------
# Shared instance
# --------------------------------------------------------------------------------------------

_DETECTORS: Dict[str, WarningSignDetector] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(path: Path | str = DEFAULT_SIGNS_PATH) -> WarningSignDetector:
    """One detector per signs file per process, on the assistant's Dutch pipeline."""
    key = str(Path(path).resolve())
    with _DETECTORS_LOCK:
        detector = _DETECTORS.get(key)
        if detector is None:
            detector = WarningSignDetector.from_file(key)
            _DETECTORS[key] = detector
        return detector
