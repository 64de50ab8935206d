"""The compiled validator for action server replies accepts and rejects what Rasa's own does; event
names resolve to the classes Rasa's own lookup finds; the action server gets of earlier user messages
what actions read."""
from __future__ import annotations

import json

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk import Tracker

import bot.components  # noqa: F401  (applies the patches, as when Rasa loads the model)
from bot.contract import ARTICLE_SEARCH, EARLIER_MESSAGE_KEYS, INTENT_RANKING, WARNING_SIGNS, earlier_warning_signs
from bot.rasa_patches import _original_action_call_format, _original_resolve_by_type, action_call_format, validate_action_result

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


def parse_data(text: str, intent: str, level: str) -> dict:
    return {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        INTENT_RANKING: [{"name": f"faq_{number}", "confidence": 0.01} for number in range(10)],
        ARTICLE_SEARCH: [{"item": "section_selfcare", "paragraph": number, "score": 0.8} for number in range(5)],
        WARNING_SIGNS: {"level": level, "signs": [{"id": "numbness_saddle", "layer": "patterns"}] if level != "none" else []},
        "entities": [],
    }


def conversation() -> DialogueStateTracker:
    events = []
    for number, (text, level) in enumerate([("gevoelloos in mijn kruis", "urgent_112"), ("welke oefeningen?", "none"),
                                            ("en wat kost het kussen?", "none")]):
        events += [
            UserUttered(text, {"name": "faq_best_exercises", "confidence": 0.9},
                        parse_data=parse_data(text, "faq_best_exercises", level), input_channel="rest"),
            ActionExecuted("action_answer_article"),
            BotUttered(f"antwoord {number}", metadata={"citation": {"item": "faq_best_exercises", "paragraphs": [0]}}),
            SlotSet("escalation_level", level),
            ActionExecuted("action_listen"),
        ]
    return DialogueStateTracker.from_events("visitor", events)


def not_user_messages(body: dict) -> list:
    return [event for event in body["tracker"]["events"] if event["event"] != "user"]


def test_the_action_server_gets_of_earlier_user_messages_what_actions_read():
    action = RemoteAction("action_escalate", EndpointConfig("http://127.0.0.1:1/webhook"))
    tracker, domain = conversation(), Domain.empty()
    assert RemoteAction._action_call_format is action_call_format
    full, trimmed = _original_action_call_format(action, tracker, domain), action._action_call_format(tracker, domain)

    full_users = [event for event in full["tracker"]["events"] if event["event"] == "user"]
    trimmed_users = [event for event in trimmed["tracker"]["events"] if event["event"] == "user"]
    for before, after in zip(full_users[:-1], trimmed_users[:-1]):
        assert after["parse_data"] == {key: before["parse_data"][key] for key in EARLIER_MESSAGE_KEYS if key in before["parse_data"]}
        assert {key: value for key, value in after.items() if key != "parse_data"} == \
            {key: value for key, value in before.items() if key != "parse_data"}
    assert trimmed_users[-1] == full_users[-1]  # the latest message as Rasa sends it
    assert trimmed["tracker"]["latest_message"] == full["tracker"]["latest_message"]
    assert not_user_messages(trimmed) == not_user_messages(full)

    # what the actions read through rasa-sdk is the same, and the body is much smaller
    sdk_full, sdk_trimmed = Tracker.from_dict(full["tracker"]), Tracker.from_dict(trimmed["tracker"])
    assert earlier_warning_signs(sdk_trimmed.events) == earlier_warning_signs(sdk_full.events)
    assert earlier_warning_signs(sdk_trimmed.events)[0]["level"] == "urgent_112"
    assert sdk_trimmed.latest_message == sdk_full.latest_message
    assert sdk_trimmed.get_latest_input_channel() == sdk_full.get_latest_input_channel() == "rest"
    assert len(json.dumps(trimmed_users[:-1])) < 0.5 * len(json.dumps(full_users[:-1]))
    # the tracker itself is not changed
    assert [event.parse_data for event in tracker.events if isinstance(event, UserUttered)][0][INTENT_RANKING]


def referred_tracker(level: str) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("visitor", [
        ActionExecuted("action_listen"),
        UserUttered("ik kan niet meer plassen", intent={"name": "report_warning_sign", "confidence": 1.0}),
        BotUttered("Bel nu je huisarts …", metadata={"escalation": {"level": level, "signs": ["urinary_retention"]}}),
        ActionExecuted("action_listen"),
        UserUttered("dank je", intent={"name": "thank", "confidence": 1.0}),
    ])


@pytest.mark.parametrize("level, reminded", [("urgent_now", True), ("soon", False)])
async def test_without_the_action_server_the_rasa_server_says_the_reminder_itself_and_no_apology(level, reminded):
    action = RemoteAction("action_remind_referral", EndpointConfig("http://127.0.0.1:9/webhook"))  # nothing listens
    events = await action.run(None, None, referred_tracker(level), Domain.empty())
    texts = [event.text for event in events if isinstance(event, BotUttered)]
    if reminded:
        assert len(texts) == 1 and texts[0].startswith("Denk eraan:") and "huisartsenpost" in texts[0]
    else:
        assert texts == []
    assert not any(isinstance(event, SlotSet) for event in events)
