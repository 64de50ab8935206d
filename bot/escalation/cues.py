"""The sections `boundaries`, `negation`, `hypothetical` and `whose_sign` of signs.yml as typed
data: where clauses end, and the cues that deny a sign, make it hypothetical or say it is not the
writer's own present sign (scope.py and whose.py apply them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Sequence, Tuple

from bot.escalation.signs_file import (
    PatternBlock,
    SignsFileError,
    read_clause_scope,
    read_pattern_block,
    read_required,
    read_section,
    read_str_list,
    read_words,
)


@dataclass(frozen=True)
class Boundaries:
    sentence_chars: str
    clause_words: FrozenSet[str]
    strong_words: FrozenSet[str]
    strong_phrases: Tuple[str, ...]


@dataclass(frozen=True)
class Coordination:
    """Words that chain a negated term to the next one ("geen koorts of rillingen")."""

    conjunctions: FrozenSet[str]
    fillers: FrozenSet[str]
    max_gap: int  # the next term starts at most this many tokens after the governed one

    def links(self, between: Sequence[str]) -> bool:
        """Whether the tokens between two terms coordinate them: fillers and a conjunction."""
        allowed = self.conjunctions | self.fillers
        return (
            bool(between)
            and all(word in allowed for word in between)
            and any(word in self.conjunctions for word in between)
        )


@dataclass(frozen=True)
class PostCueDef:
    patterns: PatternBlock
    clause_final: bool
    not_followed_by: FrozenSet[str]


@dataclass(frozen=True)
class NegationRules:
    max_gap: int
    post_max_gap: int
    coordination: Coordination
    cues: PatternBlock
    clause_cues: PatternBlock
    normal_function: PatternBlock
    normal_function_not_followed_by: FrozenSet[str]
    pseudo: PatternBlock
    post_cues: Tuple[PostCueDef, ...]


@dataclass(frozen=True)
class HypotheticalCueDef:
    patterns: PatternBlock
    requires_any: FrozenSet[str]
    unless_any: FrozenSet[str]
    until_any: FrozenSet[str]  # scope ends after the first of these words (must occur)
    clause_scope: bool  # scope ends at the first punctuation instead of the sentence end


@dataclass(frozen=True)
class GeneralQuestions:
    """A question about people in general, or about the alarm signs themselves, that never speaks
    about the writer is informational (`topic` and `request` are matched by the matcher)."""

    question_chars: str
    question_words: FrozenSet[str]
    generic_words: FrozenSet[str]
    first_person_words: FrozenSet[str]
    topic_question_words: FrozenSet[str]
    deictic_words: FrozenSet[str]
    topic: PatternBlock  # the alarm signs as a subject
    evaluative: PatternBlock  # "gevaarlijk", "naar de dokter": strict general questions only
    request: PatternBlock
    unless_any: Tuple[str, ...]  # whose_sign marker names: a real case, no general question

    def is_question(self, words: Sequence[str]) -> bool:
        return bool(words) and (
            any(char in words[-1] for char in self.question_chars) or words[0] in self.question_words
        )

    def is_personal(self, words: Sequence[str]) -> bool:
        return any(word in self.first_person_words for word in words)

    def is_general(self, words: Sequence[str], topic: bool = False) -> bool:
        """Whether the words of one sentence make such a question (`topic`: it holds a topic)."""
        if not words or self.is_personal(words):
            return False
        if self.is_question(words) and any(word in self.generic_words for word in words):
            return True
        return (
            topic
            and words[0] in self.topic_question_words
            and not any(word in self.deictic_words for word in words)
            and all(any(ch.isalnum() for ch in word) for word in words[:-1])  # one clause
        )


@dataclass(frozen=True)
class HypotheticalRules:
    max_scope: int
    cues: Tuple[HypotheticalCueDef, ...]
    general_questions: GeneralQuestions


def parse_boundaries(raw: Mapping[str, Any]) -> Boundaries:
    return Boundaries(
        sentence_chars=read_required(raw, "sentence_chars", str, "boundaries"),
        clause_words=read_words(raw.get("clause_words"), "boundaries.clause_words"),
        strong_words=read_words(raw.get("strong_words"), "boundaries.strong_words"),
        strong_phrases=read_str_list(raw.get("strong_phrases"), "boundaries.strong_phrases"),
    )


def _parse_coordination(raw: Mapping[str, Any]) -> Coordination:
    where = "negation.coordination"
    return Coordination(
        conjunctions=read_words(raw.get("conjunctions"), f"{where}.conjunctions"),
        fillers=read_words(raw.get("fillers"), f"{where}.fillers"),
        max_gap=read_required(raw, "max_gap", int, where),
    )


def _parse_post_cue(raw: Mapping[str, Any], where: str) -> PostCueDef:
    return PostCueDef(
        patterns=read_pattern_block(raw, where),
        clause_final=bool(raw.get("clause_final", False)),
        not_followed_by=read_words(raw.get("not_followed_by"), f"{where}.not_followed_by"),
    )


def parse_negation(raw: Mapping[str, Any]) -> NegationRules:
    normal = read_section(raw, "normal_function", "negation")
    post_cues = tuple(
        _parse_post_cue(cue, f"negation.post[{i}]") for i, cue in enumerate(raw.get("post") or [])
    )
    return NegationRules(
        max_gap=read_required(raw, "max_gap", int, "negation"),
        post_max_gap=read_required(raw, "post_max_gap", int, "negation"),
        coordination=_parse_coordination(read_section(raw, "coordination", "negation")),
        cues=read_pattern_block(raw.get("cues"), "negation.cues"),
        clause_cues=read_pattern_block(raw.get("clause_cues"), "negation.clause_cues"),
        normal_function=read_pattern_block(normal, "negation.normal_function"),
        normal_function_not_followed_by=read_words(
            normal.get("not_followed_by"), "negation.normal_function.not_followed_by"
        ),
        pseudo=read_pattern_block(raw.get("pseudo"), "negation.pseudo"),
        post_cues=post_cues,
    )


def _parse_hypothetical_cue(raw: Mapping[str, Any], default_scope: str, where: str) -> HypotheticalCueDef:
    return HypotheticalCueDef(
        patterns=read_pattern_block(raw, where),
        requires_any=read_words(raw.get("requires_any"), f"{where}.requires_any"),
        unless_any=read_words(raw.get("unless_any"), f"{where}.unless_any"),
        until_any=read_words(raw.get("until_any"), f"{where}.until_any"),
        clause_scope=read_clause_scope(raw.get("scope", default_scope), f"{where}.scope"),
    )


def _parse_general_questions(raw: Mapping[str, Any]) -> GeneralQuestions:
    where = "hypothetical.general_questions"
    return GeneralQuestions(
        question_chars=read_required(raw, "question_chars", str, where),
        question_words=read_words(raw.get("question_words"), f"{where}.question_words"),
        generic_words=read_words(raw.get("generic_words"), f"{where}.generic_words"),
        first_person_words=read_words(raw.get("first_person_words"), f"{where}.first_person_words"),
        topic_question_words=read_words(raw.get("topic_question_words"), f"{where}.topic_question_words"),
        deictic_words=read_words(raw.get("deictic_words"), f"{where}.deictic_words"),
        topic=read_pattern_block(raw.get("topic"), f"{where}.topic"),
        evaluative=read_pattern_block(raw.get("evaluative"), f"{where}.evaluative"),
        request=read_pattern_block(raw.get("request"), f"{where}.request"),
        unless_any=read_str_list(raw.get("unless_any"), f"{where}.unless_any"),
    )


def parse_hypothetical(raw: Mapping[str, Any]) -> HypotheticalRules:
    default_scope = raw.get("scope")
    read_clause_scope(default_scope, "hypothetical.scope")
    cues = tuple(
        _parse_hypothetical_cue(cue, default_scope, f"hypothetical.cues[{i}]")
        for i, cue in enumerate(raw.get("cues") or [])
    )
    return HypotheticalRules(
        max_scope=read_required(raw, "max_scope", int, "hypothetical"),
        cues=cues,
        general_questions=_parse_general_questions(read_section(raw, "general_questions", "hypothetical")),
    )


# -- whose sign ----------------------------------------------------------------------------------

HYPOTHETICAL = "hypothetical"
GENERAL_QUESTION = "general_question"
HEARSAY = "hearsay"
RESOLVED_PAST = "resolved_past"
WHOSE_KINDS = (HEARSAY, RESOLVED_PAST)
FORWARD = "forward"
BACKWARD = "backward"


@dataclass(frozen=True)
class MarkerDef:
    """A named word class the whose-sign cues test (past tense, a recent time, ...)."""

    patterns: PatternBlock
    exclude: PatternBlock
    absorbs: Tuple[str, ...]  # markers whose occurrences inside one of this marker do not count


@dataclass(frozen=True)
class WhoseCueDef:
    """A cue that says a sign is not the writer's own present sign."""

    kind: str  # HEARSAY | RESOLVED_PAST
    patterns: PatternBlock  # its own patterns (empty when it is `marker`)
    marker: str  # "" or the marker whose occurrences are the cue
    backward: bool  # the scope runs back from the cue (else forward to the sentence end)
    lead: int  # backward: reaches into the previous sentence when starting within `lead` tokens
    requires_any: Tuple[str, ...]
    unless_before: Tuple[str, ...]
    unless_any: Tuple[str, ...]
    unless_after: Tuple[str, ...]
    stop_at: Tuple[str, ...]


