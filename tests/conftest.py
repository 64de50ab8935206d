"""Shared fixtures: the running stack (real action server + Rasa server on free loopback ports)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
import requests

from bot.stack import RASA_MODEL, ROOT, running_stack

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.chdir(ROOT)  # the bot reads data/ and models/ relative to the repository root

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    if not RASA_MODEL.exists():
        pytest.fail(f"{RASA_MODEL} is missing: run `make train` (make test does it)")
    work = tmp_path_factory.mktemp("stack")
    logs = ARTIFACTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with running_stack(work_dir=work, tracker_db=work / "conversations.db", log_dir=logs) as running:
        yield running


class Conversation:
    """One visitor talking to the bot through the REST channel."""

    def __init__(self, url: str, sender: str | None = None) -> None:
        self.url = url
        self.sender = sender or f"test-{uuid.uuid4().hex[:12]}"

    def say(self, text: str) -> List[Dict]:
        response = requests.post(self.url, json={"sender": self.sender, "message": text}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def texts(self, text: str) -> List[str]:
        return [message.get("text", "") for message in self.say(text)]


@pytest.fixture
def conversation(stack) -> Conversation:
    return Conversation(stack.rest_url)


def citation_of(messages: List[str]) -> str | None:
    """The `Bron:` line of a reply, if any."""
    for message in messages:
        for line in message.splitlines():
            if line.startswith("Bron: "):
                return line.removeprefix("Bron: ").strip()
    return None
