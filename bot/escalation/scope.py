"""Negation and hypothetical scope: which parts of a message a cue denies or makes hypothetical.

The rules are documented in signs.yml (sections `negation` and `hypothetical`):
  * a cue word inside a matched term, an escalating sign pattern or a pseudo-negation belongs to
    it and is no cue ("geen gevoel", "kan niet plassen", "niet alleen");
  * a pre-cue governs the first term after it in its clause (plus coordinated terms), a clause
    cue every term to the end of its clause, a post-cue the term just before it;
  * a hypothetical cue opens a scope to the end of its clause; general questions are
    hypothetical as a whole (a first-person question about the alarm signs only sets the
    message flag, its signs stay real);
  * hearsay and the writer's resolved past come from whose.py;
  * `Scopes.reason` says why a sign is not present, `Scopes.flags` what governs the message.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from bot.escalation.cues import (
    GENERAL_QUESTION,
    HEARSAY,
    HYPOTHETICAL,
    RESOLVED_PAST,
    Boundaries,
    HypotheticalCueDef,
    HypotheticalRules,
    NegationRules,
    PostCueDef,
)
from bot.escalation.matcher import Label, Matches, Span
from bot.escalation.sign_book import SignBook
from bot.escalation.spans import Coverage, overlaps
from bot.escalation.whose import MessageScope, WhoseFinder, general_questions
from bot.levels import NONE

# why a sign is not present, in the order they are tested (the first that applies is reported)
REASONS = (GENERAL_QUESTION, HYPOTHETICAL, HEARSAY, RESOLVED_PAST)
# reasons that set a sign apart only when the scope holds all of it ("vroeger kon ik goed
# plassen, nu lukt het niet": the part "lukt niet" is outside, the sign is present)
WHOLE_SIGN_REASONS = (HEARSAY, RESOLVED_PAST)

Governed = Tuple[Span, Span]  # (a span a negation cue governs, the cue)


class DocView:
    """Token facts of one doc: sentences, clause and strong boundaries (prefix sums)."""

    def __init__(self, doc: Doc, boundaries: Boundaries) -> None:
        self.doc = doc
        self.n = len(doc)
        self.lower: List[str] = [token.lower_ for token in doc]
        self.is_punct: List[bool] = [token.is_punct for token in doc]
        self.sentence: List[int] = [0] * self.n
        self.clause_boundary = [0] * self.n
        self.strong_boundary = [0] * self.n
        sentence_chars = set(boundaries.sentence_chars)
        sentence = 0
        for i, token in enumerate(doc):
            newline = token.is_space and "\n" in token.text
            ends_sentence = newline or (bool(token.text) and all(ch in sentence_chars for ch in token.text))
            self.sentence[i] = sentence
            sentence += ends_sentence
            if ends_sentence or token.is_punct or self.lower[i] in boundaries.clause_words:
                self.clause_boundary[i] = 1
            if ends_sentence or self.lower[i] in boundaries.strong_words:
                self.strong_boundary[i] = 1
        self._clause_prefix = list(itertools.accumulate([0] + self.clause_boundary))
        self._sentence_spans: List[Span] = []
        for i in range(self.n):
            if i == 0 or self.sentence[i] != self.sentence[i - 1]:
                self._sentence_spans.append((i, i + 1))
            else:
                self._sentence_spans[-1] = (self._sentence_spans[-1][0], i + 1)

    def clause_break_between(self, start: int, end: int) -> bool:
        """Whether a clause boundary lies in tokens [start, end)."""
        if end <= start:
            return False
        return self._clause_prefix[end] - self._clause_prefix[start] > 0

    def sentence_bounds(self, index: int) -> Span:
        return self._sentence_spans[self.sentence[index]]

    def sentences(self) -> List[Span]:
        return list(self._sentence_spans)

    def text(self, span: Span, limit: int) -> str:
        """The text of `span`, cut to `limit` characters."""
        value = self.doc[span[0] : span[1]].text.strip()
        return value if len(value) <= limit else value[: limit - 1] + "…"


class Negations:
    """The spans negation cues govern; `negates(part)` tells whether a sign part is denied."""

    def __init__(self, governed: Iterable[Governed]) -> None:
        self._cues_by_token: Dict[int, List[Span]] = {}
        for span, cue in governed:
            for token in range(span[0], span[1]):
                self._cues_by_token.setdefault(token, []).append(cue)

    def negates(self, part: Span) -> bool:
        return any(
            not overlaps(part, cue)  # a cue never negates the phrase it belongs to
            for token in range(part[0], part[1])
            for cue in self._cues_by_token.get(token, ())
        )


@dataclass(frozen=True)
class Scopes:
    """The negation scopes of one message and its not-present scopes by reason."""

    negations: Negations
    not_present: Dict[str, List[Span]]  # reason -> spans whose signs are not present
    general_flag_only: List[Span]  # first-person questions about the alarm signs (flag only)
    present_reports: List[Span]  # sentences in which the writer reports something present
    negation_cue: bool
    n: int
    _cover: Dict[str, Coverage] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cover", {r: Coverage(self.n, s) for r, s in self.not_present.items()})

    def negates(self, parts: Sequence[Span]) -> bool:
        return any(self.negations.negates(part) for part in parts)

    def reason(self, parts: Sequence[Span], history: bool = False) -> Optional[str]:
        """Why a sign with these parts is not present (None: it is): a part in a general question
        or hypothetical scope, all of it in a hearsay or resolved-past scope. A `history` sign
        keeps the writer's resolved past."""
        for reason in REASONS:
            if reason == RESOLVED_PAST and history:
                continue
            cover = self._cover[reason]
            if reason in WHOLE_SIGN_REASONS:
                if all(cover.covers(part) for part in parts):
                    return reason
            elif any(cover.hits(part) for part in parts):
                return reason
        return None

    @staticmethod
    def _mostly_uncovered(sentence: Span, view: "DocView", coverage: Coverage) -> bool:
        inside = [i for i in range(*sentence) if not view.is_punct[i] and view.lower[i].strip()]
        return 2 * coverage.count(inside) < len(inside)

    def flags(self, view: "DocView", sign_present: bool, share: float) -> MessageScope:
        """A kind governs the message when it covers words no earlier reason (REASONS) covers, no
        sign above level none is present, the not-present scopes together cover at least `share`
        of the message's words (punctuation excluded) and no present report of the writer lies
        mostly outside them."""
        words = [i for i in range(view.n) if not view.is_punct[i] and view.lower[i].strip()]
        by_reason = {**self.not_present, GENERAL_QUESTION: self.not_present[GENERAL_QUESTION] + self.general_flag_only}
        coverage = Coverage(view.n, [span for spans in by_reason.values() for span in spans])
        governs = (
            bool(words)
            and not sign_present
            and coverage.count(words) >= share * len(words)
            and not any(self._mostly_uncovered(report, view, coverage) for report in self.present_reports)
        )
        has: Dict[str, bool] = {}
        for reason in REASONS:
            coverage = Coverage(view.n, by_reason[reason])
            has[reason] = governs and any(coverage.hits((i, i + 1)) for i in words)
            words = [i for i in words if not coverage.hits((i, i + 1))]
        return MessageScope(has[HYPOTHETICAL], has[GENERAL_QUESTION], has[HEARSAY], has[RESOLVED_PAST],
                            self.negation_cue)


