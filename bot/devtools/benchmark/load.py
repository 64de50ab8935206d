"""The stack through REST: one HTTP exchange, the assistant's dev-set answers, single-user latency
and concurrent load."""
from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from itertools import cycle, islice
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp
from tqdm import tqdm

from bot.devtools.benchmark.stats import latency_summary
from bot.devtools.evaluation import answered_item
from bot.stack import Stack

CONCURRENCY = (8, 32)
REQUEST_TIMEOUT_S = 60.0
# One simulated visitor asks this many questions before a new sender id starts (single-user runs).
CONVERSATION_LENGTH = 10
REPLY_KEYS = ("text", "buttons", "image", "custom", "attachment")


def reply_is_empty(body: Any) -> bool:
    """A REST reply with no message that carries anything (text, buttons, image, custom)."""
    if not isinstance(body, list):
        return True
    return not any(isinstance(message, dict) and any(message.get(key) for key in REPLY_KEYS) for message in body)


@dataclass
class Exchange:
    """One REST round trip: whether it got a non-empty reply, its time and what came back."""

    ok: bool
    ms: float
    body: Any = None
    status: Optional[int] = None

    @property
    def error(self) -> Optional[str]:
        if self.ok:
            return None
        if self.status is None:
            return f"no response: {self.body}"[:120]
        return f"HTTP {self.status}" if self.status != 200 else "empty reply"


def count_error(errors: Dict[str, int], exchange: Exchange) -> None:
    if exchange.error:
        errors[exchange.error] = errors.get(exchange.error, 0) + 1


async def send(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> Exchange:
    """POST one message to the REST channel at `url` and time the round trip."""
    start = time.perf_counter()
    try:
        async with session.post(url, json={"sender": sender, "message": text}) as response:
            body = await response.json(content_type=None) if response.status == 200 else await response.text()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        return Exchange(False, (time.perf_counter() - start) * 1000, repr(error))
    ms = (time.perf_counter() - start) * 1000
    return Exchange(status == 200 and not reply_is_empty(body), ms, body, status)


async def fetch_tracker(
    session: aiohttp.ClientSession, stack: Stack, sender: str, include_events: Optional[str] = None
) -> Dict[str, Any]:
    """The conversation's tracker from Rasa's HTTP API (as `Stack.tracker`, without blocking);
    `include_events` as Rasa's query parameter (ALL, AFTER_RESTART, ...), Rasa's default if None."""
    path = f"/conversations/{urllib.parse.quote(sender, safe='')}/tracker"
    if include_events:
        path += f"?include_events={include_events}"
    async with session.get(stack.api_url(path)) as response:
        response.raise_for_status()
        return await response.json()


def client_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), connector=aiohttp.TCPConnector(limit=0)
    )


def new_sender(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


async def assistant_predictions(stack: Stack, texts: Sequence[str]) -> List[Optional[str]]:
    """The item the answer to each question cites (its `citation` metadata in the tracker), or
    None; each question is asked by a new visitor (as tests/test_dev_set.py)."""
    items = []
    async with client_session() as session:
        for text in tqdm(texts, desc="assistant dev set", unit="q", leave=False):
            sender = new_sender("dev")
            await send(session, stack.rest_url, sender, text)
            items.append(answered_item(await fetch_tracker(session, stack, sender)))
    return items


async def single_user(url: str, texts: Sequence[str], count: int, warmup: int) -> Tuple[List[float], Dict[str, int]]:
    """Sequential messages of one visitor at a time (a new sender every CONVERSATION_LENGTH)."""
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    async with client_session() as session:
        sender = new_sender("warmup")
        for text in islice(cycle(texts), warmup):
            await send(session, url, sender, text)
        messages = list(islice(cycle(texts), count))
        for number, text in enumerate(tqdm(messages, desc="single-user latency", unit="msg", leave=False)):
            if number % CONVERSATION_LENGTH == 0:
                sender = new_sender("single")
            exchange = await send(session, url, sender, text)
            latencies.append(exchange.ms)
            count_error(errors, exchange)
    return latencies, errors


async def concurrent(url: str, texts: Sequence[str], conversations: int, per_conversation: int) -> Dict[str, Any]:
    """`conversations` visitors at once, each sending its messages one after the other."""
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    bar = tqdm(total=conversations * per_conversation, desc=f"{conversations} conversations", unit="msg", leave=False)

    async def visitor(number: int, session: aiohttp.ClientSession) -> None:
        sender = new_sender(f"c{conversations}-{number}")
        start = (number * 7) % len(texts)  # each visitor starts elsewhere in the dev set
        for text in islice(cycle([*texts[start:], *texts[:start]]), per_conversation):
            exchange = await send(session, url, sender, text)
            latencies.append(exchange.ms)
            count_error(errors, exchange)
            bar.update(1)

    async with client_session() as session:
        start = time.perf_counter()
        await asyncio.gather(*(visitor(n, session) for n in range(conversations)))
        elapsed = time.perf_counter() - start
    bar.close()
    total = conversations * per_conversation
    failed = sum(errors.values())
    return {
        "messages": total,
        "seconds": round(elapsed, 2),
        "throughput_msg_s": round((total - failed) / elapsed, 2),
        "errors": failed,
        "error_kinds": errors,
        "latency_ms": latency_summary(latencies),
        "latencies": latencies,
    }
