"""A visitor erases their own conversation: asked once, confirmed with a button, then erased.

The action sets the slot `erasure_confirmed`; the tracker store deletes the conversation when it
stores this turn (bot/stores/tracker_store.py), so nothing of it is left, this turn included. An
escalated conversation gets its referral once more with the confirmation: the advice outlives
the data (policy, behaviour 9).
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import clock
from bot.contract import (
    CANCEL_ERASURE, CONFIRM_ERASURE, ERASURE_CONFIRMED_SLOT, ERASURE_QUESTION, ESCALATION_LEVEL_SLOT,
    HANDOFF_SLOT, WARNING_SIGNS_SLOT, intent_name, previous_bot_event,
)
from bot.levels import NONE, escalates
from bot.referral import referral_text
from bot.replies import reply


def erasure_buttons() -> List[Dict[str, str]]:
    return [
        {"title": reply("erasure_confirm_button"), "payload": f"/{CONFIRM_ERASURE}"},
        {"title": reply("erasure_cancel_button"), "payload": f"/{CANCEL_ERASURE}"},
    ]


def confirmed(tracker: Tracker) -> bool:
    """The visitor confirmed right after the assistant asked (a confirmation out of the blue is asked again)."""
    asked = previous_bot_event(tracker.events)
    return intent_name(tracker.latest_message) == CONFIRM_ERASURE and bool(
        asked and (asked.get("metadata") or {}).get(ERASURE_QUESTION)
    )


class ActionEraseConversation(Action):
    """Asks whether to erase the conversation; erases it once the visitor confirmed."""

    def name(self) -> Text:
        return "action_erase_conversation"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        if not confirmed(tracker):
            dispatcher.utter_message(text=reply("erasure_question"), buttons=erasure_buttons(), **{ERASURE_QUESTION: True})
            return []
        level = tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE
        if escalates(level):
            advice = referral_text(level, clock.now(), tracker.get_slot(WARNING_SIGNS_SLOT) or [])
            dispatcher.utter_message(text=reply("erasure_done_with_referral", referral=advice))
        else:
            dispatcher.utter_message(text=reply("erasure_done"))
        # an open hand-off ends with the conversation (the mirror stops copying this id's messages)
        return [SlotSet(HANDOFF_SLOT, False), SlotSet(ERASURE_CONFIRMED_SLOT, True)]
