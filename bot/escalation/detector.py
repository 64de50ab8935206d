"""Deterministic warning-sign detector for the escalation policy (shared/spec/escalation.md).

Everything the detector knows about the policy lives in `signs.yml`; this module runs the steps:

1. normalise the text (text.py) and run the assistant's Dutch spaCy pipeline (bot.nlp);
2. find terms, sign patterns and cues with the compiled sign book (matcher.py);
3. build sign instances: direct patterns, or `all_of` term co-occurrences within a window;
4. drop negated instances and set apart the ones that are not present: hypothetical, general
   questions, hearsay about someone else's past, the writer's resolved past (scope.py, whose.py);
5. apply `combinations` over this message's signs (across turns: memory.py);
6. return the highest level, and the flags of what governs the message as a whole.

Same input, same output: every collection is sorted before it is used. `detect()` never raises.
"""
from __future__ import annotations

import bisect
import itertools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from bot import paths
from bot.escalation.matcher import Label, Matches, SignMatcher, Span
from bot.escalation.scope import Coverage, DocView, Scopes, find_scopes
from bot.escalation.whose import MessageScope
from bot.escalation.sign_book import SignBook, load_sign_book
from bot.escalation.text import normalise_text
from bot.levels import NONE, level_rank, max_level
from bot.nlp import load_dutch_pipeline

logger = logging.getLogger(__name__)

Terms = Mapping[str, List[Span]]  # term name -> its spans (exclusions applied), sorted


@dataclass(frozen=True)
class SignMatch:
    """One warning sign (or combination) found in a message, with the text that triggered it
    (as the matcher saw it: HTML removed, diacritics folded; combinations join their parts).
    A sign that is not present says why: `reason` hypothetical | general_question | hearsay |
    resolved_past (empty for present and negated signs)."""

    sign_id: str
    level: str
    text: str
    reason: str = ""

    def to_dict(self) -> Dict[str, str]:
        data = {"sign_id": self.sign_id, "level": self.level, "text": self.text}
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class Detection:
    """The detector's verdict on one message.

    `signs` are present signs (context signs of level none included, for memory and audit) and
    fired combinations; `hypothetical` holds the signs that are not present, each with its
    `reason` (hypothetical, general_question, hearsay, resolved_past); they and the `negated`
    signs never raise the level. `scope` flags what governs the message as a whole.
    """

    level: str
    signs: Tuple[SignMatch, ...] = ()
    hypothetical: Tuple[SignMatch, ...] = ()
    negated: Tuple[SignMatch, ...] = ()
    scope: MessageScope = MessageScope()
    scoped: Tuple[Tuple[str, str], ...] = ()  # (reason, text) of each part whose signs are not present

    @property
    def sign_ids(self) -> Tuple[str, ...]:
        return tuple(match.sign_id for match in self.signs)

    @property
    def not_present(self) -> Tuple[SignMatch, ...]:
        """The signs that are not the writer's present signs (alias of `hypothetical`)."""
        return self.hypothetical

    @property
    def negated_cues(self) -> bool:
        """Whether a negation cue occurs in the message."""
        return self.scope.negation

    def to_dict(self) -> Dict[str, Any]:
        return {
            "level": self.level,
            "signs": [match.to_dict() for match in self.signs],
            "hypothetical": [match.to_dict() for match in self.hypothetical],
            "negated": [match.to_dict() for match in self.negated],
            "scope": self.scope.to_dict(),
            "scoped": [{"reason": reason, "text": text} for reason, text in self.scoped],
        }


NO_DETECTION = Detection(level=NONE)


@dataclass(frozen=True)
class _Instance:
    """One occurrence of a sign: its pattern span, or the term spans of an all_of alternative."""

    sign_id: str
    parts: Tuple[Span, ...]

    @property
    def start(self) -> int:
        return min(part[0] for part in self.parts)

    @property
    def end(self) -> int:
        return max(part[1] for part in self.parts)

    @property
    def position(self) -> Tuple[int, int, str]:
        return self.start, self.end, self.sign_id


