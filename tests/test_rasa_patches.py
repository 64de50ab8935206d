"""The compiled validator for action server replies accepts and rejects what Rasa's own does."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

import bot.components  # noqa: F401  (applies the patches, as when Rasa loads the model)
from bot.rasa_patches import validate_action_result

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
