"""Rasa NLU component: the deterministic warning-sign detector in the NLU pipeline.

Place it after the intent classifier (DIETClassifier) in config.yml:

    - name: bot.components.warning_sign_detector.WarningSignDetector
      # signs_file: bot/escalation/signs.yml      (default: the packaged signs.yml)
      # override_intent: report_warning_sign

For every message it runs the pattern detector (bot.escalation.detector), combines its verdict with
the semantic layer's finding (`semantic_signs`, from the SemanticSignRecognizer earlier in the
pipeline; bot/escalation/layers.py decides when it may add a sign) and adds `warning_signs` (level,
signs each with its `layer`, hypothetical, negated, scope) to the parse result. When the message carries a sign above
level `none` (present: not negated, not hypothetical) the intent becomes `override_intent` with
confidence 1.0, prepended to `intent_ranking`; the classifier's own intent is kept in the output
as `original_intent`, so the rest of the question can be answered after the escalation. The
detector only ever adds an escalation: it never removes an intent the classifier predicted
(a learned `report_warning_sign` may add recall).

Context signs of level `none` (e.g. back_pain, age_over_50) are reported in `warning_signs` for
conversation memory but do not override the intent.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import paths
from bot.contract import (
    INTENT,
    INTENT_RANKING,
    ORIGINAL_INTENT,
    REPORT_WARNING_SIGN,
    SEMANTIC_SIGNS,
    TEXT,
    UNKNOWN_WORDS,
    WARNING_SIGNS,
)
from bot.escalation.detector import NO_DETECTION, SignDetector, get_detector
from bot.escalation.layers import combine_layers
from bot.escalation.semantic import SemanticFinding
from bot.levels import escalates

logger = logging.getLogger(__name__)

# config keys
SIGNS_FILE_KEY = "signs_file"
OVERRIDE_INTENT_KEY = "override_intent"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class WarningSignDetector(GraphComponent, IntentClassifier):
    """Sets `warning_signs` on each message and overrides the intent when a sign is present."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # Path of the signs file; None means the packaged bot/escalation/signs.yml.
            SIGNS_FILE_KEY: None,
            # Intent predicted (confidence 1.0) when a sign above level none is present.
            OVERRIDE_INTENT_KEY: REPORT_WARNING_SIGN,
        }

    def __init__(self, config: Dict[Text, Any], detector: Optional[SignDetector] = None) -> None:
        self.component_config = {**self.get_default_config(), **(config or {})}
        self._detector = detector

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "WarningSignDetector":
        component = cls(config)
        component.detector  # load the spaCy pipeline and patterns now, not on the first message
        return component

    @property
    def detector(self) -> SignDetector:
        """The shared detector (one per signs file per process)."""
        if self._detector is None:
            self._detector = get_detector(self.component_config.get(SIGNS_FILE_KEY) or paths.SIGNS)
        return self._detector

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Training data passes through unchanged (the detector is not trained)."""
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._process_message(message)
        return messages

    def _process_message(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        try:
            detection = self.detector.detect(text)
        except Exception:  # pragma: no cover - detect() itself never raises
            logger.exception("warning-sign detector failed")
            detection = NO_DETECTION
        finding = message.get(SEMANTIC_SIGNS)
        combined = combine_layers(
            detection.to_dict(), SemanticFinding(**finding) if finding else None, text, bool(message.get(UNKNOWN_WORDS))
        )
        message.set(WARNING_SIGNS, combined, add_to_output=True)
        if not escalates(combined["level"]):
            return
        self._override_intent(message, combined)

    def _override_intent(self, message: Message, detection: Dict[str, Any]) -> None:
        name = self.component_config[OVERRIDE_INTENT_KEY]
        original = message.get(INTENT)
        message.set(ORIGINAL_INTENT, copy.deepcopy(original) if original else None, add_to_output=True)
        override = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: 1.0}
        ranking = [
            dict(entry)
            for entry in (message.get(INTENT_RANKING) or [])
            if isinstance(entry, dict) and entry.get(INTENT_NAME_KEY) != name
        ]
        message.set(INTENT, override, add_to_output=True)
        message.set(INTENT_RANKING, [dict(override)] + ranking, add_to_output=True)
        logger.debug(
            "warning signs %s (level %s): intent %s -> %s",
            [sign["sign_id"] for sign in detection["signs"]],
            detection["level"],
            (original or {}).get(INTENT_NAME_KEY),
            name,
        )