@dataclass
class _Verdicts:
    """The first instance of each sign, by status (and why a sign is not present)."""

    present: Dict[str, _Instance]
    hypothetical: Dict[str, _Instance]
    negated: Dict[str, _Instance]
    reasons: Dict[str, str]


class SignDetector:
    """Finds the policy's warning signs in a message. Build with `from_file()`."""

    def __init__(self, book: SignBook, nlp: Language) -> None:
        self.book = book
        self.nlp = nlp
        self._lock = threading.Lock()
        self._matcher = SignMatcher(book, nlp)

    @classmethod
    def from_file(cls, path: Path | str = paths.SIGNS, nlp: Optional[Language] = None) -> "SignDetector":
        """Detector for the signs file at `path`, on `nlp` (default: the assistant's pipeline)."""
        return cls(load_sign_book(path), nlp if nlp is not None else load_dutch_pipeline())

    def detect(self, text: Any) -> Detection:
        """Signs in `text`, negated and hypothetical ones set apart, combinations of this message
        applied. Never raises."""
        try:
            return self._detect(text)
        except Exception:  # pragma: no cover - defensive; tests feed hostile input
            logger.exception("warning-sign detection failed; reporting no signs")
            return NO_DETECTION

    def _detect(self, text: Any) -> Detection:
        prepared = normalise_text(text, self.book.settings.max_chars)
        if not prepared:
            return NO_DETECTION
        doc, matches = self._parse(prepared)
        view = DocView(doc, self.book.boundaries)
        terms = self._find_terms(matches, view)
        instances = self._find_instances(matches, terms, view)
        scopes = find_scopes(self.book, matches, [span for spans in terms.values() for span in spans], view)
        return self._report(self._judge(instances, scopes), scopes, view)

    # -- the steps -------------------------------------------------------------------------------
    def _parse(self, text: str) -> Tuple[Doc, Matches]:
        with self._lock:  # spaCy pipelines are not guaranteed thread-safe
            doc = self.nlp(text)
            if len(doc) and not doc.has_annotation("LEMMA"):
                for token in doc:
                    token.lemma_ = token.lower_
            return doc, self._matcher(doc)

    def _find_terms(self, matches: Matches, view: DocView) -> Dict[str, List[Span]]:
        """The spans of every term, minus those its exclusions overlap."""
        terms: Dict[str, List[Span]] = {}
        for name in self.book.terms:
            excluded = Coverage(view.n, matches.spans(Label.TERM_EXCLUSION, name))
            kept = [span for span in matches.spans(Label.TERM, name) if not excluded.hits(span)]
            if kept:
                terms[name] = sorted(set(kept))
        return terms

    def _find_instances(self, matches: Matches, terms: Terms, view: DocView) -> List[_Instance]:
        """Every occurrence of every sign, minus those its exclusions overlap."""
        instances: List[_Instance] = []
        max_candidates = self.book.settings.max_term_candidates
        for sign in self.book.signs.values():
            candidates: List[Tuple[Span, ...]] = [(span,) for span in matches.spans(Label.SIGN, sign.id)]
            for alternative in sign.all_of:
                candidates += _cooccurrences(alternative, terms, view, sign.window, max_candidates)
            excluded = Coverage(view.n, matches.spans(Label.SIGN_EXCLUSION, sign.id))
            for parts in sorted({tuple(sorted(parts)) for parts in candidates}):
                if not any(excluded.hits(part) for part in parts):
                    instances.append(_Instance(sign.id, parts))
        return instances

    def _judge(self, instances: Iterable[_Instance], scopes: Scopes) -> _Verdicts:
        """Negated, else not present (a reason), else present: the first instance of each sign
        counts."""
        verdicts = _Verdicts({}, {}, {}, {})
        for instance in sorted(instances, key=lambda i: i.position):
            reason = scopes.reason(instance.parts, self.book.signs[instance.sign_id].history)
            if scopes.negates(instance.parts):
                verdicts.negated.setdefault(instance.sign_id, instance)
            elif reason is not None:
                verdicts.hypothetical.setdefault(instance.sign_id, instance)
                verdicts.reasons.setdefault(instance.sign_id, reason)
            else:
                verdicts.present.setdefault(instance.sign_id, instance)
        return verdicts

    def _report(self, verdicts: _Verdicts, scopes: Scopes, view: DocView) -> Detection:
        """Present signs and the combinations they fire; signs not present and negated signs that
        are not present elsewhere too; the message flags."""
        present = self._without_suppressed(verdicts.present)
        found = self._sign_matches(present.values(), view)
        hypothetical = self._sign_matches(verdicts.hypothetical.values(), view, skip=present, reasons=verdicts.reasons)
        negated = self._sign_matches(
            verdicts.negated.values(), view, skip=set(present) | set(verdicts.hypothetical)
        )
        combinations = self._combinations(found)
        level = max_level(*(match.level for match in found + combinations))
        flags = scopes.flags(view, level != NONE, self.book.whose.governs_share)
        scoped = tuple((reason, view.doc[start:end].text) for reason, spans in scopes.not_present.items()
                       for start, end in spans)
        return Detection(level, found + combinations, hypothetical, negated, flags, scoped)

    def _without_suppressed(self, present: Dict[str, _Instance]) -> Dict[str, _Instance]:
        """Signs whose more specific sign (suppressed_by) is not present too."""
        return {
            sign_id: instance
            for sign_id, instance in present.items()
            if not any(other in present for other in self.book.signs[sign_id].suppressed_by)
        }

    def _sign_matches(
        self,
        instances: Iterable[_Instance],
        view: DocView,
        skip: Iterable[str] = (),
        reasons: Optional[Mapping[str, str]] = None,
    ) -> Tuple[SignMatch, ...]:
        skipped = set(skip)
        limit = self.book.settings.max_match_chars
        reasons = reasons or {}
        return tuple(
            SignMatch(
                i.sign_id,
                self.book.signs[i.sign_id].level,
                view.text((i.start, i.end), limit),
                reasons.get(i.sign_id, ""),
            )
            for i in sorted(instances, key=lambda i: i.position)
            if i.sign_id not in skipped
        )

    def _combinations(self, found: Sequence[SignMatch]) -> Tuple[SignMatch, ...]:
        """The combinations this message's signs satisfy, highest level first."""
        sign_ids = frozenset(match.sign_id for match in found)
        text_of = {match.sign_id: match.text for match in found}
        fired = [
            SignMatch(c.id, c.level, " + ".join(text_of[s] for s in c.used_signs(sign_ids)))
            for c in self.book.combinations
            if c.satisfied_by(sign_ids)
        ]
        return tuple(sorted(fired, key=lambda m: (-level_rank(m.level), m.sign_id)))


