"""Start of a conversation: the assistant introduces itself (also for the widget's start payload)."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.contract import ESCALATION_LEVEL_SLOT, SESSION_START, WARNING_SIGNS_SLOT, intent_name
from bot.knowledge_base import current_knowledge_base
from bot.replies import article_metadata_values, reply

# A new session never forgets an escalation: the visitor cannot lower or erase it (policy, behaviour 9).
ESCALATION_MEMORY = frozenset({ESCALATION_LEVEL_SLOT, WARNING_SIGNS_SLOT})


def introduced_in_this_session(tracker: Tracker) -> bool:
    """True when the widget's `/session_start` arrives in a session that already began with the
    introduction (Rasa starts a new sender's session itself, then the payload asks again).

    Rasa logs a session start as: action `action_session_start`, its bot messages, `session_started`.
    """
    if intent_name(tracker.latest_message) != SESSION_START:
        return False
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            return True
        if event.get("event") == "action" and event.get("name") == "action_session_start":
            return False
    return False


class ActionSessionStart(Action):
    """Rasa's session start, plus the introduction: a digital assistant, this article, no diagnosis.
    The conversation's escalation level and signs always carry over."""

    def name(self) -> Text:
        return "action_session_start"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        carry_over = domain.get("session_config", {}).get("carry_over_slots_to_new_session", True)
        events += [
            SlotSet(name, value)
            for name, value in tracker.current_slot_values().items()
            if value is not None and name != "session_started_metadata" and (carry_over or name in ESCALATION_MEMORY)
        ]
        if not introduced_in_this_session(tracker):
            dispatcher.utter_message(text=reply("introduction", **article_metadata_values(current_knowledge_base())))
        events.append(ActionExecuted("action_listen"))
        return events
