"""Rasa NLU component: ranks the article's paragraphs by similarity to the user's message.

At training time it embeds every paragraph of the knowledge base; at run time it takes the
message's sentence embedding from the `SentenceEmbeddingFeaturizer` (no second encoding) and adds
`article_search` (the best paragraphs with their cosine scores) to the parse result, where the
custom actions use it to quote the relevant paragraph(s) of the predicted item. A message that asks
two or more questions (bot/knowledge_base/questions.py) also gets `article_questions`: each
question with its own best paragraphs, so that each is answered on its own.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.contract import ARTICLE_QUESTIONS, ARTICLE_SEARCH
from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL
from bot.embeddings.onnx_model import passage_encoder, query_encoder
from bot.knowledge_base import current_knowledge_base
from bot.knowledge_base.questions import split_questions
from bot.knowledge_base.search import PassageIndex, knowledge_base_fingerprint

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class KnowledgeBaseSearch(GraphComponent):
    """Adds the best-matching article paragraphs to each message."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "model": DEFAULT_EMBEDDING_MODEL,
            "featurizer": "sentence_embeddings",
            "top_k": 5,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        index: Optional[PassageIndex] = None,
    ) -> None:
        self._config = config
        self._model_storage = model_storage
        self._resource = resource
        self._index = index

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "KnowledgeBaseSearch":
        return cls(config, model_storage, resource)

    def _build_index(self) -> PassageIndex:
        knowledge_base = current_knowledge_base()
        return PassageIndex.build(knowledge_base, passage_encoder(self._config["model"]))

    def train(self, training_data: TrainingData) -> Resource:
        self._index = self._build_index()
        with self._model_storage.write_to(self._resource) as directory:
            self._index.save(directory)
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "KnowledgeBaseSearch":
        component = cls(config, model_storage, resource)
        with model_storage.read_from(resource) as directory:
            component._index = PassageIndex.load(directory)
        current = knowledge_base_fingerprint(current_knowledge_base())
        if component._index.fingerprint != current:
            logger.warning("The article changed since training; re-indexing its paragraphs.")
            component._index = component._build_index()
        return component

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            vector = self._query_vector(message)
            hits = self._index.search(vector, self._config["top_k"]) if vector is not None else []
            message.set(ARTICLE_SEARCH, [hit.to_dict() for hit in hits], add_to_output=True)
            questions = split_questions(message.get(TEXT) or "") if vector is not None else []
            if questions:
                message.set(ARTICLE_QUESTIONS, self._search_each(questions), add_to_output=True)
        return messages

    def _search_each(self, questions: List[Text]) -> List[Dict[Text, Any]]:
        vectors = query_encoder(self._config["model"])(questions)
        return [
            {"text": question, "hits": [hit.to_dict() for hit in self._index.search(vector, self._config["top_k"])]}
            for question, vector in zip(questions, vectors)
        ]

    def _query_vector(self, message: Message) -> Optional[np.ndarray]:
        text = (message.get(TEXT) or "").strip()
        if not text or text.startswith("/"):
            return None
        _, sentence = message.get_dense_features(TEXT, featurizers=[self._config["featurizer"]])
        if sentence is not None and sentence.features.shape[-1] == self._index.dimension:
            return sentence.features.reshape(-1)
        return query_encoder(self._config["model"])([text])[0]

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
