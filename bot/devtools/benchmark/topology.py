"""The scaled topology in `make bench`: the cluster (bot/cluster.py: one Rasa server per core behind
nginx, PostgreSQL, Redis, RabbitMQ) under the same concurrent load as the single process, and the
NLU-only throughput of this pipeline against Rasa's default pipeline, each served by a bare `rasa run`
the same way (`POST /model/parse`)."""
from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Dict, List, Sequence

import aiohttp

from bot.cluster import SharedNames, cluster_endpoints, drop_shared_state, running_cluster
from bot.devtools.benchmark.load import CONCURRENCY, concurrent, single_user
from bot.devtools.benchmark.profile import rss_mb
from bot.devtools.benchmark.stats import latency_summary
from bot.stack import free_port, server_environment, spawner, wait_for
from bot.tokens import RASA_API_TOKEN, secret

WARMUP_MESSAGES = 20
PARSE_CLIENTS = 8
PARSE_MESSAGES = 400


def measure_cluster(texts: Sequence[str], messages: int, replicas: int = 0) -> Dict[str, Any]:
    """msg/s, errors and latency at each concurrency through the cluster's nginx, and each Rasa
    server's RSS; the cluster runs on its own database, key prefix and queue, dropped afterwards."""
    replicas = replicas or os.cpu_count() or 1
    names = SharedNames.unique("rugpijnbench")
    load: Dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp, \
                running_cluster(replicas=replicas, names=names, work_dir=Path(tmp)) as cluster:
            asyncio.run(single_user(cluster.rest_url, texts, WARMUP_MESSAGES, 0))  # every replica loaded
            for conversations in CONCURRENCY:
                per_conversation = max(10, math.ceil(messages / conversations))
                load[str(conversations)] = asyncio.run(concurrent(cluster.rest_url, texts, conversations, per_conversation))
            rss = {service.name: rss_mb(service.process.pid) for service in cluster.replicas}
    finally:
        drop_shared_state(cluster_endpoints(0, names))
    return {"replicas": replicas, "load": load, "rss_mb": rss}


async def _parse_load(url: str, token: str, texts: Sequence[str], clients: int, count: int) -> Dict[str, Any]:
    latencies: List[float] = []
    errors = 0

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for text in islice(cycle(texts[number % len(texts):] + texts[: number % len(texts)]), count // clients):
            start = time.perf_counter()
            async with session.post(f"{url}/model/parse", params={"token": token}, json={"text": text}) as response:
                await response.read()
                errors += response.status != 200
            latencies.append((time.perf_counter() - start) * 1000)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(number, session) for number in range(clients)))  # warm-up round
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(client(number, session) for number in range(clients)))
        elapsed = time.perf_counter() - start
    return {"throughput_msg_s": round((len(latencies) - errors) / elapsed, 2), "errors": errors, "latency_ms": latency_summary(latencies)}


def parse_throughput(model: Path, texts: Sequence[str], clients: int = PARSE_CLIENTS, count: int = PARSE_MESSAGES) -> Dict[str, Any]:
    """`/model/parse` throughput of `model` served by a bare `rasa run --enable-api` (NLU only)."""
    port, token = free_port(), secret(RASA_API_TOKEN)
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        command = [str(Path(sys.executable).parent / "rasa"), "run", "--enable-api", "--auth-token", token,
                   "--interface", "127.0.0.1", "--port", str(port), "--model", str(model)]
        process = spawner(server_environment(), Path(tmp))("parse", command)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(f"{url}/status?token={token}", process, 300.0)
            return asyncio.run(_parse_load(url, token, list(texts), clients, count))
        finally:
            process.terminate()
            process.wait(timeout=30)


def parse_throughput_ratio(model: Path, default_model: Path, texts: Sequence[str]) -> Dict[str, Any]:
    """This pipeline's NLU-only throughput over Rasa's default pipeline's, served the same way."""
    ours = parse_throughput(model, texts)
    default = parse_throughput(default_model, texts)
    ratio = ours["throughput_msg_s"] / default["throughput_msg_s"] if default["throughput_msg_s"] else None
    return {"ratio": None if ratio is None else round(ratio, 3), "assistant": ours, "rasa_default": default}
