"""Suggested next questions under an article answer: related items from data/suggestions.yml, then
the item's neighbours in the article, never what the conversation already answered. Imports
nothing of Rasa."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from bot import paths
from bot.knowledge_base.model import KnowledgeBase


@lru_cache(maxsize=None)
def suggestion_settings(path: Path = paths.SUGGESTIONS) -> Dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def neighbours(kb: KnowledgeBase, item_id: str) -> List[str]:
    """The other items by distance in the article, the following one first at equal distance."""
    ids = kb.item_ids
    position = ids.index(item_id)
    return sorted((other for other in ids if other != item_id), key=lambda other: (abs(ids.index(other) - position), ids.index(other) < position))


def suggested_items(
    kb: KnowledgeBase, item_id: str, answered: Iterable[str] = (), settings: Dict[str, Any] | None = None
) -> List[str]:
    """Up to `max_buttons` items to offer after answering `item_id`."""
    settings = settings or suggestion_settings()
    if kb.item(item_id) is None:
        return []
    skip = {item_id, *answered}
    preferred = [other for other in settings.get("related", {}).get(item_id, []) if kb.item(other)]
    candidates = dict.fromkeys(preferred + neighbours(kb, item_id))
    return [other for other in candidates if other not in skip][: int(settings["max_buttons"])]


def read_on_item(kb: KnowledgeBase, item_id: str, answered: Iterable[str] = (), settings: Dict[str, Any] | None = None) -> Optional[str]:
    """"Vertel meer" after `item_id` was said in full: the item `read_on` names for it (where the
    article says more about it), unless it is not in the article or this conversation answered it."""
    settings = settings or suggestion_settings()
    target = (settings.get("read_on") or {}).get(item_id)
    return target if target and kb.item(target) and target not in set(answered) else None