def find_scopes(book: SignBook, matches: Matches, term_spans: Sequence[Span], view: DocView) -> Scopes:
    """The scopes of the cues in `matches`; `term_spans` are the terms found (exclusions applied)."""
    sign_spans = [span for _, spans in matches.named(Label.SIGN) for span in spans]
    escalating = [
        span
        for sign_id, spans in matches.named(Label.SIGN)
        if book.signs[sign_id].level != NONE
        for span in spans
    ]
    absorbing = Coverage(view.n, [*term_spans, *matches.spans(Label.PSEUDO_NEGATION), *escalating])
    governable = sorted(set(term_spans) | set(sign_spans))
    governed, negation_cue = _negated_spans(book.negation, matches, absorbing, governable, view)
    finder = WhoseFinder(book.whose, matches, view, absorbing, set(book.boundaries.strong_words))
    general, flag_only = general_questions(book.hypothetical.general_questions, matches, finder.markers, view)
    not_present = {
        GENERAL_QUESTION: general,
        HYPOTHETICAL: _hypothetical_scopes(book.hypothetical, matches, absorbing, view),
        **finder.scopes(),
    }
    reports = finder.present_reports(book.hypothetical.general_questions)
    return Scopes(Negations(governed), not_present, flag_only, reports, negation_cue, view.n)


