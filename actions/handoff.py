"""A visitor asks for a person: notify staff and say when to expect contact."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.contract import ESCALATION_LEVEL_SLOT, HANDOFF_SLOT, WARNING_SIGNS_SLOT
from bot.levels import NONE
from bot.replies import reply
from bot.staff.handoff import NoticeStatus, contact_time, hand_off_notice, is_staff, queue_notice


class ActionHandOff(Action):
    """Queues a hand-off notice for the staff channel; tells the visitor when to expect contact, or
    where to turn when there is no staff channel or too many requests at once."""

    def name(self) -> Text:
        return "action_hand_off"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        visitor_text = reply("hand_off_notified", contact_time=contact_time())
        channel = tracker.get_latest_input_channel()
        if is_staff(channel):  # staff asking for a person: show what a visitor would be told
            dispatcher.utter_message(text=reply("staff_policy_text", level="overdracht", text=visitor_text))
            return []
        notice = hand_off_notice(
            reply("hand_off_reason_request"),
            tracker.sender_id,
            channel,
            tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE,
            tracker.get_slot(WARNING_SIGNS_SLOT) or [],
            tracker.events,
            [message.get("text") or "" for message in dispatcher.messages],
        )
        status = queue_notice(tracker.sender_id, notice)
        if status is NoticeStatus.NO_CHANNEL:
            dispatcher.utter_message(text=reply("hand_off_unavailable"))
            return []
        if status is NoticeStatus.LIMITED:
            dispatcher.utter_message(text=reply("hand_off_limited"))
            return []
        dispatcher.utter_message(text=visitor_text)
        return [SlotSet(HANDOFF_SLOT, True)]
