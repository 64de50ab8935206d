"""Whose sign (policy behaviour 8): the scopes of hearsay and of the writer's resolved past.

The rules are documented in signs.yml (section `whose_sign`):
  * markers are named word classes (past tense, a recent time, the writer, ...); an occurrence
    inside a longer occurrence of a marker that `absorbs` it does not count ("sindsdien" of
    "sindsdien klachtenvrij"), nor one overlapping the cue that tests it ("mijn" of "mijn vrouw");
  * a forward cue governs its clause and the rest of the sentence up to a stop, a backward cue
    the part of the sentence (or two) before it; requires/unless tests decide whether it counts;
  * a hearsay scope that reaches the sentence end continues into a next sentence about the same
    person ("Hij kon niet plassen.");
  * general questions (hypothetical.general_questions) are found here too, and `MessageScope`
    holds the message flags scope.Scopes.flags computes.
`view` is a scope.DocView (scope.py imports this module).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from bot.escalation.cues import (
    GENERAL_QUESTION,
    HEARSAY,
    HYPOTHETICAL,
    RESOLVED_PAST,
    GeneralQuestions,
    WhoseCueDef,
    WhoseRules,
)
from bot.escalation.matcher import Label, Matches, Span
from bot.escalation.spans import Coverage

WhoseScopes = Dict[str, List[Span]]  # kind (HEARSAY, RESOLVED_PAST) -> its scopes


@dataclass(frozen=True)
class MessageScope:
    """What governs the message as a whole (see signs.yml, whose_sign.governs_share)."""

    hypothetical: bool = False
    general_question: bool = False
    hearsay: bool = False
    resolved_past: bool = False
    negation: bool = False  # a counted negation cue occurs

    def to_dict(self) -> Dict[str, bool]:
        return {
            HYPOTHETICAL: self.hypothetical,
            GENERAL_QUESTION: self.general_question,
            HEARSAY: self.hearsay,
            RESOLVED_PAST: self.resolved_past,
            "negation": self.negation,
        }


class Markers:
    """The counted occurrences of every marker of one message."""

    def __init__(self, rules: WhoseRules, matches: Matches, n: int) -> None:
        found: Dict[str, List[Span]] = {}
        for name in rules.markers:
            excluded = {i for start, end in matches.spans(Label.WHOSE_MARKER_EXCLUSION, name) for i in range(start, end)}
            found[name] = [s for s in matches.spans(Label.WHOSE_MARKER, name) if excluded.isdisjoint(range(*s))]
        absorbers: Dict[str, List[Span]] = {name: [] for name in found}  # name -> spans absorbing it
        for name, marker in rules.markers.items():
            for absorbed in marker.absorbs:
                absorbers[absorbed] += [span for span in found[name] if span[1] - span[0] > 1]
        self._spans: Dict[str, List[Span]] = {}
        for name, spans in found.items():
            inside = _Enclosing(absorbers[name])
            self._spans[name] = [span for span in spans if not inside(span)]
        self._starts = {name: [span[0] for span in spans] for name, spans in self._spans.items()}
        self.n = n

    def occurrences(self, names: Iterable[str], lo: int, hi: int, ignore: Optional[Span] = None) -> List[Span]:
        """Occurrences of `names` starting in [lo, hi), except those overlapping `ignore`, by start."""
        result: List[Span] = []
        for name in names:
            starts = self._starts.get(name, [])
            for span in self._spans[name][bisect.bisect_left(starts, lo) : bisect.bisect_left(starts, hi)]:
                if ignore is None or not (span[0] < ignore[1] and ignore[0] < span[1]):
                    result.append(span)
        return sorted(result)

    def any(self, names: Sequence[str], lo: int, hi: int, ignore: Optional[Span] = None) -> bool:
        return bool(names) and bool(self.occurrences(names, lo, hi, ignore))


class _Enclosing:
    """Whether a span lies inside one of `spans` (a longer one) - in O(log n)."""

    def __init__(self, spans: Sequence[Span]) -> None:
        ordered = sorted(spans)
        self._starts = [span[0] for span in ordered]
        self._max_end: List[int] = []
        for span in ordered:
            self._max_end.append(max(span[1], self._max_end[-1] if self._max_end else span[1]))

    def __call__(self, span: Span) -> bool:
        at = bisect.bisect_right(self._starts, span[0])
        return at > 0 and self._max_end[at - 1] >= span[1]


def _starts_in(starts: Sequence[int], lo: int, hi: int) -> bool:
    """Whether one of the sorted `starts` lies in [lo, hi)."""
    at = bisect.bisect_left(starts, lo)
    return at < len(starts) and starts[at] < hi


class WhoseFinder:
    """Applies the whose-sign cues of a book to one message."""

    def __init__(
        self, rules: WhoseRules, matches: Matches, view: Any, absorbing: Coverage, strong_words: Set[str]
    ) -> None:
        self.rules = rules
        self.matches = matches
        self.view = view  # scope.DocView
        self.absorbing = absorbing  # terms, pseudo-negations, escalating sign patterns
        self.markers = Markers(rules, matches, view.n)
        self.strong_words = strong_words
        self.strong_starts = sorted(start for start, _ in matches.spans(Label.STRONG_BOUNDARY))
        self._strong_set = set(self.strong_starts)

    def scopes(self) -> WhoseScopes:
        found: WhoseScopes = {HEARSAY: [], RESOLVED_PAST: []}
        for index, cue_def in enumerate(self.rules.cues):
            if cue_def.marker:
                cues = self.markers.occurrences([cue_def.marker], 0, self.view.n)
            else:
                cues = self.matches.spans(Label.WHOSE_CUE, str(index))
            for cue in cues:
                if self.absorbing.hits((cue[0], cue[0] + 1)):
                    continue  # the cue word belongs to a sign or term
                scope = self._backward(cue, cue_def) if cue_def.backward else self._forward(cue, cue_def)
                if scope is None:
                    continue
                found[cue_def.kind].append(scope)
                if cue_def.kind == HEARSAY:
                    found[HEARSAY] += self._continued(scope, cue_def)
        return {kind: sorted(set(spans)) for kind, spans in found.items()}

    def present_reports(self, questions: GeneralQuestions) -> List[Span]:
        """The sentences in which the writer reports something present."""
        report, markers = self.rules.present_report, self.markers
        found: List[Span] = []
        for start, end in self.view.sentences():
            if not markers.any(report.person, start, end):
                continue
            words = [w for w in self.view.lower[start:end] if w.strip()]
            if markers.any(report.time, start, end) or (
                markers.any(report.verb, start, end) and not questions.is_question(words)
            ):
                found.append((start, end))
        return found

    # -- forward: the cue's clause to the end of the sentence or a stop ------------------------
    def _forward(self, cue: Span, cue_def: WhoseCueDef, requires: Optional[Sequence[str]] = None) -> Optional[Span]:
        view, markers = self.view, self.markers
        start, end = cue
        sent_start, sent_end = view.sentence_bounds(start)
        clause_start = self._clause_start(start, max(sent_start, start - self.rules.max_scope))
        scope_end = min(sent_end, end + self.rules.max_scope)
        strong = self._first_strong(end, scope_end)
        if strong is not None:
            scope_end = strong
        stop = markers.occurrences(cue_def.stop_at, end, scope_end, cue)[:1]
        if stop:  # the scope ends at the last clause boundary before the stop, else at the stop
            scope_end = self._last_clause_boundary(end, stop[0][0], default=stop[0][0])
        if markers.any(cue_def.unless_before, clause_start, start, cue):
            return None
        return self._passes(cue, cue_def, (clause_start, scope_end), requires)

    def _first_strong(self, lo: int, hi: int) -> Optional[int]:
        """The first strong boundary word or phrase in [lo, hi)."""
        candidates = [next((i for i in range(lo, hi) if self.view.lower[i] in self.strong_words), hi)]
        at = bisect.bisect_left(self.strong_starts, lo)
        if at < len(self.strong_starts) and self.strong_starts[at] < hi:
            candidates.append(self.strong_starts[at])
        first = min(candidates)
        return first if first < hi else None

    def _clause_start(self, index: int, lo: int) -> int:
        for i in range(index - 1, lo - 1, -1):
            if self.view.clause_boundary[i]:
                return i + 1
        return lo

    def _last_clause_boundary(self, lo: int, hi: int, default: int) -> int:
        for i in range(hi - 1, lo - 1, -1):
            if self.view.clause_boundary[i]:
                return i
        return default

    # -- backward: from the cue back to the sentence start (or the previous one) -----------------
    def _backward(self, cue: Span, cue_def: WhoseCueDef) -> Optional[Span]:
        view = self.view
        start, end = cue
        sent_start, _ = view.sentence_bounds(start)
        lo = sent_start
        if start - sent_start <= cue_def.lead and sent_start > 0:
            lo = view.sentence_bounds(sent_start - 1)[0]
        lo = max(lo, start - self.rules.max_scope)
        stops = {span[0] for span in self.markers.occurrences(cue_def.stop_at, lo, start, cue)}
        scope_start = lo
        for i in range(start - 1, lo - 1, -1):
            if i in stops or i in self._strong_set or view.lower[i] in self.strong_words:
                boundaries = [j for j in range(i + 1, start) if view.clause_boundary[j]]
                if not boundaries:
                    return None
                scope_start = boundaries[0] + 1
                break
        return self._passes(cue, cue_def, (scope_start, end))

    # -- the tests every cue passes --------------------------------------------------------------
    def _passes(
        self, cue: Span, cue_def: WhoseCueDef, region: Span, requires: Optional[Sequence[str]] = None
    ) -> Optional[Span]:
        markers = self.markers
        required = cue_def.requires_any if requires is None else requires
        if region[1] <= region[0]:
            return None
        if required and not markers.any(required, region[0], region[1], cue):
            return None
        if markers.any(cue_def.unless_any, region[0], region[1], cue):
            return None
        if markers.any(cue_def.unless_after, cue[0], self.view.n, cue):
            return None
        return region

    def _continued(self, scope: Span, cue_def: WhoseCueDef) -> List[Span]:
        """Next sentences about the same person: "Hij kon niet meer plassen."."""
        view, continuation = self.view, self.rules.continuation
        found: List[Span] = []
        while True:
            _, sent_end = view.sentence_bounds(scope[0])
            if scope[1] < sent_end - 1 or sent_end >= view.n:
                return found
            next_start, next_end = view.sentence_bounds(sent_end)
            words = [w for w in view.lower[next_start:next_end] if w.strip()][: continuation.within]
            if not continuation.words.intersection(words):
                return found
            scope = self._forward((next_start, next_start), cue_def, continuation.requires_any)
            if scope is None:
                return found
            found.append(scope)


# -- general questions ---------------------------------------------------------------------------


def general_questions(
    questions: GeneralQuestions, matches: Matches, markers: Markers, view: Any
) -> Tuple[List[Span], List[Span]]:
    """Questions about people in general ("kun je van rugpijn koorts krijgen?") or about the alarm
    signs ("welke alarmsignalen zijn er?"), and first-person questions about the alarm signs
    ("welke alarmsignalen moet ik kennen?": the message flag only)."""
    topics = [span[0] for span in matches.spans(Label.GENERAL_TOPIC)]
    evaluative = [span[0] for span in matches.spans(Label.GENERAL_EVALUATIVE)]
    requests = [span[0] for span in matches.spans(Label.GENERAL_REQUEST)]
    general: List[Span] = []
    flag_only: List[Span] = []
    for start, end in view.sentences():
        words = [w for w in view.lower[start:end] if w.strip()]
        if markers.any(questions.unless_any, start, end):
            continue  # "sinds vanochtend", "nu": a real case
        topic = _starts_in(topics, start, end)
        if questions.is_general(words, topic or _starts_in(evaluative, start, end)):
            general.append((start, end))
        elif topic and (questions.is_question(words) or _starts_in(requests, start, end)):
            flag_only.append((start, end))
    return general, flag_only
