"""The custom actions' replies, from actions/replies.yml."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import yaml

REPLIES_FILE = Path(__file__).with_name("replies.yml")


@lru_cache(maxsize=None)
def replies() -> Dict[str, str]:
    return yaml.safe_load(REPLIES_FILE.read_text(encoding="utf-8"))


def reply(reply_name: str, /, **values: Any) -> str:
    """The reply `reply_name` with its {placeholders} filled in."""
    return replies()[reply_name].format(**values)
