"""Hand-off to staff: a notice in the staff channel, and what staff (not visitors) get to see."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Sequence, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.replies import reply
from bot.staff.handoff import HANDOFF_SLOT, transcript
from bot.staff.notifiers import staff_channels, staff_notifier_from_env

logger = logging.getLogger(__name__)


def is_staff(tracker: Tracker) -> bool:
    """Staff write through a staff channel (STAFF_CHANNELS); message metadata alone is not trusted,
    since a visitor can send any metadata through the REST channel."""
    return tracker.get_latest_input_channel() in staff_channels()


def contact_time() -> str:
    return os.environ.get("HANDOFF_CONTACT_TIME") or reply("hand_off_contact_time")


async def notify_staff(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str, level: str, signs: Sequence[str] = ()
) -> bool:
    """Post the hand-off notice to the configured staff channel; False when there is none or it failed."""
    notifier = staff_notifier_from_env()
    if notifier is None:
        return False
    lines = transcript(tracker.events, [message.get("text") or "" for message in dispatcher.messages])
    notice = reply(
        "hand_off_notice",
        reason=reason,
        conversation_id=tracker.sender_id,
        channel=tracker.get_latest_input_channel() or "onbekend",
        level=level,
        signs=", ".join(signs) or "geen",
        transcript="\n".join(f"  {line}" for line in lines) or "  (geen berichten)",
    )
    try:
        await notifier.post(notice)
    except Exception as error:  # the visitor still gets an answer when the staff channel is down
        logger.error(f"Hand-off notice for {tracker.sender_id} not delivered: {error}")
        return False
    return True


class ActionHandOff(Action):
    """A visitor asks for a person: notify staff and say when to expect contact."""

    def name(self) -> Text:
        return "action_hand_off"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        visitor_text = reply("hand_off_notified", contact_time=contact_time())
        if is_staff(tracker):  # staff asking for a person: show what a visitor would be told
            dispatcher.utter_message(text=reply("staff_policy_text", level="overdracht", text=visitor_text))
            return []
        level = tracker.get_slot("escalation_level") or "none"
        signs = tracker.get_slot("warning_signs") or []
        if not await notify_staff(dispatcher, tracker, reply("hand_off_reason_request"), level, signs):
            dispatcher.utter_message(text=reply("hand_off_unavailable"))
            return []
        dispatcher.utter_message(text=visitor_text)
        return [SlotSet(HANDOFF_SLOT, True)]
