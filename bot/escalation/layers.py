"""Two layers, one verdict: the patterns' detection and the semantic finding of one message.

The semantic layer adds a sign (and its level) only when the message is made of words the
assistant knows (the UnknownWordsClassifier's verdict) and the patterns did not understand it as
something else (policy, behaviour 2, 6 and 8):
- not when the message as a whole is hypothetical, a general question, hearsay about someone
  else's past or the writer's resolved past (the detection's `scope`), nor when every sentence it
  rests on lies in such a part of the message (the detection's `scoped` parts);
- not when the patterns found that very sign (or a sign it stands for) negated or hypothetical;
- not, unless very confident, when the patterns found signs denied and none present;
- not for a class whose evidence is a number (an age) the patterns did not find.
It never removes what the patterns found. Every sign carries its `layer` (and the semantic one its
`score` and the text it judged), for the audit. Imports nothing of Rasa.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional

from bot.escalation.semantic import SemanticFinding, related_signs, semantic_settings
from bot.levels import NONE, escalates, max_level

PATTERNS = "patterns"
SEMANTIC = "semantic"
BLOCKING_SCOPES = ("hypothetical", "general_question", "hearsay", "resolved_past")
AUDIT_TEXT_CHARS = 160


def semantic_blocked(detection: Mapping[str, Any], finding: SemanticFinding, unknown_words: bool = False,
                     settings: Optional[Mapping[str, Any]] = None) -> bool:
    """True when the semantic finding may not count: the message has no word the assistant knows
    (an embedding of nonsense lands near something), or the patterns understood it otherwise."""
    settings = settings or semantic_settings()
    if unknown_words:
        return True
    scope = detection.get("scope") or {}
    if any(scope.get(name) for name in BLOCKING_SCOPES):
        return True
    if judged_inside_scope(detection, finding):
        return True
    understood = {sign["sign_id"] for key in ("negated", "hypothetical") for sign in detection.get(key) or []}
    if understood & {finding.sign_id, *related_signs(finding.sign_id, settings)}:
        return True
    present = [sign for sign in detection.get("signs") or [] if escalates(sign.get("level", NONE))]
    denied_alarms = [sign for key in ("negated", "hypothetical") for sign in detection.get(key) or []
                     if escalates(sign.get("level", NONE))]  # denying back pain itself says nothing of alarms
    if denied_alarms and not present and finding.score < settings["over_negation_threshold"]:
        return True
    required = (settings.get("requires_pattern_sign") or {}).get(finding.sign_id)
    found = {sign["sign_id"] for sign in detection.get("signs") or []}
    return bool(required) and not found & set(required)


def _letters(text: str) -> str:
    return "".join(character for character in text.lower() if character.isalnum())


def judged_inside_scope(detection: Mapping[str, Any], finding: SemanticFinding) -> bool:
    """Whether what the finding rests on lies within parts the patterns set apart as hypothetical,
    general, hearsay or the writer's resolved past: every sentence that reaches the finding's level
    on its own (or, without such sentences, the text it judged)."""
    judged = [_letters(text) for text in (finding.sentences or (finding.text,)) if _letters(text or "")]
    scoped = [_letters(part.get("text") or "") for part in detection.get("scoped") or []
              if part.get("reason") in BLOCKING_SCOPES]
    return bool(judged) and all(any(text in part for part in scoped) for text in judged)


def combine_layers(
    detection: Mapping[str, Any], finding: Optional[SemanticFinding], text: str, unknown_words: bool = False
) -> Dict[str, Any]:
    """The detection dict with each sign's layer, and the semantic sign added when it may be."""
    combined = copy.deepcopy(dict(detection))
    for sign in combined.get("signs") or []:
        sign.setdefault("layer", PATTERNS)
    if finding is None:
        return combined
    entry = {**finding.to_dict(), "layer": SEMANTIC, "text": " ".join((finding.text or text).split())[:AUDIT_TEXT_CHARS]}
    if semantic_blocked(combined, finding, unknown_words):
        combined["semantic_blocked"] = entry
        return combined
    present = {sign["sign_id"] for sign in combined.get("signs") or []}
    if finding.sign_id not in present:
        combined.setdefault("signs", []).append(entry)
    combined["level"] = max_level(combined.get("level", "none"), finding.level)
    return combined
