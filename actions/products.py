"""Answer questions about the article's products, from the knowledge base and data/products.yml."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Text

import yaml
from babel.numbers import format_currency
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import LOCALE, knowledge_base
from actions.replies import reply
from bot.knowledge_base import Product

PRODUCTS_FILE = Path("data/products.yml")


@lru_cache(maxsize=None)
def product_settings(path: Path = PRODUCTS_FILE) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def words_of(text: str) -> Set[str]:
    return set(re.findall(r"\w+", text.lower()))


def products_named(text: str, products: List[Product], settings: Dict[str, Any]) -> List[Product]:
    words = words_of(text)
    return [p for p in products if words & product_words(p, settings)]


def price_text(product: Product) -> str:
    return format_currency(product.price, product.currency, locale=LOCALE)


def product_link(product: Product, settings: Dict[str, Any]) -> str:
    url = settings["products"].get(product.id, {}).get("url")
    return reply("product_link", url=url) if url else ""


def product_words(product: Product, settings: Dict[str, Any]) -> Set[str]:
    return set(settings["products"].get(product.id, {}).get("words", []))


def contextual_product(
    text: str, item_id: str, products: Iterable[Product], settings: Dict[str, Any], already_mentioned: Iterable[str]
) -> Optional[Product]:
    """The product worth one line after the answer to `item_id`, if any (see data/products.yml)."""
    words = words_of(text)
    for product in products:
        mention_after = settings["products"].get(product.id, {}).get("mention_after", [])
        if item_id in mention_after and words & product_words(product, settings) and product.id not in already_mentioned:
            return product
    return None


def product_line(product: Product, settings: Dict[str, Any], template: str) -> str:
    return reply(
        template,
        name=product.name,
        description=product.description,
        price=price_text(product),
        promotion=product.promotion,
        link=product_link(product, settings),
    )


class ActionAnswerProduct(Action):
    """What a product is, its price and the discount; or that the article has no such product."""

    def name(self) -> Text:
        return "action_answer_product"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = knowledge_base()
        settings = product_settings()
        text = tracker.latest_message.get("text") or ""
        words = words_of(text)
        named = products_named(text, list(kb.products), settings)
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
            dispatcher.utter_message(text=product_line(product, settings, "product"), product=product.id)
        return []
