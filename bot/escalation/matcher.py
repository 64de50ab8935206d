"""The sign book compiled into one spaCy `Matcher` and one `PhraseMatcher` (LOWER / LEMMA).

Every pattern block of signs.yml is registered under a key "kind:name" (`Label.key`): the kind
says what the block is (a term, a sign, a negation cue, ...), the name which one ("term:PAIN",
"sign:fever", "post_negation_cue:2"; cues of a single list have no name).
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Sequence, Set, Tuple

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from bot.escalation.sign_book import PatternBlock, SignBook, SignsFileError
from bot.escalation.text import fold_word

Span = Tuple[int, int]  # token start (inclusive), end (exclusive)

_ATTRS_WITH_LISTS = ("LOWER", "LEMMA", "NORM", "TEXT", "ORTH")  # "@NAME" expands inside their IN
_FOLDED_ATTRS = ("LOWER", "LEMMA", "NORM")  # their string values are folded like the text
_LIST_OPS = ("IN", "NOT_IN")
_TERM_REFERENCE = "@"  # "@NAME" in an IN / NOT_IN list: the words of term NAME
_GAP = "GAP"  # {GAP: n}: up to n optional tokens, no punctuation, clause words or negation cues
_GAP_EXCEPT = "NOT"  # {GAP: n, NOT: [...]}: words a gap token may not be either


class Label(str, Enum):
    """What a matched span is."""

    TERM = "term"
    TERM_EXCLUSION = "term_exclusion"
    SIGN = "sign"
    SIGN_EXCLUSION = "sign_exclusion"
    NEGATION_CUE = "negation_cue"
    NEGATION_CLAUSE_CUE = "negation_clause_cue"
    NORMAL_FUNCTION = "normal_function"
    PSEUDO_NEGATION = "pseudo_negation"
    POST_NEGATION_CUE = "post_negation_cue"  # name: index in negation.post
    HYPOTHETICAL_CUE = "hypothetical_cue"  # name: index in hypothetical.cues
    STRONG_BOUNDARY = "strong_boundary"
    GENERAL_TOPIC = "general_topic"  # hypothetical.general_questions.topic
    GENERAL_EVALUATIVE = "general_evaluative"  # hypothetical.general_questions.evaluative
    GENERAL_REQUEST = "general_request"  # hypothetical.general_questions.request
    WHOSE_MARKER = "whose_marker"  # name: marker name in whose_sign.markers
    WHOSE_MARKER_EXCLUSION = "whose_marker_exclusion"
    WHOSE_CUE = "whose_cue"  # name: index in whose_sign.cues (cues given by a marker: none)

    def key(self, name: str = "") -> str:
        """The matcher key of a block of this kind: "kind:name"."""
        return f"{self.value}:{name}"

    @classmethod
    def parse(cls, key: str) -> Tuple["Label", str]:
        """(kind, name) of a matcher key built by `key`."""
        kind, _, name = key.partition(":")
        return cls(kind), name


class Matches:
    """The spans found per (label, name), each list sorted and without duplicates."""

    def __init__(self, found: Iterable[Tuple[Label, str, Span]]) -> None:
        self._spans: Dict[Tuple[Label, str], List[Span]] = {}
        for label, name, span in sorted(set(found), key=lambda item: (item[2], item[0], item[1])):
            self._spans.setdefault((label, name), []).append(span)

    def spans(self, label: Label, name: str = "") -> List[Span]:
        return self._spans.get((label, name), [])

    def named(self, label: Label) -> List[Tuple[str, List[Span]]]:
        """(name, spans) of every name matched under `label`, by name."""
        return sorted((name, spans) for (kind, name), spans in self._spans.items() if kind is label)


def _blocks(book: SignBook) -> Iterator[Tuple[Label, str, PatternBlock]]:
    """Every pattern block of the book with its label and name."""
    for name, term in book.terms.items():
        yield Label.TERM, name, term.patterns
        yield Label.TERM_EXCLUSION, name, term.exclude
    for sign in book.signs.values():
        yield Label.SIGN, sign.id, sign.patterns
        yield Label.SIGN_EXCLUSION, sign.id, sign.exclude
    negation = book.negation
    yield Label.NEGATION_CUE, "", negation.cues
    yield Label.NEGATION_CLAUSE_CUE, "", negation.clause_cues
    yield Label.NORMAL_FUNCTION, "", negation.normal_function
    yield Label.PSEUDO_NEGATION, "", negation.pseudo
    for index, post in enumerate(negation.post_cues):
        yield Label.POST_NEGATION_CUE, str(index), post.patterns
    for index, cue in enumerate(book.hypothetical.cues):
        yield Label.HYPOTHETICAL_CUE, str(index), cue.patterns
    yield Label.STRONG_BOUNDARY, "", PatternBlock(phrases=book.boundaries.strong_phrases)
    yield Label.GENERAL_TOPIC, "", book.hypothetical.general_questions.topic
    yield Label.GENERAL_EVALUATIVE, "", book.hypothetical.general_questions.evaluative
    yield Label.GENERAL_REQUEST, "", book.hypothetical.general_questions.request
    for name, marker in book.whose.markers.items():
        yield Label.WHOSE_MARKER, name, marker.patterns
        yield Label.WHOSE_MARKER_EXCLUSION, name, marker.exclude
    for index, cue in enumerate(book.whose.cues):
        yield Label.WHOSE_CUE, str(index), cue.patterns


def _single_words(block: PatternBlock) -> Set[str]:
    return {fold_word(word) for word in block.words + block.forms if " " not in word.strip()}


class SignMatcher:
    """Finds every term, sign and cue of the book in a doc. Raises SignsFileError when built
    from a book whose token patterns spaCy rejects."""

    def __init__(self, book: SignBook, nlp: Language) -> None:
        self._nlp = nlp
        self._matcher = Matcher(nlp.vocab, validate=True)
        self._phrases = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._term_words: Dict[str, List[str]] = {
            name: sorted({fold_word(w) for w in term.patterns.words + term.patterns.forms})
            for name, term in book.terms.items()
        }
        self._gap_stop = sorted(book.boundaries.clause_words | _single_words(book.negation.cues))
        for label, name, block in _blocks(book):
            self._add(label.key(name), block)

    def __call__(self, doc: Doc) -> Matches:
        strings = self._nlp.vocab.strings
        found = self._matcher(doc) + self._phrases(doc)
        return Matches((*Label.parse(strings[key]), (start, end)) for key, start, end in found)

    # -- compiling one block ---------------------------------------------------------------------
    def _add(self, key: str, block: PatternBlock) -> None:
        if block.is_empty():
            return
        single_lower, single_both, phrases = self._split_words(block)
        patterns: List[List[Dict[str, Any]]] = []
        if single_both | single_lower:
            patterns.append([{"LOWER": {"IN": sorted(single_both | single_lower)}}])
        if single_both:
            patterns.append([{"LEMMA": {"IN": sorted(single_both)}}])
        patterns += [[{"LOWER": {"REGEX": regex}}] for regex in block.regex]
        patterns += [self._expand(pattern, key) for pattern in block.tokens]
        if patterns:
            try:
                self._matcher.add(key, patterns)
            except Exception as error:  # spaCy validation error: report which entry
                raise SignsFileError(f"{key}: invalid token pattern: {error}") from None
        if phrases:
            self._phrases.add(key, [self._nlp.make_doc(phrase) for phrase in sorted(phrases) if phrase])

    def _split_words(self, block: PatternBlock) -> Tuple[Set[str], Set[str], Set[str]]:
        """Single-token forms (LOWER), single-token words (LOWER and LEMMA) and phrases."""
        single_lower: Set[str] = set()
        single_both: Set[str] = set()
        phrases: Set[str] = {fold_word(phrase) for phrase in block.phrases}
        for word in block.words + block.forms:
            folded = fold_word(word)
            if len(self._nlp.make_doc(folded)) != 1:
                phrases.add(folded)  # "no longer", "50+": tokenised as several tokens
            elif word in block.words:
                single_both.add(folded)
            else:
                single_lower.add(folded)
        return single_lower, single_both, phrases

    # -- the macros of token patterns ------------------------------------------------------------
    def _expand(self, pattern: Sequence[Mapping[str, Any]], key: str) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for token in pattern:
            if _GAP in token:
                out += self._gap(token, key)
            else:
                out.append(self._expand_token(dict(token), key))
        return out

    def _gap(self, token: Mapping[str, Any], key: str) -> List[Dict[str, Any]]:
        stop = set(self._gap_stop)
        stop.update(self._expand_value("NOT_IN", token.get(_GAP_EXCEPT, []), key))
        gap_token = {"IS_PUNCT": False, "IS_SPACE": False, "LOWER": {"NOT_IN": sorted(stop)}, "OP": "?"}
        return [dict(gap_token) for _ in range(int(token[_GAP]))]

    def _expand_token(self, token: Dict[str, Any], key: str) -> Dict[str, Any]:
        result: Dict[str, Any] = {}
        for attr, value in token.items():
            if attr in _ATTRS_WITH_LISTS and isinstance(value, Mapping):
                result[attr] = {op: self._expand_value(op, v, key) for op, v in value.items()}
            elif attr in _FOLDED_ATTRS and isinstance(value, str):
                result[attr] = fold_word(value)
            else:
                result[attr] = value
        return result

    def _expand_value(self, op: str, value: Any, key: str) -> Any:
        if op not in _LIST_OPS:
            return value
        expanded: Set[str] = set()
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                raise SignsFileError(f"{key}: {item!r} in {op} is not a string (quote it)")
            if item.startswith(_TERM_REFERENCE):
                expanded.update(self._term_reference(item, key))
            else:
                expanded.add(fold_word(item))
        return sorted(expanded)

    def _term_reference(self, item: str, key: str) -> List[str]:
        name = item[len(_TERM_REFERENCE) :]
        if name not in self._term_words:
            raise SignsFileError(f"{key}: unknown term reference {item}")
        return self._term_words[name]
