"""The article as data: parse `data/article/*.md`, validate it, store it as JSON for the bot."""
from bot.knowledge_base.model import Item, KnowledgeBase, Metadata, Passage, Product, Reviewer, Source
from bot.knowledge_base.parser import ArticleFormatError, load_article, parse_article
from bot.knowledge_base.store import (
    ARTICLE_PATH,
    KNOWLEDGE_BASE_PATH,
    build_knowledge_base,
    current_knowledge_base,
    load_knowledge_base,
)

__all__ = [
    "ARTICLE_PATH",
    "ArticleFormatError",
    "Item",
    "KNOWLEDGE_BASE_PATH",
    "KnowledgeBase",
    "Metadata",
    "Passage",
    "Product",
    "Reviewer",
    "Source",
    "build_knowledge_base",
    "current_knowledge_base",
    "load_article",
    "load_knowledge_base",
    "parse_article",
]