# -- negation ------------------------------------------------------------------------------------


def _negated_spans(
    rules: NegationRules, matches: Matches, absorbing: Coverage, governable: List[Span], view: DocView
) -> Tuple[List[Governed], bool]:
    """The spans negation cues govern, and whether any cue counts (governing or not)."""
    starts = [span[0] for span in governable]
    governed: List[Governed] = []
    clause_cues = sorted(set(matches.spans(Label.NEGATION_CLAUSE_CUE)))
    for cue in clause_cues:
        governed += [(span, cue) for span in _rest_of_clause(cue, governable, starts, view)]
    pre_cues = _pre_cues(rules, matches, absorbing, view)
    for cue in pre_cues:
        governed += [(span, cue) for span in _pre_cue_scope(cue, rules, governable, starts, view)]
    post_governed, post_counted = _post_cue_scopes(rules, matches, absorbing, governable, view)
    governed += post_governed
    return sorted(set(governed)), bool(clause_cues or pre_cues or post_counted)


def _rest_of_clause(cue: Span, governable: List[Span], starts: List[int], view: DocView) -> List[Span]:
    """Clause cues ("ik denk niet dat"): every term up to the end of the clause."""
    scope: List[Span] = []
    for span in governable[bisect.bisect_left(starts, cue[1]) :]:
        if view.clause_break_between(cue[1], span[0]):
            break
        scope.append(span)
    return scope


def _pre_cues(rules: NegationRules, matches: Matches, absorbing: Coverage, view: DocView) -> List[Span]:
    """Negation words and normal-function phrases not directly followed by a negative word."""
    cues = [span for span in matches.spans(Label.NEGATION_CUE) if not absorbing.hits(span)]
    for start, end in matches.spans(Label.NORMAL_FUNCTION):
        following = view.lower[end] if end < view.n else ""
        if following not in rules.normal_function_not_followed_by and not absorbing.hits((start, end)):
            cues.append((start, end))
    return sorted(set(cues))


def _pre_cue_scope(
    cue: Span, rules: NegationRules, governable: List[Span], starts: List[int], view: DocView
) -> List[Span]:
    """The first term after the cue (within max_gap, same clause) and terms coordinated to it."""
    lo = bisect.bisect_left(starts, cue[1])
    hi = bisect.bisect_right(starts, cue[1] + rules.max_gap)
    candidates = [s for s in governable[lo:hi] if not view.clause_break_between(cue[1], s[0])]
    if not candidates:
        return []
    first_start = candidates[0][0]
    scope_end = max(s[1] for s in candidates if s[0] == first_start)
    chosen = [s for s in candidates if s[0] < scope_end]
    return chosen + _coordinated(scope_end, rules, governable, starts, view)


def _coordinated(
    scope_end: int, rules: NegationRules, governable: List[Span], starts: List[int], view: DocView
) -> List[Span]:
    """Terms chained to the scope by coordination: "geen koorts of rillingen"."""
    coordination = rules.coordination
    chained: List[Span] = []
    while True:
        at = bisect.bisect_left(starts, scope_end)
        if at >= len(governable) or governable[at][0] - scope_end > coordination.max_gap:
            return chained
        next_start = governable[at][0]
        if not coordination.links(view.lower[scope_end:next_start]):
            return chained
        group = governable[at : bisect.bisect_right(starts, next_start)]
        chained += group
        scope_end = max(s[1] for s in group)


