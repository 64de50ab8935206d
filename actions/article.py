"""Answer a question about the article from the knowledge base, naming the section quoted."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import (
    TurnMessages, answer_item, answer_questions, not_covered_message, referral_reminder, sign_question_item, suggestions,
    turn_context,
)
from bot.contract import ARTICLE_ITEM, ARTICLE_QUESTIONS, PRODUCTS_MENTIONED_SLOT, intent_name, search_hits
from bot.knowledge_base import current_knowledge_base
from bot.replies import reply


class ActionAnswerFromArticle(Action):
    """Answers with the paragraph(s) of the article item that the predicted intent names, one
    "Uit onze winkel" line when a product fits, and up to three related questions as buttons
    (never once the conversation escalated, never to staff). A message that asks several
    questions gets each answered on its own, in the order asked. A question about a topic the
    article does not cover (data/not_covered.yml) is told so instead of getting the nearest item;
    one about warning signs as such gets the article's answer to when to see a professional."""

    def name(self) -> Text:
        return "action_answer_from_article"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        parse_data = tracker.latest_message
        context = turn_context(tracker)
        for message in referral_reminder(context):  # an urgent referral of this session first
            dispatcher.utter_message(**message)
        questions = parse_data.get(ARTICLE_QUESTIONS) or []
        item = sign_question_item(kb, parse_data, detected=False) if not questions else None  # "welke alarmsignalen?"
        item = item or kb.item(parse_data.get(ARTICLE_ITEM) or "") or kb.item(intent_name(parse_data) or "")
        uncovered = None if questions else not_covered_message(kb, parse_data.get("text") or "")
        if uncovered is not None:  # the nearest item would answer what the article does not say
            dispatcher.utter_message(**uncovered)
            return []
        if questions:
            turn = answer_questions(kb, questions, item.id if item else None, context)
        elif item is not None:
            turn = answer_item(kb, item, parse_data.get("text") or "", search_hits(parse_data), context)
        else:
            turn = TurnMessages([{"text": reply("fallback")}])
        for message in turn.messages:
            dispatcher.utter_message(**message)
        offer = suggestions(kb, turn.items, context)
        if offer:
            dispatcher.utter_message(**offer)
        if not turn.products:
            return []
        return [SlotSet(PRODUCTS_MENTIONED_SLOT, [*context.products_mentioned, *turn.products])]
