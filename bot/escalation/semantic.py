"""The semantic warning-sign layer: a classifier over the message's sentence embedding, trained on
paraphrase banks written from the policy alone (bot/escalation/semantic_settings.yml says how).

Pure numpy at run time (the fitted scaler and logistic regression are stored as arrays, no pickle);
scikit-learn fits them. Imports nothing of Rasa.

    model = SemanticSignModel.fit(vectors, class_ids, levels)
    model.recognise(vector)   # SemanticFinding("urinary_retention", "urgent_now", 0.93) or None
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bot import paths
from bot.levels import LEVELS, NONE, level_rank

PARAPHRASES_DIR = paths.BOT_DIR / "escalation" / "paraphrases"
SETTINGS = paths.BOT_DIR / "escalation" / "semantic_settings.yml"
# Class `none` besides the hard negatives: ordinary messages, frozen (the file says why).
ORDINARY_QUESTIONS = paths.BOT_DIR / "escalation" / "ordinary_questions.yml"
NONE_CLASS = "none"
ARRAYS_FILE = "semantic_signs.npz"
META_FILE = "semantic_signs.json"


@dataclass(frozen=True)
class Paraphrase:
    text: str
    class_id: str
    level: str


@dataclass(frozen=True)
class SemanticFinding:
    sign_id: str  # the bank class with the most probability at the level found
    level: str
    score: float  # probability mass of that level and the levels above it
    text: str = ""  # what was judged: the message, its normalised form, or one of its sentences
    # the message's sentences that reach this level on their own (when it has several): where the
    # finding comes from, so that the patterns' scopes can set it apart (layers.py)
    sentences: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {"sign_id": self.sign_id, "level": self.level, "score": round(self.score, 4), "text": self.text,
                "sentences": list(self.sentences)}


SENTENCE_END = re.compile(r"(?<=[.!?;\n])\s+")


def texts_to_judge(text: str, robust: str, min_sentence_chars: int) -> List[str]:
    """Besides the message itself: its normalised form when it differs, and each of its
    sentences when it has more than one (a sign buried in a question about something else)."""
    extra = [robust] if robust.strip() != text.strip() else []
    return extra + sentences_of(robust, min_sentence_chars)


def sentences_of(robust: str, min_sentence_chars: int) -> List[str]:
    """The sentences of a message that has more than one (none for a single sentence)."""
    sentences = [part.strip() for part in SENTENCE_END.split(robust) if len(part.strip()) >= min_sentence_chars]
    return sentences if len(sentences) > 1 else []


def strongest(findings: Sequence[Optional[SemanticFinding]]) -> Optional[SemanticFinding]:
    """The finding of the highest level (then score); the first wins ties."""
    found = [finding for finding in findings if finding is not None]
    return max(found, key=lambda f: (level_rank(f.level), f.score)) if found else None


@lru_cache(maxsize=None)
def semantic_settings(path: Path = SETTINGS) -> Dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_paraphrases(directory: Path = PARAPHRASES_DIR) -> List[Paraphrase]:
    """Every example of every bank file, in file order."""
    examples: List[Paraphrase] = []
    for path in sorted(Path(directory).glob("*.yml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["classes"]:
            level = entry["level"]
            level_rank(level)  # unknown levels fail here, naming the level
            examples += [Paraphrase(str(text), entry["id"], level) for text in entry["examples"]]
    return examples


def load_ordinary_questions(path: Path = ORDINARY_QUESTIONS) -> List[str]:
    """The ordinary messages the layer learns as class `none` (besides the hard negatives)."""
    return [str(text) for text in yaml.safe_load(Path(path).read_text(encoding="utf-8"))["questions"]]


def training_examples() -> Tuple[List[str], List[str], Dict[str, str]]:
    """What the layer learns from: the texts (every bank example, then the ordinary questions), their
    classes (`none` for the ordinary questions) and the level of each class."""
    paraphrases = load_paraphrases()
    ordinary = load_ordinary_questions()
    texts = [p.text for p in paraphrases] + ordinary
    classes = [p.class_id for p in paraphrases] + [NONE_CLASS] * len(ordinary)
    level_of = {p.class_id: p.level for p in paraphrases}
    level_of.setdefault(NONE_CLASS, NONE)
    return texts, classes, level_of


def training_files_fingerprint(directory: Path = PARAPHRASES_DIR, settings: Path = SETTINGS,
                               ordinary: Path = ORDINARY_QUESTIONS) -> str:
    """A digest of the banks, the ordinary questions and the settings: a trained model is stale
    when one changes."""
    digest = hashlib.sha256()
    for path in [*sorted(Path(directory).glob("*.yml")), Path(ordinary), Path(settings)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def related_signs(class_id: str, settings: Optional[Mapping[str, Any]] = None) -> Tuple[str, ...]:
    """The pattern sign ids a bank class stands for (itself, unless the settings say more)."""
    related = (settings or semantic_settings()).get("related_signs") or {}
    return tuple(related.get(class_id, [class_id]))


class SemanticSignModel:
    """Standardised features, multinomial logistic regression, per-level probability mass."""

    def __init__(self, classes: Sequence[str], levels: Sequence[str], mean: np.ndarray, scale: np.ndarray,
                 coef: np.ndarray, intercept: np.ndarray, thresholds: Mapping[str, float]) -> None:
        self.classes = tuple(classes)
        self.levels = tuple(levels)
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept
        self.thresholds = {level: float(value) for level, value in thresholds.items()}
        self._rank = np.array([level_rank(level) for level in self.levels])

    @classmethod
    def fit(cls, vectors: np.ndarray, class_ids: Sequence[str], level_of: Mapping[str, str],
            regularisation: float, thresholds: Mapping[str, float]) -> "SemanticSignModel":
        scaler = StandardScaler().fit(vectors)
        classifier = LogisticRegression(C=regularisation, max_iter=5000).fit(scaler.transform(vectors), list(class_ids))
        classes = [str(c) for c in classifier.classes_]
        return cls(classes, [level_of[c] for c in classes], scaler.mean_, scaler.scale_,
                   classifier.coef_, classifier.intercept_, thresholds)

    def probabilities(self, vector: np.ndarray) -> np.ndarray:
        logits = self.coef @ ((np.asarray(vector, dtype=np.float64) - self.mean) / self.scale) + self.intercept
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()

    def recognise(self, vector: np.ndarray, text: str = "",
                  thresholds: Optional[Mapping[str, float]] = None) -> Optional[SemanticFinding]:
        """The highest level whose classes (that level or above) hold its threshold of the
        probability (the model's, or `thresholds`; a level without one is skipped), with its most
        probable class; None when no level does."""
        thresholds = thresholds or self.thresholds
        probabilities = self.probabilities(vector)
        for rank in range(len(LEVELS) - 1, level_rank(NONE), -1):
            threshold = thresholds.get(LEVELS[rank])
            if threshold is None:  # this level is not judged with these thresholds
                continue
            at_or_above = self._rank >= rank
            mass = float(probabilities[at_or_above].sum())
            if mass >= threshold:
                best = int(np.argmax(np.where(at_or_above, probabilities, -1.0)))
                return SemanticFinding(self.classes[best], LEVELS[rank], mass, text)
        return None

    def mass(self, vector: np.ndarray, level: str) -> float:
        """The probability of the classes at `level` or above."""
        return float(self.probabilities(vector)[self._rank >= level_rank(level)].sum())

    def save(self, directory: Path) -> None:
        np.savez(directory / ARRAYS_FILE, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)
        meta = {"classes": self.classes, "levels": self.levels, "thresholds": self.thresholds}
        (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "SemanticSignModel":
        arrays = np.load(directory / ARRAYS_FILE)
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        return cls(meta["classes"], meta["levels"], arrays["mean"], arrays["scale"], arrays["coef"],
                   arrays["intercept"], meta["thresholds"])


def judge(model: SemanticSignModel, text: str, vector: np.ndarray, robust: str,
          encode: Callable[[List[str]], np.ndarray], min_sentence_chars: int) -> Optional[SemanticFinding]:
    """The strongest finding over the message (`vector`) and, encoded in one batch, its normalised
    form `robust` and its sentences when they differ from it (texts_to_judge), those judged with
    the stricter `part_thresholds`."""
    extra = texts_to_judge(text, robust, min_sentence_chars)
    vectors = encode(extra) if extra else []
    parts = semantic_settings()["part_thresholds"]
    findings = [model.recognise(vector, text)] + [model.recognise(v, t, parts) for v, t in zip(vectors, extra)]
    best = strongest(findings)
    if best is None:
        return None
    sentence_texts = set(sentences_of(robust, min_sentence_chars))
    sentences = {t: v for t, v in zip(extra, vectors) if t in sentence_texts}
    reaching = tuple(f.text for f in findings[1:] if f is not None and f.text in sentences
                     and level_rank(f.level) >= level_rank(best.level))
    if not reaching and sentences:  # none reaches it alone: it rests most on the sentence nearest to it
        reaching = (max(sentences, key=lambda t: model.mass(sentences[t], best.level)),)
    return replace(best, sentences=reaching)
