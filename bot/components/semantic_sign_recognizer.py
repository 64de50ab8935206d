"""Rasa NLU component: the semantic warning-sign layer (bot/escalation/semantic.py).

Place it after the SentenceEmbeddingFeaturizer and before the WarningSignDetector, which combines
both layers (bot/escalation/layers.py):

    - name: bot.components.semantic_sign_recognizer.SemanticSignRecognizer
      model: models/multilingual-e5-small      # the model that encodes the paraphrase banks
      featurizer: sentence_embeddings           # whose sentence vector it reads at run time

Training: the paraphrase banks and, as class `none`, the frozen ordinary questions of
bot/escalation/ordinary_questions.yml (both encoded with `model`), never Rasa's NLU training data:
questions added for the article do not move this safety layer.
At run time it reads the message's sentence vector (no second forward pass for the message
itself); when the message's normalised form differs (run-together words split, chat spellings
written out) or it has several sentences, those are encoded in one batch and judged too. It adds
`semantic_signs` to the parse data: the strongest finding {"sign_id", "level", "score", "text"}, or None.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.sentence_embedding_featurizer import SentenceEmbeddingFeaturizer
from bot.contract import SEMANTIC_SIGNS, TEXT
from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL
from bot.embeddings.onnx_model import encoder_fingerprint, query_encoder
from bot.escalation.segment import robust_text
from bot.escalation.semantic import (
    SemanticFinding,
    SemanticSignModel,
    judge,
    semantic_settings,
    training_examples,
    training_files_fingerprint,
)

logger = logging.getLogger(__name__)

# config keys
MODEL_KEY = "model"
FEATURIZER_KEY = "featurizer"
MIN_SENTENCE_CHARS_KEY = "min_sentence_chars"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class SemanticSignRecognizer(GraphComponent):
    """Adds `semantic_signs`: the warning sign the message's meaning points to, if confident."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            MODEL_KEY: DEFAULT_EMBEDDING_MODEL,
            FEATURIZER_KEY: "sentence_embeddings",
            # a sentence shorter than this is not judged on its own ("Help!")
            MIN_SENTENCE_CHARS_KEY: 12,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 model: Optional[SemanticSignModel] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._model = model

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """The banks and settings are read from disk, the encoder is the exported graph: Rasa
        retrains this component when either changes."""
        return f"{training_files_fingerprint()}|{encoder_fingerprint(config.get(MODEL_KEY, DEFAULT_EMBEDDING_MODEL))}"

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SemanticSignRecognizer":
        return cls(config, model_storage, resource)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "SemanticSignRecognizer":
        with model_storage.read_from(resource) as directory:
            return cls(config, model_storage, resource, SemanticSignModel.load(directory))

    def train(self, training_data: TrainingData) -> Resource:
        """Fits on the banks and the frozen ordinary questions (bot/escalation/), not on
        `training_data`: questions added for the article must not move a safety classifier."""
        texts, classes, level_of = training_examples()
        settings = semantic_settings()
        self._model = SemanticSignModel.fit(query_encoder(self._config[MODEL_KEY])(texts), classes, level_of,
                                            settings["regularisation"], settings["thresholds"])
        with self._model_storage.write_to(self._resource) as directory:
            self._model.save(directory)
        return self._resource

    def _vector(self, message: Message) -> Optional[np.ndarray]:
        return SentenceEmbeddingFeaturizer.sentence_embedding(message, self._config[FEATURIZER_KEY])

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            finding = self._judge(message) if self._model is not None else None
            message.set(SEMANTIC_SIGNS, finding.to_dict() if finding else None, add_to_output=True)
        return messages

    def _judge(self, message: Message) -> Optional[SemanticFinding]:
        """The strongest finding over the message (the featurizer's vector) and, encoded here in
        one batch, its normalised form and its sentences when they differ from it."""
        text = (message.get(TEXT) or "").strip()
        vector = self._vector(message) if text else None
        if vector is None:
            return None
        return judge(self._model, text, vector, robust_text(text, keep_compounds=True), query_encoder(self._config[MODEL_KEY]),
                     self._config[MIN_SENTENCE_CHARS_KEY])

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