@dataclass(frozen=True)
class Continuation:
    """A hearsay scope goes on into the next sentence that starts with one of `words`."""

    words: FrozenSet[str]
    within: int
    requires_any: Tuple[str, ...]


@dataclass(frozen=True)
class PresentReport:
    """A sentence in which the writer reports something present: a `person` marker with a `time`
    marker, or with a `verb` marker when the sentence is no question."""

    person: Tuple[str, ...]
    time: Tuple[str, ...]
    verb: Tuple[str, ...]


@dataclass(frozen=True)
class WhoseRules:
    max_scope: int
    governs_share: float
    present_report: PresentReport
    continuation: Continuation
    markers: Mapping[str, MarkerDef]
    cues: Tuple[WhoseCueDef, ...]


def _marker_names(raw: Any, markers: Mapping[str, Any], where: str) -> Tuple[str, ...]:
    names = read_str_list(raw, where)
    unknown = [name for name in names if name not in markers]
    if unknown:
        raise SignsFileError(f"{where}: unknown marker {unknown[0]}")
    return names


def _parse_whose_cue(raw: Any, markers: Mapping[str, MarkerDef], where: str) -> WhoseCueDef:
    if not isinstance(raw, Mapping):
        raise SignsFileError(f"{where}: expected a mapping")
    kind, direction = raw.get("kind"), raw.get("direction", FORWARD)
    if kind not in WHOSE_KINDS:
        raise SignsFileError(f"{where}.kind: must be one of {WHOSE_KINDS}")
    if direction not in (FORWARD, BACKWARD):
        raise SignsFileError(f"{where}.direction: must be {FORWARD} or {BACKWARD}")
    marker = raw.get("marker") or ""
    patterns = read_pattern_block(raw, where)
    if marker and marker not in markers:
        raise SignsFileError(f"{where}.marker: unknown marker {marker}")
    if patterns.is_empty() == (not marker):
        raise SignsFileError(f"{where}: give either patterns or a marker")
    names = {key: _marker_names(raw.get(key), markers, f"{where}.{key}")
             for key in ("requires_any", "unless_before", "unless_any", "unless_after", "stop_at")}
    lead = raw.get("lead", 0)
    if not isinstance(lead, int) or isinstance(lead, bool) or lead < 0:
        raise SignsFileError(f"{where}.lead: a whole number >= 0")
    return WhoseCueDef(kind=kind, patterns=patterns, marker=marker, backward=direction == BACKWARD,
                       lead=lead, **names)


