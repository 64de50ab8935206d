"""Rasa NLU component: when the classifier is torn between two article items, the paragraphs decide.

The article's neighbouring items overlap ("manuele therapie" is in the section on therapies and in
the one on combining treatment with self-care), so DIET sometimes puts nearly all its confidence on
two items, about half each. Rasa's FallbackClassifier then calls the message ambiguous and the
visitor gets "Bedoel je…?". When the paragraph search (an independent reading of the same message)
ranks a paragraph of one of those two items first, that item is answered instead. Anything else
that the FallbackClassifier judged (low confidence, a tie with a non-article intent, gibberish) is
left to the clarification.

    - name: FallbackClassifier
    - name: bot.components.paragraph_tie_breaker.ParagraphTieBreaker
      # min_pair_confidence: 0.85   (the two items' confidences together)
      # min_score: 0.84             (cosine of the best paragraph; the clarification's floor)
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

from bot.contract import ARTICLE_SEARCH, UNKNOWN_WORDS
from bot.knowledge_base import current_knowledge_base

MIN_PAIR_CONFIDENCE = "min_pair_confidence"
MIN_SCORE = "min_score"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class ParagraphTieBreaker(GraphComponent, IntentClassifier):
    """Answers the item the best paragraph belongs to when DIET is torn between it and one other item."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {MIN_PAIR_CONFIDENCE: 0.85, MIN_SCORE: 0.84}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.component_config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
    ) -> "ParagraphTieBreaker":
        return cls(config)

    def tied_items(self, ranking: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
        """The classifier's two best intents when both are article items that together hold at least
        `min_pair_confidence`, else []."""
        pair = [entry for entry in ranking if entry.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME][:2]
        items = set(current_knowledge_base().item_ids)
        if len(pair) < 2 or not all(entry.get(INTENT_NAME_KEY) in items for entry in pair):
            return []
        together = sum(float(entry.get(PREDICTED_CONFIDENCE_KEY) or 0.0) for entry in pair)
        return pair if together >= self.component_config[MIN_PAIR_CONFIDENCE] else []

    def choice(self, message: Message) -> Optional[Dict[Text, Any]]:
        """The tied item whose paragraph the search ranks first, if it ranks one of them first."""
        intent = message.get(INTENT) or {}
        if intent.get(INTENT_NAME_KEY) != DEFAULT_NLU_FALLBACK_INTENT_NAME or message.get(UNKNOWN_WORDS):
            return None
        hits = message.get(ARTICLE_SEARCH) or []
        if not hits or float(hits[0].get("score", 0.0)) < self.component_config[MIN_SCORE]:
            return None
        pair = self.tied_items(message.get(INTENT_RANKING_KEY) or [])
        return next((dict(entry) for entry in pair if entry[INTENT_NAME_KEY] == hits[0].get("item")), None)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            chosen = self.choice(message)
            if chosen is None:
                continue
            ranking = [entry for entry in message.get(INTENT_RANKING_KEY) or []
                       if entry.get(INTENT_NAME_KEY) not in (DEFAULT_NLU_FALLBACK_INTENT_NAME, chosen[INTENT_NAME_KEY])]
            message.set(INTENT, chosen, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [chosen, *ranking], add_to_output=True)
        return messages
