"""Low confidence: ask "Bedoel je…?" with up to three of the article's topics, or say what the bot can do."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import clarification, not_covered_message, referral_reminder, sign_question_item, turn_context
from bot.contract import search_hits
from bot.knowledge_base import current_knowledge_base
from bot.replies import article_answer


class ActionClarify(Action):
    """Runs on `nlu_fallback`: offers the likely topics as buttons, or explains what it can answer
    (or that the article does not cover the topic asked about, data/not_covered.yml; a question
    about warning signs gets the article's answer to when to see a professional)."""

    def name(self) -> Text:
        return "action_clarify"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        context = turn_context(tracker)
        for message in referral_reminder(context):  # an urgent referral of this session first
            dispatcher.utter_message(**message)
        parse_data = tracker.latest_message
        uncovered = not_covered_message(kb, parse_data.get("text") or "")
        if uncovered is not None:  # no topic of the article to offer: it does not cover this
            dispatcher.utter_message(**uncovered)
            return []
        signs_item = sign_question_item(kb, parse_data)
        if signs_item is not None:  # "wat als de pijn 's nachts erger wordt?": when to get help
            dispatcher.utter_message(**article_answer(kb, signs_item, search_hits(parse_data), question=parse_data.get("text") or ""))
            return []
        dispatcher.utter_message(**clarification(kb, parse_data))
        return []