def _cooccurrences(
    names: Sequence[str], terms: Terms, view: DocView, window: int, max_candidates: int
) -> List[Tuple[Span, ...]]:
    """Spans of the terms `names` that occur together: same sentence, within `window` tokens
    (each further term: at most `max_candidates` spans per span of the first)."""
    if not all(name in terms for name in names):
        return []
    if len(names) == 1:
        return [(span,) for span in terms[names[0]]]
    starts = {name: [span[0] for span in terms[name]] for name in names}
    found: List[Tuple[Span, ...]] = []
    for anchor in terms[names[0]]:
        sentence = view.sentence[anchor[0]]
        pools: List[List[Span]] = [[anchor]]
        for name in names[1:]:
            lo = bisect.bisect_left(starts[name], anchor[0] - window)
            hi = bisect.bisect_right(starts[name], anchor[1] + window)
            pool = [span for span in terms[name][lo:hi] if view.sentence[span[0]] == sentence]
            if not pool:
                break
            pools.append(pool[:max_candidates])
        else:
            found += [
                combo
                for combo in itertools.product(*pools)
                if max(p[1] for p in combo) - min(p[0] for p in combo) <= window
            ]
    return found


_DETECTORS: Dict[str, SignDetector] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(path: Path | str = paths.SIGNS) -> SignDetector:
    """One detector per signs file per process, on the assistant's Dutch pipeline."""
    key = str(Path(path).resolve())
    with _DETECTORS_LOCK:
        if key not in _DETECTORS:
            _DETECTORS[key] = SignDetector.from_file(key)
        return _DETECTORS[key]
