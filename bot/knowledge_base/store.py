"""Build the knowledge base file from the article source, and load it."""
from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from bot import paths
from bot.knowledge_base.model import KnowledgeBase
from bot.knowledge_base.parser import load_article

ARTICLE_PATH = paths.ARTICLE
KNOWLEDGE_BASE_PATH = paths.KNOWLEDGE_BASE


def build_knowledge_base(
    article: Path = ARTICLE_PATH, output: Path = KNOWLEDGE_BASE_PATH
) -> KnowledgeBase:
    """Parse `article` and write it to `output` atomically: a malformed source writes nothing."""
    knowledge_base = load_article(article)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output.parent, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(knowledge_base.to_dict(), file, ensure_ascii=False, indent=2)
    os.replace(temporary, output)
    return knowledge_base


@lru_cache(maxsize=None)
def load_knowledge_base(path: Path = KNOWLEDGE_BASE_PATH) -> KnowledgeBase:
    """The built knowledge base; built from the article first when the file is missing."""
    path = paths.absolute(path)
    if not path.exists() and path == KNOWLEDGE_BASE_PATH:
        return build_knowledge_base(output=path)
    return KnowledgeBase.from_dict(json.loads(path.read_text(encoding="utf-8")))


def current_knowledge_base() -> KnowledgeBase:
    """The knowledge base this deployment answers from (paths.knowledge_base_path())."""
    return load_knowledge_base(paths.knowledge_base_path())
