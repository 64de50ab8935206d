"""Escalation sets through both layers, offline (no servers): the pattern detector, the semantic
model trained exactly as the SemanticSignRecognizer trains it, and their combination.

    python -m bot.cli evaluate-escalation tests/escalation_cases.yml

Per level: urgent cases at an urgent level, soon cases at soon or higher, none cases escalated
(to an urgent level, to any level); per sign: recall. The REST tests measure the same through the
running stack.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import yaml

from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL, encode_queries, load_sentence_transformer
from bot.escalation.detector import get_detector
from bot.escalation.layers import combine_layers
from bot.components.semantic_sign_recognizer import MIN_SENTENCE_CHARS_KEY, SemanticSignRecognizer
from bot.escalation.segment import robust_text
from bot.escalation.semantic import SemanticSignModel, judge, semantic_settings, training_examples
from bot.levels import NONE, URGENT_LEVELS, level_rank


def fit_semantic_model(encoder: Any = None) -> SemanticSignModel:
    """The semantic model as the component trains it (same data, same settings)."""
    encoder = encoder or load_sentence_transformer(DEFAULT_EMBEDDING_MODEL)
    texts, classes, level_of = training_examples()
    settings = semantic_settings()
    return SemanticSignModel.fit(encode_queries(encoder, texts), classes, level_of, settings["regularisation"],
                                 settings["thresholds"])


@dataclass
class Outcome:
    text: str
    expected: str
    signs: List[str]
    patterns: str
    combined: str
    semantic: Optional[Dict[str, Any]] = None


@dataclass
class Scores:
    outcomes: List[Outcome] = field(default_factory=list)

    def rate(self, layer: str, expected: Sequence[str], at_least: str) -> float:
        chosen = [o for o in self.outcomes if o.expected in expected]
        hits = [o for o in chosen if level_rank(getattr(o, layer)) >= level_rank(at_least)]
        return len(hits) / len(chosen) if chosen else float("nan")

    def summary(self, layer: str) -> Dict[str, float]:
        return {
            "urgent_at_urgent": self.rate(layer, tuple(URGENT_LEVELS), "urgent_now"),
            "soon_at_soon_or_higher": self.rate(layer, ("soon",), "soon"),
            "none_to_urgent": self.rate(layer, (NONE,), "urgent_now"),
            "none_to_any": self.rate(layer, (NONE,), "soon"),
        }

    def per_sign(self, layer: str = "combined") -> Dict[str, str]:
        found: Dict[str, List[bool]] = defaultdict(list)
        for o in self.outcomes:
            if o.expected == NONE:
                continue
            at = "urgent_now" if o.expected in URGENT_LEVELS else "soon"
            for sign in o.signs:
                found[sign].append(level_rank(getattr(o, layer)) >= level_rank(at))
        return {sign: f"{sum(hits)}/{len(hits)}" for sign, hits in sorted(found.items())}


def load_cases(path: Path) -> List[Dict[str, Any]]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))["cases"]


def evaluate(cases: Sequence[Dict[str, Any]], model: SemanticSignModel, encoder: Any = None) -> Scores:
    encoder = encoder or load_sentence_transformer(DEFAULT_EMBEDDING_MODEL)
    detector = get_detector()
    vectors = encode_queries(encoder, [case["text"] for case in cases])
    scores = Scores()
    min_chars = SemanticSignRecognizer.get_default_config()[MIN_SENTENCE_CHARS_KEY]
    for case, vector in zip(cases, vectors):
        detection = detector.detect(case["text"]).to_dict()
        finding = judge(model, case["text"], np.asarray(vector), robust_text(case["text"], keep_compounds=True),
                        lambda texts: encode_queries(encoder, texts), min_chars)
        combined = combine_layers(detection, finding, case["text"])
        signs = case.get("signs") or ([case["sign"]] if case.get("sign") and case["sign"] != NONE else [])
        scores.outcomes.append(Outcome(case["text"], case["level"], list(signs), detection["level"],
                                       combined["level"], finding.to_dict() if finding else None))
    return scores
