"""The knowledge base: what the assistant knows, parsed from the article source.

Every answerable item has an `id` (the NLU intent that asks for it), a `citation` (the text of the
reply's `Bron:` line) and the paragraphs an answer may quote.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Dict, List, Optional, Set, Tuple

WORD = re.compile(r"\w+")

ITEM_KINDS = ("intro", "section", "faq", "about", "sources")


@dataclass(frozen=True)
class Reviewer:
    name: str
    role: str
    profession: str = ""
    bio: str = ""


@dataclass(frozen=True)
class Metadata:
    title: str
    author: str
    reviewer: Reviewer
    date: str  # ISO 8601, e.g. "2026-01-17"
    reading_time_minutes: int


@dataclass(frozen=True)
class Item:
    """One answerable part of the article: the intro, a section, an FAQ entry, or metadata."""

    id: str
    kind: str
    heading: str
    citation: str
    paragraphs: Tuple[str, ...] = ()
    line: int = 0  # where it starts in the source, for error messages and editors
    self_care: bool = False  # the answer gives self-care advice: it ends with the safety net
    label: str = ""  # a short name for buttons; the heading when not set

    @property
    def button_title(self) -> str:
        return self.label or self.heading


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str
    price: float
    promotion: str
    section: str  # id of the section the product is shown in
    currency: str = "EUR"


@dataclass(frozen=True)
class Source:
    number: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A searchable unit: one paragraph of one item."""

    item_id: str
    index: int
    text: str


@dataclass(frozen=True)
class KnowledgeBase:
    metadata: Metadata
    items: Tuple[Item, ...]
    products: Tuple[Product, ...] = ()
    sources: Tuple[Source, ...] = ()
    closing: Tuple[str, ...] = ()
    _by_id: Dict[str, Item] = field(default_factory=dict, compare=False, repr=False)
    _words: Set[str] = field(default_factory=set, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({item.id: item for item in self.items})

    def words(self) -> AbstractSet[str]:
        """The lower-cased words of the items' paragraphs, the reviewer's description and the products
        (what the article says anything about), computed once."""
        if not self._words:
            texts = [paragraph for item in self.items for paragraph in item.paragraphs]
            texts += [f"{product.name} {product.description}" for product in self.products]
            texts += [self.metadata.reviewer.bio, self.metadata.reviewer.role]
            self._words.update(word for text in texts for word in WORD.findall(text.lower()))
        return self._words

    def item(self, item_id: str) -> Optional[Item]:
        return self._by_id.get(item_id)

    @property
    def item_ids(self) -> List[str]:
        return [item.id for item in self.items]

    def product(self, product_id: str) -> Optional[Product]:
        return next((p for p in self.products if p.id == product_id), None)

    def passages(self) -> List[Passage]:
        """Every paragraph of every item; FAQ passages carry their question for context."""
        passages = []
        for item in self.items:
            for index, paragraph in enumerate(item.paragraphs):
                text = f"{item.heading} {paragraph}" if item.kind == "faq" else paragraph
                passages.append(Passage(item.id, index, text))
        return passages

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("_by_id")
        data.pop("_words")
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "KnowledgeBase":
        meta = dict(data["metadata"])
        meta["reviewer"] = Reviewer(**meta["reviewer"])
        return cls(
            metadata=Metadata(**meta),
            items=tuple(
                Item(**{**item, "paragraphs": tuple(item["paragraphs"])})
                for item in data["items"]
            ),
            products=tuple(Product(**product) for product in data["products"]),
            sources=tuple(Source(**source) for source in data["sources"]),
            closing=tuple(data["closing"]),
        )
