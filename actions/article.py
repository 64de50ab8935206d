"""Answer a question about the article from the knowledge base, naming the section quoted."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.contract import ESCALATION_LEVEL_SLOT, PRODUCT, PRODUCTS_MENTIONED_SLOT, intent_name, search_hits
from bot.knowledge_base import current_knowledge_base
from bot.levels import NONE, escalates
from bot.products import contextual_product, product_line, product_settings
from bot.replies import article_answer, reply
from bot.staff.handoff import is_staff


class ActionAnswerFromArticle(Action):
    """Answers with the paragraph(s) of the article item that the predicted intent names, and one
    "Uit onze winkel" line when a product fits (never once the conversation escalated, never to staff)."""

    def name(self) -> Text:
        return "action_answer_from_article"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        item = kb.item(intent_name(tracker.latest_message) or "")
        if item is None:
            dispatcher.utter_message(text=reply("fallback"))
            return []
        dispatcher.utter_message(**article_answer(kb, item, search_hits(tracker.latest_message)))
        if escalates(tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE) or is_staff(tracker.get_latest_input_channel()):
            return []
        mentioned = list(tracker.get_slot(PRODUCTS_MENTIONED_SLOT) or [])
        settings = product_settings()
        text = tracker.latest_message.get("text") or ""
        product = contextual_product(text, item.id, kb.products, settings, mentioned)
        if product is None:
            return []
        dispatcher.utter_message(text=product_line(product, settings, "product_mention"), **{PRODUCT: product.id})
        return [SlotSet(PRODUCTS_MENTIONED_SLOT, mentioned + [product.id])]
