"""Rasa NLU component: an article item that no training example asks for is still found.

DIET can only predict the items it was trained on. When the article gains a section or an FAQ
entry (data/article/*.md; no other file is edited), the KnowledgeBaseSearch component already
ranks its paragraphs (it re-indexes a changed article when the model loads). This component
remembers which items the classifier was trained on; when the best paragraph belongs to an item it
was not, and is close enough, `article_item` names that item, and the intent becomes the
classifier's best article item (every article item's rule runs the article action, which answers
from `article_item` when it is set). Items with written examples are left to DIET.

    - name: bot.components.article_item_resolver.ArticleItemResolver
      # min_score: 0.86     (cosine of the best paragraph needed to answer from an untrained item)
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Set, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.contract import ARTICLE_ITEM, ARTICLE_SEARCH
from bot.knowledge_base import current_knowledge_base

logger = logging.getLogger(__name__)

TRAINED_INTENTS_FILE = "trained_intents.json"
MIN_SCORE = "min_score"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class ArticleItemResolver(GraphComponent, IntentClassifier):
    """Answers from an article item without training examples when its paragraph matches best."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {MIN_SCORE: 0.86}

    def __init__(
        self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, trained: Optional[Set[Text]] = None
    ) -> None:
        self.component_config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.trained: Set[Text] = trained or set()

    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
    ) -> "ArticleItemResolver":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        self.trained = set(training_data.intents)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / TRAINED_INTENTS_FILE).write_text(json.dumps(sorted(self.trained)))
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "ArticleItemResolver":
        with model_storage.read_from(resource) as directory:
            trained = set(json.loads((directory / TRAINED_INTENTS_FILE).read_text()))
        return cls(config, model_storage, resource, trained)

    def untrained_item(self, hits: List[Dict[Text, Any]]) -> Optional[Text]:
        """The item of the best paragraph when no example trained it and the match is close enough."""
        if not hits or hits[0].get("score", 0.0) < self.component_config[MIN_SCORE]:
            return None
        item_id = hits[0].get("item")
        known = current_knowledge_base().item(item_id or "") is not None
        return item_id if known and item_id not in self.trained else None

    def route(self, ranking: List[Dict[Text, Any]]) -> Optional[Text]:
        """The classifier's best trained article item: its rule runs the article action."""
        items = set(current_knowledge_base().item_ids) & self.trained
        return next((entry["name"] for entry in ranking if entry["name"] in items), next(iter(sorted(items)), None))

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            hits = message.get(ARTICLE_SEARCH) or []
            item_id = self.untrained_item(hits)
            route = self.route(message.get(INTENT_RANKING_KEY) or []) if item_id else None
            if item_id is None or route is None:
                continue
            resolved = {INTENT_NAME_KEY: route, PREDICTED_CONFIDENCE_KEY: float(hits[0]["score"])}
            message.set(INTENT, resolved, add_to_output=True)
            message.set(INTENT_RANKING_KEY, resolved_ranking(resolved, message.get(INTENT_RANKING_KEY) or []),
                        add_to_output=True)
            message.set(ARTICLE_ITEM, item_id, add_to_output=True)
        return messages


def resolved_ranking(resolved: Dict[Text, Any], ranking: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    """The classifier's ranking with the resolved intent first: the FallbackClassifier judges the
    ambiguity of the top two, which must be the decision made here, not the classifier's doubt
    between two trained items that the untrained item's paragraph overruled."""
    return [dict(resolved)] + [entry for entry in ranking if entry.get(INTENT_NAME_KEY) != resolved[INTENT_NAME_KEY]]