def _post_cue_scopes(
    rules: NegationRules, matches: Matches, absorbing: Coverage, governable: List[Span], view: DocView
) -> Tuple[List[Governed], bool]:
    """Post-cues ("koorts heb ik niet"): the term ending at most post_max_gap tokens before."""
    by_end = sorted(governable, key=lambda s: (s[1], s[0]))
    ends = [span[1] for span in by_end]
    gap = rules.post_max_gap
    governed: List[Governed] = []
    counted = False
    for name, spans in matches.named(Label.POST_NEGATION_CUE):
        cue_def = rules.post_cues[int(name)]
        for cue in spans:
            if not _post_cue_counts(cue, cue_def, absorbing, view):
                continue
            counted = True
            before = by_end[bisect.bisect_left(ends, cue[0] - gap) : bisect.bisect_right(ends, cue[0])]
            governed += [
                (span, cue)
                for span in before
                if 0 <= cue[0] - span[1] <= gap and not view.clause_break_between(span[1], cue[0])
            ]
    return governed, counted


def _post_cue_counts(cue: Span, cue_def: PostCueDef, absorbing: Coverage, view: DocView) -> bool:
    if absorbing.hits(cue):
        return False
    if cue_def.clause_final and cue[1] < view.n and not view.clause_boundary[cue[1]]:
        return False
    # "koorts heb ik niet gemeten" denies the measuring, not the fever
    return not (cue[1] < view.n and view.lower[cue[1]] in cue_def.not_followed_by)


# -- hypotheticals -------------------------------------------------------------------------------


def _hypothetical_scopes(
    rules: HypotheticalRules, matches: Matches, absorbing: Coverage, view: DocView
) -> List[Span]:
    strong_starts = sorted(start for start, _ in matches.spans(Label.STRONG_BOUNDARY))
    scopes: List[Span] = []
    for name, spans in matches.named(Label.HYPOTHETICAL_CUE):
        cue_def = rules.cues[int(name)]
        for cue in spans:
            scope = _cue_scope(cue, cue_def, rules.max_scope, strong_starts, absorbing, view)
            if scope is not None:
                scopes.append(scope)
    return sorted(set(scopes))


def _cue_scope(
    cue: Span,
    cue_def: HypotheticalCueDef,
    limit: int,
    strong_starts: List[int],
    absorbing: Coverage,
    view: DocView,
) -> Optional[Span]:
    """The scope a hypothetical cue opens, None when the cue does not count."""
    start, end = cue
    if absorbing.hits((start, start + 1)):
        return None  # "de ergste pijn ooit": the cue word belongs to a sign
    sent_start, sent_end = view.sentence_bounds(start)
    scope_end = _clause_end(end, min(sent_end, end + limit), cue_def.clause_scope, strong_starts, view)
    if cue_def.until_any:
        stop = _first_of(cue_def.until_any, end, scope_end, view)
        if stop is None:
            return None
        scope_end = stop + 1
    if cue_def.requires_any and not cue_def.requires_any.intersection(view.lower[start:scope_end]):
        return None
    clause = view.lower[max(sent_start, start - limit) : min(sent_end, end + limit)]
    if cue_def.unless_any and cue_def.unless_any.intersection(clause):
        return None
    return start, scope_end


def _first_of(words: FrozenSet[str], start: int, end: int, view: DocView) -> Optional[int]:
    """Index of the first of `words` in [start, end) before any punctuation, else None."""
    for i in range(start, end):
        if view.lower[i] in words:
            return i
        if view.is_punct[i]:
            return None
    return None


def _clause_end(end: int, limit: int, clause_scope: bool, strong_starts: List[int], view: DocView) -> int:
    """Where a scope opened at token `end` stops: a strong boundary or (clause scope) punctuation."""
    scope_end = limit
    for i in range(end, limit):
        if view.strong_boundary[i] or (clause_scope and view.is_punct[i]):
            scope_end = i
            break
    at = bisect.bisect_left(strong_starts, end)
    if at < len(strong_starts) and strong_starts[at] < scope_end:
        scope_end = strong_starts[at]
    return scope_end
