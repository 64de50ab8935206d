"""Rasa NLU component: a message without a single word the assistant knows is not understood.

DIET always predicts some intent, with confidence to spare, even for "xqzt vlorp" or "😀😀":
its character n-grams and the sentence embedding find *something* familiar. This component
learns the vocabulary of the training examples (token texts and lemmas, lower-cased) and sets
`fallback_intent` with confidence 1.0 when no token of a message is in it or close to a word in
it (a typo such as "rugpjin" is close to "rugpijn"). One known word is enough to leave DIET's
prediction alone, so it only catches gibberish, emoji, punctuation and empty text. Its verdict is
also in the parse data (`unknown_words`: the semantic warning-sign layer does not judge such text).

    - name: bot.components.unknown_words_classifier.UnknownWordsClassifier
      # similarity: 0.8        (difflib ratio at which an unknown word counts as a typo)
"""
from __future__ import annotations

import difflib
import json
import logging
from typing import Any, Dict, Iterable, List, Optional, Set, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.contract import UNKNOWN_WORDS

logger = logging.getLogger(__name__)

VOCABULARY_FILE = "vocabulary.json"


def words(tokens: Iterable[Token]) -> List[Text]:
    """The lower-cased token texts (and their lemmas) that contain a letter."""
    found: List[Text] = []
    for token in tokens:
        for form in (token.text, token.lemma):
            form = (form or "").lower()
            if any(character.isalpha() for character in form) and form not in found:
                found.append(form)
    return found


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class UnknownWordsClassifier(GraphComponent, IntentClassifier):
    """Sets the intent to `fallback_intent` for messages with no known (or nearly known) word."""

    @classmethod
    def required_components(cls) -> List[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"fallback_intent": "nlu_fallback", "similarity": 0.8}

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vocabulary: Optional[Set[Text]] = None,
    ) -> None:
        self.component_config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.vocabulary: Set[Text] = vocabulary or set()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "UnknownWordsClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        self.vocabulary = {
            word
            for example in training_data.intent_examples
            for word in words(example.get(TOKENS_NAMES[TEXT], []))
        }
        with self._model_storage.write_to(self._resource) as directory:
            (directory / VOCABULARY_FILE).write_text(json.dumps(sorted(self.vocabulary), ensure_ascii=False))
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "UnknownWordsClassifier":
        try:
            with model_storage.read_from(resource) as directory:
                vocabulary = set(json.loads((directory / VOCABULARY_FILE).read_text()))
        except ValueError:
            logger.warning("UnknownWordsClassifier: no trained vocabulary; only wordless messages fall back.")
            vocabulary = set()
        return cls(config, model_storage, resource, vocabulary)

    def knows(self, word: Text) -> bool:
        """True when `word` or a word within `similarity` of it is in the vocabulary."""
        if word in self.vocabulary:
            return True
        cutoff = self.component_config["similarity"]
        return bool(difflib.get_close_matches(word, self.vocabulary, n=1, cutoff=cutoff))

    def is_unknown(self, message: Message) -> bool:
        text = message.get(TEXT) or ""
        if text.startswith("/"):  # an intent payload (buttons, the widget's start payload)
            return False
        message_words = words(message.get(TOKENS_NAMES[TEXT], []))
        if not self.vocabulary:  # never trained: a word of any kind gives DIET the benefit of the doubt
            return not message_words
        return not any(self.knows(word) for word in message_words)

    def process(self, messages: List[Message]) -> List[Message]:
        fallback = {INTENT_NAME_KEY: self.component_config["fallback_intent"], PREDICTED_CONFIDENCE_KEY: 1.0}
        for message in messages:
            unknown = self.is_unknown(message)
            message.set(UNKNOWN_WORDS, unknown, add_to_output=True)
            if unknown:
                message.set(INTENT, dict(fallback), add_to_output=True)
                message.set(INTENT_RANKING_KEY, [dict(fallback)], add_to_output=True)
        return messages
