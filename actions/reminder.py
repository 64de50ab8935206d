"""Before a fixed reply (greeting, thanks, goodbye, …): the reminder of this session's urgent referral."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import referral_reminder, turn_context


class ActionRemindReferral(Action):
    """Says "Denk eraan: … bel dan nu" when this session referred at an urgent level, else nothing.
    The rules run it before the domain's fixed replies, so "dank je" after "bel 112" is not answered
    with a cheerful "Graag gedaan!" alone; the article's answers carry the same reminder themselves."""

    def name(self) -> Text:
        return "action_remind_referral"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        for message in referral_reminder(turn_context(tracker)):
            dispatcher.utter_message(**message)
        return []
