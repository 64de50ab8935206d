"""Shared fixtures: the running stack (real action server + Rasa server + demo page on free ports)."""
from __future__ import annotations

import os
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List
from urllib.parse import quote

import pytest
import requests
from playwright import sync_api as playwright_api
from rasa.shared.core.domain import Domain
from rasa_sdk.executor import ActionExecutor

from bot.stack import RASA_MODEL, ROOT, free_port, running_stack
from bot.staff.notifiers import MatrixSettings
from synapse_server import Homeserver, StaffUser, start_synapse

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.chdir(ROOT)  # the bot reads data/ and models/ relative to the repository root

ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
# Debian's chromium (make install), driven by Playwright from PyPI: its own browser download fails here
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one test module."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def executor() -> ActionExecutor:
    """rasa-sdk's executor with the `actions` package: each action as the action server runs it."""
    executor = ActionExecutor()
    executor.register_package("actions")
    return executor


@pytest.fixture(scope="session")
def domain() -> dict:
    """The real domain, as the Rasa server sends it to the action server."""
    return Domain.load("domain.yml").as_dict()


@dataclass
class MatrixSetup:
    """The test homeserver, the assistant's Matrix settings, a staff user and the staff room."""

    homeserver: Homeserver
    settings: MatrixSettings
    staff: StaffUser
    rasa_port: int

    @property
    def room(self) -> str:
        return self.settings.staff_room

    @property
    def env(self) -> Dict[str, str]:
        """The MATRIX_* variables the Rasa and action servers get."""
        return {variable: getattr(self.settings, key) for key, variable in MatrixSettings.VARIABLES.items()}

    def invite_bot(self, timeout: float = 30.0) -> None:
        """Staff invite the bot; the Matrix channel joins when the homeserver pushes the invite."""
        room = quote(self.room, safe="")
        self.staff.api("POST", f"/rooms/{room}/invite", json={"user_id": self.settings.bot_user})
        deadline = time.monotonic() + timeout
        while self.settings.bot_user not in self.staff.api("GET", f"/rooms/{room}/joined_members")["joined"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot did not join the staff room within {timeout:.0f} s")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    """Synapse (loopback, SQLite) with the assistant registered as application service. Started
    before the stack: the Rasa server reads the Matrix settings when it starts."""
    directory = tmp_path_factory.mktemp("synapse")
    logs = ARTIFACTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rasa_port = free_port()
    homeserver, settings = start_synapse(directory, f"http://127.0.0.1:{rasa_port}/webhooks/matrix", logs / "synapse.log")
    try:
        staff = homeserver.register("medewerker", secrets.token_hex(12))
        room = staff.api("POST", "/createRoom", json={"name": "Rugpijn-assistent: medewerkers", "preset": "private_chat"})
        yield MatrixSetup(homeserver, replace(settings, staff_room=room["room_id"]), staff, rasa_port)
    finally:
        homeserver.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "without_matrix: the test uses the stack but not the Matrix staff channel (when every collected "
        "stack test says so, the stack starts without the Synapse homeserver)",
    )


def session_needs_matrix(items) -> bool:
    """Synapse is slow to start: the stack goes without it only when every collected test that uses
    the stack is marked `without_matrix` (e.g. `make test-conversations`); otherwise as before."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "matrix" in names or ("stack" in names and item.get_closest_marker("without_matrix") is None):
            return True
    return False


@pytest.fixture(scope="session")
def stack(tmp_path_factory, request):
    if not RASA_MODEL.exists():
        pytest.fail(f"{RASA_MODEL} is missing: run `make train` (make test does it)")
    matrix = request.getfixturevalue("matrix") if session_needs_matrix(request.session.items) else None
    work = tmp_path_factory.mktemp("stack")
    logs = ARTIFACTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # web=True: the demo page with the chat widget too (tests/test_widget_browser.py), on a free port
    # the Matrix staff channel too (tests/test_matrix_channel.py): one Rasa server for every test
    # The suite escalates hundreds of labelled messages, each queuing a staff notice: the total
    # hand-off limit is set above a test run (tests/test_staff_outbox.py tests the limit itself).
    # The retention job runs every 2 s (tests/test_privacy.py ages a conversation and waits for it).
    env = {"HANDOFF_TOTAL": "100000", "PURGE_INTERVAL_S": "2", **(matrix.env if matrix else {})}
    with running_stack(
        work_dir=work, tracker_db=work / "conversations.db", log_dir=logs, web=True, env=env,
        **({"rasa_port": matrix.rasa_port} if matrix else {}),
    ) as running:
        if matrix:
            matrix.invite_bot()
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


def stored_events(stack, sender: str) -> int:
    """How many events of this conversation the stack's tracker store (SQLite) holds."""
    with sqlite3.connect(stack.tracker_db) as db:
        return db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?", (sender,)).fetchone()[0]


def citation_of(messages: List[str]) -> str | None:
    """The `Bron:` line of a reply, if any."""
    for message in messages:
        for line in message.splitlines():
            if line.startswith("Bron: "):
                return line.removeprefix("Bron: ").strip()
    return None
