"""Answer questions about the article's products, from the knowledge base and data/products.yml."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import (
    TurnContext, answer_questions, not_covered_message, present_products, referral_reminder, suggestions, turn_context,
)
from bot.coverage import topic_words
from bot.contract import ARTICLE_QUESTIONS, PRODUCTS_MENTIONED_SLOT, last_products
from bot.knowledge_base import current_knowledge_base
from bot.products import product_settings, products_named, words_of
from bot.replies import reply


# The topic of data/not_covered.yml that lists the aids the article sells none of: "verkopen jullie
# een matras?" is answered with the products the article has.
AIDS_TOPIC = "aids"


class ActionAnswerProduct(Action):
    """What a product is, its price and the discount; or that the article has no such product.
    A question that names no product ("wat kost het?") is about the products the previous answer
    presented. Never once the conversation was escalated (policy, behaviour 5): then it says why
    not. A message that also asks about the article gets each question answered in order. An order,
    a size or a treatment's price (data/not_covered.yml): the article does not say."""

    def name(self) -> Text:
        return "action_answer_product"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        context = turn_context(tracker)
        for message in referral_reminder(context):  # an urgent referral of this session first
            dispatcher.utter_message(**message)
        if context.escalated:  # policy 5: no products once referred
            dispatcher.utter_message(text=reply("product_after_escalation"))
            return []
        kb = current_knowledge_base()
        questions = tracker.latest_message.get(ARTICLE_QUESTIONS) or []
        if questions:
            return self.answer_each(dispatcher, questions, context)
        settings = product_settings()
        text = tracker.latest_message.get("text") or ""
        words = words_of(text)
        named = products_named(text, kb.products, settings)
        other_thing = words & (topic_words(AIDS_TOPIC) | set(settings["medication_words"]))
        uncovered = not_covered_message(kb, text)
        if uncovered is not None and not other_thing:  # an order, a size, a treatment's price: not in the article
            dispatcher.utter_message(**uncovered)
            return []
        if not named and not other_thing:
            named = [product for product in kb.products if product.id in last_products(tracker.events)]
        if not named and not other_thing and words & set(settings["shop_words"]):
            named = list(kb.products)
        if not named:
            names = " en ".join(p.name for p in kb.products)
            dispatcher.utter_message(text=reply("product_not_in_article", names=names))
            if words & set(settings["medication_words"]):
                dispatcher.utter_message(text=reply("medication_pointer"))
            return []
        for message in present_products(kb, [product.id for product in named], settings).messages:
            dispatcher.utter_message(**message)
        return []

    @staticmethod
    def answer_each(dispatcher: CollectingDispatcher, questions: List[Dict[Text, Any]], context: TurnContext) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        turn = answer_questions(kb, questions, None, context)
        for message in turn.messages:
            dispatcher.utter_message(**message)
        offer = suggestions(kb, turn.items, context)
        if offer:
            dispatcher.utter_message(**offer)
        return [SlotSet(PRODUCTS_MENTIONED_SLOT, [*context.products_mentioned, *turn.products])] if turn.products else []
