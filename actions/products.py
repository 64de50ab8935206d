"""Answer questions about the article's products, from the knowledge base and data/products.yml."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.contract import ESCALATION_LEVEL_SLOT, PRODUCT
from bot.knowledge_base import current_knowledge_base
from bot.products import product_line, product_settings, products_named, words_of
from bot.levels import NONE, escalates
from bot.replies import reply


class ActionAnswerProduct(Action):
    """What a product is, its price and the discount; or that the article has no such product.
    Never once the conversation was escalated (policy, behaviour 5): then it says why not."""

    def name(self) -> Text:
        return "action_answer_product"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if escalates(tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE):  # policy 5: no products once referred
            dispatcher.utter_message(text=reply("product_after_escalation"))
            return []
        kb = current_knowledge_base()
        settings = product_settings()
        text = tracker.latest_message.get("text") or ""
        words = words_of(text)
        named = products_named(text, kb.products, settings)
        other_thing = words & set(settings["not_in_article_words"] + settings["medication_words"])
        if not named and not other_thing and words & set(settings["shop_words"]):
            named = list(kb.products)
        if not named:
            names = " en ".join(p.name for p in kb.products)
            dispatcher.utter_message(text=reply("product_not_in_article", names=names))
            if words & set(settings["medication_words"]):
                dispatcher.utter_message(text=reply("medication_pointer"))
            return []
        for product in named:
            dispatcher.utter_message(text=product_line(product, settings, "product"), **{PRODUCT: product.id})
        return []
