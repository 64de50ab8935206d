"""Rasa NLU component: the message's sentence embedding as a dense sentence feature.

Adds one dense SENTENCE feature to the TEXT attribute: the L2-normalized query embedding of the
text (the model's "query" prompt when it has one), 384 numbers for multilingual-e5-small, to every
message in which the tokenizer found a token (as CountVectorsFeaturizer: see `_has_text`).

No sequence (token-level) features: DIETClassifier takes the sequence features of one featurizer
(CountVectorsFeaturizer) and the sentence features of others; it combines sparse and dense sentence
features with `ConcatenateSparseDenseFeatures` and appends the result after the sequence as one
more position (`RasaFeatureCombiningLayer`, which projects both to one size when they differ), and
`DIETClassifier._extract_features` only requires equal lengths within one feature type. Sentence
features always have length 1.

`model` is the one setting naming the embedding model: a sentence-transformers folder (relative to
the working directory or the repository root) or a hub name. It is loaded once per process and
shared with every other user of `bot.embeddings.onnx_model.query_encoder` (onnxruntime when `make
build` exported the model, else sentence-transformers); KnowledgeBaseSearch and the semantic
warning-sign layer read this component's vector, so a message is encoded once.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL, load_sentence_transformer
from bot.embeddings.onnx_model import encoder_fingerprint, query_encoder

MODEL = "model"
BATCH_SIZE = "batch_size"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Featurizes TEXT with a sentence-transformers embedding (a dense sentence feature)."""

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """The vectors depend on the exported graph (the float or the 4-bit one), not only on this
        config: Rasa recomputes the features (and retrains what reads them) when it changes."""
        return encoder_fingerprint(config.get(MODEL, DEFAULT_EMBEDDING_MODEL))

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **DenseFeaturizer.get_default_config(),  # "alias": None -> the node name
            # A sentence-transformers folder or hub name: the one place that names the model.
            MODEL: DEFAULT_EMBEDDING_MODEL,
            BATCH_SIZE: 64,
        }

    @staticmethod
    def required_packages() -> List[Text]:
        return ["sentence_transformers"]

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)
        self._model = None

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SentenceEmbeddingFeaturizer":
        component = cls(config, execution_context.node_name)
        query_encoder(config[MODEL])  # load now (once per process), not on the first message
        return component

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        model = config.get(MODEL)
        if not isinstance(model, str) or not model.strip():
            raise InvalidConfigException(f"{cls.__name__}: `{MODEL}` must name a sentence-transformers model.")
        batch_size = config.get(BATCH_SIZE)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidConfigException(f"{cls.__name__}: `{BATCH_SIZE}` must be a positive integer.")

    @property
    def model(self) -> Any:
        """The SentenceTransformer (the process-wide instance for this `model` setting)."""
        if self._model is None:
            self._model = load_sentence_transformer(self._config[MODEL])
        return self._model

    def embed(self, texts: List[Text]) -> np.ndarray:
        """Query embeddings `[len(texts), dim]`, float32, L2-normalized: by onnxruntime when the
        model is exported (bot/embeddings/onnx_model.py, ~3.5x faster), else by the model itself."""
        return query_encoder(self._config[MODEL], self._config[BATCH_SIZE])(texts)

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds the sentence feature to every message that has a text (one batched encode)."""
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Adds the sentence feature to every training example that has a text."""
        self._featurize(training_data.training_examples)
        return training_data

    def _featurize(self, messages: List[Message]) -> None:
        with_text = [message for message in messages if self._has_text(message)]
        if not with_text:
            return
        vectors = self.embed([message.get(TEXT) for message in with_text])
        for message, vector in zip(with_text, vectors):
            self.add_features_to_message(
                sequence=None, sentence=vector.reshape(1, -1), attribute=TEXT, message=message
            )

    @staticmethod
    def _has_text(message: Message) -> bool:
        """Whether the message gets the feature: exactly when CountVectorsFeaturizer gives it
        features too, i.e. when the pipeline's tokenizer found at least one token in its text
        (without a tokenizer before this component: when the text is not blank). A DIETClassifier
        loaded from disk has a fixed input signature: a message with the dense feature but without
        the sparse ones (or the reverse) makes it raise, one without any feature gets no intent."""
        text = message.get(TEXT)
        if not isinstance(text, str):
            return False
        tokens = message.get(TOKENS_NAMES[TEXT])
        if tokens is not None:
            return len(tokens) > 0
        return bool(text.strip())

    @staticmethod
    def sentence_embedding(message: Message, featurizer: Optional[Text] = None) -> Optional[np.ndarray]:
        """The embedding this component added to `message` (by alias/node name), if any."""
        _, sentence = message.get_dense_features(TEXT, featurizers=[featurizer] if featurizer else None)
        return None if sentence is None else sentence.features.reshape(-1)
