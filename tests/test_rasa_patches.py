"""The compiled validator for action server replies accepts and rejects what Rasa's own does; event
names resolve to the classes Rasa's own lookup finds."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses

import bot.components  # noqa: F401  (applies the patches, as when Rasa loads the model)
from bot.rasa_patches import _original_resolve_by_type, validate_action_result

VALID = {
    "events": [{"event": "slot", "name": "products_mentioned", "value": ["seat_cushion"]}],
    "responses": [{"text": "Bewegen helpt.\nBron: De rol van beweging bij rugpijn", "buttons": []}],
}
INVALID = [
    {"events": [{"name": "no event type"}], "responses": []},
    {"events": "not a list"},
]


def test_rasa_uses_the_compiled_validator():
    assert RemoteAction._validate_action_result is validate_action_result


def test_a_valid_reply_passes_both_validators():
    jsonschema.validate(VALID, RemoteAction.action_response_format_spec())
    assert validate_action_result(None, VALID) is True


@pytest.mark.parametrize("result", INVALID)
def test_an_invalid_reply_fails_both_validators_with_rasas_message(result):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(result, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
        validate_action_result(None, result)


def test_event_names_resolve_to_rasas_classes_and_an_unknown_name_still_raises():
    """The remembered `Event.resolve_by_type` answers what Rasa's own walk over the subclasses does."""
    assert Event.resolve_by_type is not _original_resolve_by_type
    for event_class in all_subclasses(Event):
        if event_class.type_name:
            assert Event.resolve_by_type(event_class.type_name) is _original_resolve_by_type(event_class.type_name)
    assert Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError):
        Event.resolve_by_type("geen_bestaand_event")
    with pytest.raises(ValueError):
        Event.resolve_by_type("geen_bestaand_event")  # not remembered as an answer
