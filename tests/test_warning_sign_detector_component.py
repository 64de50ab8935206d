"""The Rasa NLU component around the warning-sign detector, with real Rasa `Message` objects."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rasa.engine import validation
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.data import TrainingType
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.warning_sign_detector import WarningSignDetector
from bot.paths import SIGNS

COMPONENT = "bot.components.warning_sign_detector.WarningSignDetector"


@pytest.fixture(scope="module")
def component(tmp_path_factory) -> WarningSignDetector:
    storage = LocalModelStorage(tmp_path_factory.mktemp("storage"))
    context = ExecutionContext(GraphSchema({}), "test-model")
    return WarningSignDetector.create(
        WarningSignDetector.get_default_config(), storage, Resource("warning_signs"), context
    )


def classified(text: str, intent: str = "faq_best_exercises", confidence: float = 0.83) -> Message:
    """A message as DIETClassifier leaves it: intent plus ranking."""
    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": intent, "confidence": confidence}, add_to_output=True)
    message.set(
        INTENT_RANKING_KEY,
        [{"name": intent, "confidence": confidence}, {"name": "greet", "confidence": 0.1}],
        add_to_output=True,
    )
    return message


def output(message: Message) -> dict:
    """What the parse result (REST /model/parse, tracker latest_message) contains."""
    return message.as_dict(only_output_properties=True)


def test_default_config():
    config = WarningSignDetector.get_default_config()
    assert config == {"signs_file": None, "override_intent": "report_warning_sign"}


def test_registered_as_non_trainable_intent_classifier():
    registered = DefaultV1Recipe._from_registry(COMPONENT)
    assert registered.clazz is WarningSignDetector
    assert DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER in registered.types
    assert registered.is_trainable is False


def test_pipeline_after_diet_builds_a_valid_graph():
    config = {
        "recipe": "default.v1",
        "language": "nl",
        "pipeline": [
            {"name": "WhitespaceTokenizer"},
            {"name": "CountVectorsFeaturizer"},
            {"name": "DIETClassifier", "epochs": 1},
            {"name": COMPONENT},
            {"name": "FallbackClassifier", "threshold": 0.3},
        ],
    }
    model = DefaultV1Recipe().graph_config_for_recipe(config, {}, training_type=TrainingType.NLU)
    validation.validate(model)
    node = next(n for name, n in model.predict_schema.nodes.items() if COMPONENT in name)
    assert node.fn == "process" and "DIETClassifier" in node.needs["messages"]


def test_warning_sign_overrides_intent_and_keeps_original(component):
    message = classified("Welke oefeningen helpen? Ik kan sinds gisteren niet meer plassen.")
    (result,) = component.process([message])
    assert result is message
    data = output(message)
    assert data[INTENT] == {"name": "report_warning_sign", "confidence": 1.0}
    assert data[INTENT_RANKING_KEY][0] == {"name": "report_warning_sign", "confidence": 1.0}
    assert data[INTENT_RANKING_KEY][1:] == [
        {"name": "faq_best_exercises", "confidence": 0.83},
        {"name": "greet", "confidence": 0.1},
    ]
    assert data["original_intent"] == {"name": "faq_best_exercises", "confidence": 0.83}
    signs = data["warning_signs"]
    assert signs["level"] == "urgent_now"
    assert [s["sign_id"] for s in signs["signs"]] == ["urinary_retention"]
    assert signs["signs"][0]["level"] == "urgent_now" and signs["signs"][0]["text"]


@pytest.mark.parametrize(
    "text, has_negated_sign",
    [
        ("Ik heb geen koorts, welke oefeningen helpen?", True),
        ("ik kan gewoon plassen", False),
        ("Mijn been is niet doof", True),
        ("Pijn in mijn rug zonder uitstraling", True),
        ("I don't have a fever", True),
    ],
)
def test_negated_text_does_not_override(component, text, has_negated_sign):
    message = classified(text)
    component.process([message])
    data = output(message)
    assert data[INTENT]["name"] == "faq_best_exercises"
    assert data[INTENT_RANKING_KEY][0]["name"] == "faq_best_exercises"
    assert "original_intent" not in data
    assert data["warning_signs"]["level"] == "none"
    assert bool(data["warning_signs"]["negated"]) is has_negated_sign


def test_hypothetical_does_not_override(component):
    message = classified("wat als ik ooit gevoelloos word?", intent="faq_when_professional")
    component.process([message])
    data = output(message)
    assert data[INTENT]["name"] == "faq_when_professional"
    assert data["warning_signs"]["level"] == "none"
    assert [s["sign_id"] for s in data["warning_signs"]["hypothetical"]] == ["numbness_unspecified"]


def test_context_sign_is_reported_without_override(component):
    message = classified("Ik heb rugpijn, welke oefeningen zijn goed?")
    component.process([message])
    data = output(message)
    assert data[INTENT]["name"] == "faq_best_exercises"
    assert data["warning_signs"]["level"] == "none"
    assert [s["sign_id"] for s in data["warning_signs"]["signs"]] == ["back_pain"]


def test_soon_level_overrides_too(component):
    message = classified("Ik heb al zes weken rugpijn en het wordt niet beter, welke oefeningen?")
    component.process([message])
    data = output(message)
    assert data[INTENT]["name"] == "report_warning_sign"
    assert data["warning_signs"]["level"] == "soon"
    assert data["original_intent"]["name"] == "faq_best_exercises"


def test_every_message_gets_warning_signs(component):
    messages = [classified("hallo", intent="greet"), classified("Ik heb koorts en voel me heel ziek"), classified("")]
    component.process(messages)
    levels = [output(m)["warning_signs"]["level"] for m in messages]
    assert levels == ["none", "urgent_now", "none"]


def test_message_without_classifier_output(component):
    message = Message(data={TEXT: "I can't pee"})
    component.process([message])
    data = output(message)
    assert data[INTENT] == {"name": "report_warning_sign", "confidence": 1.0}
    assert data[INTENT_RANKING_KEY] == [{"name": "report_warning_sign", "confidence": 1.0}]
    assert data.get("original_intent") is None


def test_learned_warning_intent_is_not_duplicated_or_removed(component):
    learned = classified("ik kan niet plassen", intent="report_warning_sign", confidence=0.7)
    component.process([learned])
    ranking = output(learned)[INTENT_RANKING_KEY]
    assert [r["name"] for r in ranking] == ["report_warning_sign", "greet"]
    # no sign found: a learned prediction of the warning intent stays (the lexicon never removes recall)
    only_learned = classified("er is iets mis met mijn lijf", intent="report_warning_sign", confidence=0.7)
    component.process([only_learned])
    assert output(only_learned)[INTENT]["name"] == "report_warning_sign"


def test_override_intent_and_signs_file_are_configurable(tmp_path):
    data = yaml.safe_load(Path(SIGNS).read_text(encoding="utf-8"))
    for sign in data["signs"]:
        if sign["id"] == "fever":
            sign["level"] = "urgent_now"
    signs_file = tmp_path / "signs.yml"
    signs_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    component = WarningSignDetector({"signs_file": str(signs_file), "override_intent": "alarm"})
    message = classified("ik heb koorts")
    component.process([message])
    data_out = output(message)
    assert data_out[INTENT] == {"name": "alarm", "confidence": 1.0}
    assert data_out["warning_signs"]["level"] == "urgent_now"


def test_process_training_data_passes_through(component):
    training_data = TrainingData(
        training_examples=[Message(data={TEXT: "ik kan niet plassen", INTENT: "report_warning_sign"})]
    )
    assert component.process_training_data(training_data) is training_data
    example = training_data.training_examples[0]
    assert example.get(INTENT) == "report_warning_sign"
    assert example.get("warning_signs") is None
