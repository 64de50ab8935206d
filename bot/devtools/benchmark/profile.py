"""Where one message's time goes (REST, NLU, the action webhook, the rest), and the servers' RSS."""
from __future__ import annotations

import os
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import aiohttp
import rasa
from tqdm import tqdm

from bot.devtools.benchmark.load import CONVERSATION_LENGTH, client_session, fetch_tracker, new_sender, send
from bot.devtools.benchmark.stats import latency_summary, percentile
from bot.stack import Stack
from bot.tokens import ACTION_SERVER_TOKEN, secret

try:  # not a dependency; used when installed, else /proc is read
    import psutil
except ImportError:
    psutil = None


# --- memory -----------------------------------------------------------------------------------

def descendants(pid: int) -> List[int]:
    """The process ids below `pid` (from /proc/<pid>/task/*/children)."""
    found: List[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in found:
                    found.append(kid)
                    frontier.append(kid)
    return found


def proc_rss_kb(pid: int) -> int:
    """VmRSS of one process in kB from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def psutil_rss_mb(pid: int) -> Optional[float]:
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
    except Exception:
        return None
    return round(total / 2**20, 1)


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of a process and its descendants in MB (psutil if present, else /proc)."""
    if psutil is not None:
        return psutil_rss_mb(pid)
    total_kb = sum(proc_rss_kb(member) for member in [pid, *descendants(pid)])
    return round(total_kb / 1024, 1) if total_kb else None


def stack_rss(stack: Stack) -> Dict[str, Optional[float]]:
    """RSS in MB of the Rasa server, the action server and both."""
    result = {name: rss_mb(stack.service(name).process.pid) for name in ("rasa", "actions")}
    result["total"] = round(sum(v for v in result.values() if v), 1)
    return result


# --- one message's path -----------------------------------------------------------------------

def action_server_headers() -> Dict[str, str]:
    """The bearer token the stack's action server expects (start_stack passes it the same secret)."""
    return {"Authorization": f"Bearer {secret(ACTION_SERVER_TOKEN)}"}


async def timed_post(
    session: aiohttp.ClientSession, url: str, payload: Dict[str, Any], headers: Optional[Dict[str, str]] = None
) -> float:
    """POST `payload` as JSON and read the answer; the time in ms."""
    start = time.perf_counter()
    async with session.post(url, json=payload, headers=headers) as response:
        await response.read()
    return (time.perf_counter() - start) * 1000


async def replay_actions(
    session: aiohttp.ClientSession, stack: Stack, sender: str, domain: Dict[str, Any], by_action: Dict[str, List[float]]
) -> float:
    """Replay the custom actions of the latest turn against the action server (each with the
    tracker as it was before it); their total time in ms, each recorded in `by_action`."""
    custom = {a for a in domain.get("actions", []) if not a.startswith("utter_")}
    tracker = await fetch_tracker(session, stack, sender, include_events="ALL")
    events = tracker.get("events", [])
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    ran = [i for i, e in enumerate(events) if i > last_user and e.get("event") == "action" and e.get("name") in custom]
    total = 0.0
    for index in ran:
        payload = {
            "next_action": events[index]["name"], "sender_id": sender,
            "tracker": {**tracker, "events": events[:index]}, "domain": domain, "version": rasa.__version__,
        }
        webhook = f"http://127.0.0.1:{stack.actions_port}/webhook"
        elapsed = await timed_post(session, webhook, payload, action_server_headers())
        by_action.setdefault(events[index]["name"], []).append(elapsed)
        total += elapsed
    return total


def profile_summary(
    rest: List[float], parse: List[float], action: List[float], by_action: Dict[str, List[float]]
) -> Dict[str, Any]:
    """The summaries of each part of the messages' time, and the server's serial capacity."""
    rest_minus = [max(r - p - a, 0.0) for r, p, a in zip(rest, parse, action)]
    return {
        "messages": len(rest),
        "rest_round_trip_ms": latency_summary(rest),
        "model_parse_ms": latency_summary(parse),
        "action_webhook_ms": latency_summary(action),
        "core_and_rest_ms": latency_summary(rest_minus),
        "per_action_ms": {name: latency_summary(values) for name, values in sorted(by_action.items())},
        # The Rasa server runs NLU and the policies on its one event loop, one message at a time:
        # concurrent conversations queue, so its throughput is about 1 / (one message's time).
        "serial_capacity_msg_s": round(1000 / percentile(rest, 50), 1),
        "share_of_p50": {
            "model_parse": round(percentile(parse, 50) / percentile(rest, 50), 3),
            "action_webhook": round(percentile(action, 50) / percentile(rest, 50), 3),
        },
    }


async def profile_messages(stack: Stack, texts: Sequence[str], count: int = 60) -> Dict[str, Any]:
    """Where one message's time goes: the REST round trip, /model/parse (NLU alone) of the same
    text, and the action server's webhook for the custom actions that turn ran. The rest is Rasa
    Core: policies, the tracker store (SQLite), the channel."""
    rest: List[float] = []
    parse: List[float] = []
    action: List[float] = []
    by_action: Dict[str, List[float]] = {}
    async with client_session() as session:
        async with session.get(stack.api_url("/domain"), headers={"Accept": "application/json"}) as response:
            domain = await response.json()
        sender = new_sender("profile")
        for number, text in enumerate(tqdm(list(islice(cycle(texts), count)), desc="profile", unit="msg", leave=False)):
            if number % CONVERSATION_LENGTH == 0:
                sender = new_sender("profile")
            exchange = await send(session, stack.rest_url, sender, text)
            parse.append(await timed_post(session, stack.api_url("/model/parse"), {"text": text}))
            action.append(await replay_actions(session, stack, sender, domain, by_action))
            rest.append(exchange.ms)
    return profile_summary(rest, parse, action, by_action)
