"""Staff notices never delay the referral and are not lost: the outbox and the rate limits, against
a real HTTP server on loopback that stands in for the homeserver (down, then back)."""
from __future__ import annotations

import asyncio
import time
from typing import List

import pytest
from aiohttp import web

from bot.staff.notifiers import SlackNotifier
from bot.staff.outbox import RETRY_MAX_S, Outbox
from bot.staff.rate_limit import NoticeLimiter
from bot.tokens import secret


class Homeserver:
    """An HTTP server that answers 503 while `down`, else records each posted text."""

    def __init__(self) -> None:
        self.down = True
        self.received: List[str] = []

    async def post(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "unavailable"}, status=503)
        self.received.append((await request.json())["text"])
        return web.json_response({"ok": True})


@pytest.fixture
async def homeserver():
    server = Homeserver()
    app = web.Application()
    app.router.add_post("/api/chat.postMessage", server.post)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield server, f"http://127.0.0.1:{port}/api"
    await runner.cleanup()


async def test_notices_queued_while_the_staff_channel_is_down_arrive_once_it_is_back(tmp_path, homeserver):
    server, url = homeserver
    notifier = SlackNotifier(token="t", channel="C1", api_url=url)
    outbox = Outbox(tmp_path / "outbox.db")
    for number in range(3):
        outbox.enqueue(f"gesprek-{number}", f"melding {number}")
    assert await outbox.deliver_due(notifier) == 0  # down: nothing lost, all still queued
    assert outbox.pending() == 3
    server.down = False
    assert await outbox.deliver_due(notifier, now=time.time() + RETRY_MAX_S) == 3  # after the back-off
    assert server.received == ["melding 0", "melding 1", "melding 2"]  # each once, in order
    assert outbox.pending() == 0 and await outbox.deliver_due(notifier) == 0


async def test_outbox_survives_a_restart(tmp_path):
    Outbox(tmp_path / "outbox.db").enqueue("gesprek", "melding")
    assert Outbox(tmp_path / "outbox.db").pending() == 1  # a new process finds it


def test_outbox_file_is_private(tmp_path):
    outbox = Outbox(tmp_path / "var" / "outbox.db")
    assert (outbox.path.stat().st_mode & 0o777) == 0o600
    assert (outbox.path.parent.stat().st_mode & 0o777) == 0o700


async def test_delivery_task_wakes_on_enqueue(tmp_path, homeserver):
    server, url = homeserver
    server.down = False
    outbox = Outbox(tmp_path / "outbox.db")
    notifier = SlackNotifier(token="t", channel="C1", api_url=url)
    task = asyncio.get_running_loop().create_task(outbox.deliver_forever(lambda: notifier, poll_s=30))
    await asyncio.sleep(0.1)
    outbox.enqueue("gesprek", "direct")
    for _ in range(50):
        if server.received:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert server.received == ["direct"]


def test_rate_limits_per_conversation_and_in_total():
    limiter = NoticeLimiter(per_conversation=2, total=3, window_s=60)
    assert [limiter.allow("a", now=0), limiter.allow("a", now=1), limiter.allow("a", now=2)] == [True, True, False]
    assert limiter.allow("b", now=3) and not limiter.allow("c", now=4)  # total of 3 reached
    assert limiter.total_reached(now=4) and limiter.summary_due(now=4) and not limiter.summary_due(now=5)
    assert limiter.allow("c", now=61)  # the window moved on


def test_secrets_are_private_and_shared_by_every_caller(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_SECRET", raising=False)
    first, second = secret("TEST_SECRET", tmp_path / "var"), secret("TEST_SECRET", tmp_path / "var")
    assert first == second and len(first) == 64
    assert ((tmp_path / "var" / "test_secret").stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "var").stat().st_mode & 0o777) == 0o700
    monkeypatch.setenv("TEST_SECRET", "from-the-environment")
    assert secret("TEST_SECRET", tmp_path / "var") == "from-the-environment"