def parse_whose_sign(raw: Mapping[str, Any]) -> WhoseRules:
    where = "whose_sign"
    markers: Dict[str, MarkerDef] = {}
    raw_markers = read_section(raw, "markers", where)
    for name, entry in raw_markers.items():
        at = f"{where}.markers.{name}"
        block = read_pattern_block(entry, at)
        if block.is_empty():
            raise SignsFileError(f"{at}: no patterns")
        markers[str(name)] = MarkerDef(
            block,
            read_pattern_block(entry.get("exclude"), f"{at}.exclude"),
            _marker_names(entry.get("absorbs"), raw_markers, f"{at}.absorbs"),
        )
    continuation = read_section(raw, "continuation", where)
    report = read_section(raw, "present_report", where)
    share = raw.get("governs_share")
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
        raise SignsFileError(f"{where}.governs_share: required, a number in (0, 1]")
    return WhoseRules(
        max_scope=read_required(raw, "max_scope", int, where),
        governs_share=float(share),
        present_report=PresentReport(
            **{key: _marker_names(report.get(key), markers, f"{where}.present_report.{key}")
               for key in ("person", "time", "verb")}
        ),
        continuation=Continuation(
            words=read_words(continuation.get("words"), f"{where}.continuation.words"),
            within=read_required(continuation, "within", int, f"{where}.continuation"),
            requires_any=_marker_names(continuation.get("requires_any"), markers, f"{where}.continuation.requires_any"),
        ),
        markers=markers,
        cues=tuple(_parse_whose_cue(cue, markers, f"{where}.cues[{i}]") for i, cue in enumerate(raw.get("cues") or [])),
    )
