"""The article's products in conversation: which product a message names or fits, and the line
that presents it. Names, descriptions and prices come from the knowledge base; how products are
matched to questions is data (data/products.yml). Imports nothing of Rasa."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set

import yaml
from babel.numbers import format_currency

from bot import paths
from bot.knowledge_base import Product
from bot.replies import LOCALE, reply


@lru_cache(maxsize=None)
def product_settings(path: Path = paths.PRODUCTS) -> Dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def words_of(text: str) -> Set[str]:
    return set(re.findall(r"\w+", text.lower()))


def product_words(product: Product, settings: Dict[str, Any]) -> Set[str]:
    return set(settings["products"].get(product.id, {}).get("words", []))


def products_named(text: str, products: Iterable[Product], settings: Dict[str, Any]) -> List[Product]:
    words = words_of(text)
    return [p for p in products if words & product_words(p, settings)]


def price_text(product: Product) -> str:
    return format_currency(product.price, product.currency, locale=LOCALE)


def product_link(product: Product, settings: Dict[str, Any]) -> str:
    url = settings["products"].get(product.id, {}).get("url")
    return reply("product_link", url=url) if url else ""


def contextual_product(
    text: str, item_id: str, products: Iterable[Product], settings: Dict[str, Any], already_mentioned: Iterable[str]
) -> Optional[Product]:
    """The product worth one line after the answer to `item_id`, if any (see data/products.yml)."""
    words = words_of(text)
    mentioned = set(already_mentioned)
    for product in products:
        mention_after = settings["products"].get(product.id, {}).get("mention_after", [])
        if item_id in mention_after and words & product_words(product, settings) and product.id not in mentioned:
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
