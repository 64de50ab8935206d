"""Start of a conversation: the assistant introduces itself (also for the widget's start payload)."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import knowledge_base, metadata_values
from actions.replies import reply


def introduced_in_this_session(tracker: Tracker) -> bool:
    """True when the widget's `/session_start` arrives in a session that already began with the
    introduction (Rasa starts a new sender's session itself, then the payload asks again).

    Rasa logs a session start as: action `action_session_start`, its bot messages, `session_started`.
    """
    if tracker.latest_message.get("intent", {}).get("name") != "session_start":
        return False
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            return True
        if event.get("event") == "action" and event.get("name") == "action_session_start":
            return False
    return False


class ActionSessionStart(Action):
    """Rasa's session start, plus the introduction: a digital assistant, this article, no diagnosis."""

    def name(self) -> Text:
        return "action_session_start"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        if domain.get("session_config", {}).get("carry_over_slots_to_new_session", True):
            events += [
                SlotSet(name, value)
                for name, value in tracker.current_slot_values().items()
                if value is not None and name != "session_started_metadata"
            ]
        if not introduced_in_this_session(tracker):
            dispatcher.utter_message(text=reply("introduction", **metadata_values(knowledge_base())))
        events.append(ActionExecuted("action_listen"))
        return events
