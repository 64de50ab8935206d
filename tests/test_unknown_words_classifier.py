"""The Rasa NLU component that turns messages without a known word into `nlu_fallback`."""
from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.unknown_words_classifier import UnknownWordsClassifier

COMPONENT = "bot.components.unknown_words_classifier.UnknownWordsClassifier"
EXAMPLES = {
    "faq_best_exercises": ["welke oefeningen helpen tegen rugpijn", "what exercises help"],
    "greet": ["hoi", "goedemorgen"],
}


@pytest.fixture(scope="module")
def context():
    return ExecutionContext(GraphSchema({}), "test-model")


@pytest.fixture(scope="module")
def tokenizer(context):
    return WhitespaceTokenizer.create(WhitespaceTokenizer.get_default_config(), None, None, context)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, context, tokenizer):
    storage = LocalModelStorage(tmp_path_factory.mktemp("storage"))
    resource = Resource("unknown_words")
    examples = [Message(data={TEXT: text, INTENT: intent}) for intent, texts in EXAMPLES.items() for text in texts]
    training_data = tokenizer.process_training_data(TrainingData(examples))
    UnknownWordsClassifier.create({}, storage, resource, context).train(training_data)
    return UnknownWordsClassifier.load({}, storage, resource, context)


def classified(tokenizer, text: str) -> Message:
    """A tokenized message as DIETClassifier leaves it."""
    message = Message(data={TEXT: text})
    tokenizer.process([message])
    message.set(INTENT, {"name": "greet", "confidence": 0.91}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [{"name": "greet", "confidence": 0.91}], add_to_output=True)
    return message


def test_registered_as_trainable_intent_classifier():
    registered = DefaultV1Recipe._from_registry(COMPONENT)
    assert registered.clazz is UnknownWordsClassifier
    assert DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER in registered.types
    assert registered.is_trainable is True


def test_vocabulary_survives_persistence(trained):
    assert {"oefeningen", "rugpijn", "hoi", "what"} <= trained.vocabulary


@pytest.mark.parametrize("text", ["xqzt vlorp grimbel wuzz", "😀😀😀", "?!?!", "", "   ", "12345"])
def test_unknown_messages_fall_back(trained, tokenizer, text):
    message = trained.process([classified(tokenizer, text)])[0]
    assert message.get(INTENT) == {"name": "nlu_fallback", "confidence": 1.0}
    assert message.get(INTENT_RANKING_KEY) == [{"name": "nlu_fallback", "confidence": 1.0}]


@pytest.mark.parametrize(
    "text",
    [
        "hoi",
        "xqzt rugpijn",  # one known word is enough
        "rugpjin",  # a typo is close to a known word
        "OEFENINGEN!",
        "/session_start",  # intent payloads are not text
    ],
)
def test_known_words_keep_the_prediction(trained, tokenizer, text):
    message = trained.process([classified(tokenizer, text)])[0]
    assert message.get(INTENT)["name"] == "greet"


def test_untrained_component_only_catches_wordless_messages(tmp_path, context, tokenizer):
    component = UnknownWordsClassifier.load({}, LocalModelStorage(tmp_path), Resource("never_trained"), context)
    assert component.process([classified(tokenizer, "xqzt vlorp")])[0].get(INTENT)["name"] == "greet"
    assert component.process([classified(tokenizer, "?!")])[0].get(INTENT)["name"] == "nlu_fallback"
