"""Benchmark harness (`make bench`, `python -m bot.cli bench [--skip-train]`).

Measures, against the real stack started here on free ports with a temporary tracker database:

- `retrieval_accuracy`: dev-set top-1 (article questions) of the assistant through REST and of
  three baselines: BM25 over the article's passages, nearest passage by the shipped embedding
  model, and Rasa's default pipeline trained on the same NLU data;
- `latency_ms`: single-user REST round trips (p50, p95) after a warm-up;
- `throughput_msg_s` with 8 and 32 concurrent conversations, and `errors`;
- `train_s`: a full `rasa train --force` into a temporary directory; `rss_mb` of both servers.

Writes `reports/bench.json` and `reports/latency.png` and prints a Markdown table.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bot.stack import ROOT, RASA_MODEL, Stack, _environment, running_stack

REPORTS = ROOT / "reports"
BASELINES = ROOT / "models" / "baselines"
CONCURRENCY = (8, 32)
REQUIRED_KEYS = ("retrieval_accuracy", "latency_ms", "throughput_msg_s", "errors", "train_s", "rss_mb")
METHODS = ("assistant", "bm25", "embedding_knn", "rasa_default")
TARGET_P95_MS = 250.0
TARGET_THROUGHPUT_8 = 20.0
REQUEST_TIMEOUT_S = 60.0
# One simulated visitor asks this many questions before a new sender id starts (single-user runs).
CONVERSATION_LENGTH = 10

# Rasa 3.6's `rasa init` config: no pipeline, so Rasa fills in its default pipeline
# (rasa/engine/recipes/config_files/default_config.yml: WhitespaceTokenizer, RegexFeaturizer,
# LexicalSyntacticFeaturizer, CountVectorsFeaturizer, CountVectorsFeaturizer char_wb 1-4,
# DIETClassifier 100 epochs, EntitySynonymMapper, ResponseSelector 100 epochs,
# FallbackClassifier 0.3). Only the language is the project's.
RASA_DEFAULT_CONFIG = """\
recipe: default.v1
assistant_id: rasa-default-baseline
language: nl
pipeline:
policies:
"""


# --- pure helpers ---------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(milliseconds: Sequence[float]) -> Dict[str, Optional[float]]:
    if not milliseconds:
        return {"p50": None, "p95": None, "mean": None, "max": None, "n": 0}
    return {
        "p50": round(percentile(milliseconds, 50), 1),
        "p95": round(percentile(milliseconds, 95), 1),
        "mean": round(sum(milliseconds) / len(milliseconds), 1),
        "max": round(max(milliseconds), 1),
        "n": len(milliseconds),
    }


def reply_is_empty(body: Any) -> bool:
    """A REST reply with no message that carries anything (text, buttons, image, custom)."""
    if not isinstance(body, list):
        return True
    return not any(
        isinstance(message, dict) and any(message.get(key) for key in ("text", "buttons", "image", "custom", "attachment"))
        for message in body
    )


def hash_inputs(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


# --- baselines --------------------------------------------------------------------------------

def dutch_tokens(text: str) -> List[str]:
    """Lower-cased lookup lemmas of the project's Dutch spaCy pipeline, without punctuation,
    spaces and stop words (the usual preprocessing for BM25)."""
    from bot.nlp import load_dutch_pipeline

    nlp = load_dutch_pipeline()
    tokens = [
        (token.lemma_ or token.text).lower()
        for token in nlp(text)
        if not (token.is_punct or token.is_space or token.is_stop)
    ]
    return tokens or [token.text.lower() for token in nlp(text) if not token.is_space]


def baseline_passages(kb) -> List[Any]:
    """The knowledge base's passages, plus one passage each for the items without paragraphs
    (the article's metadata and its sources): the text the assistant answers them with, so
    that every item is reachable by the retrieval baselines."""
    from actions.knowledge import metadata_values
    from actions.replies import reply
    from bot.knowledge_base import Passage

    passages = list(kb.passages())
    for item in kb.items:
        if item.paragraphs:
            continue
        if item.kind == "about":
            text = reply("article_about", citation=item.citation, **metadata_values(kb))
        elif item.kind == "sources":
            sources = "\n".join(f"{source.number}. {source.text}" for source in kb.sources)
            text = reply("article_sources", sources=sources, citation=item.citation)
        else:
            continue
        text = "\n".join(line for line in text.splitlines() if not line.startswith("Bron: "))
        passages.append(Passage(item.id, 0, text))
    return passages


class BM25Retriever:
    """BM25 (Okapi, rank_bm25) over passages; predicts the item of the best passage."""

    def __init__(self, passages: Sequence[Any], tokenize: Callable[[str], List[str]] = dutch_tokens) -> None:
        from rank_bm25 import BM25Okapi

        self.passages = list(passages)
        self.tokenize = tokenize
        self.bm25 = BM25Okapi([tokenize(p.text) for p in self.passages])

    def rank(self, text: str) -> List[Tuple[Any, float]]:
        scores = self.bm25.get_scores(self.tokenize(text))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [(self.passages[i], float(scores[i])) for i in order]

    def predict(self, text: str) -> Optional[str]:
        ranking = self.rank(text)
        return ranking[0][0].item_id if ranking else None


def embedding_knn_predictor(kb, texts: Sequence[str] = ()) -> Callable[[str], Optional[str]]:
    """Nearest passage by the shipped embedding model (the one config.yml names), no training.
    `texts` known in advance are encoded in one batch."""
    import yaml
    import numpy as np

    from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL, encode_passages, encode_queries, load_sentence_transformer
    from bot.knowledge_base.search import PassageIndex, knowledge_base_fingerprint

    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    name = next(
        (c.get("model") for c in config["pipeline"] if c["name"].endswith("SentenceEmbeddingFeaturizer")),
        DEFAULT_EMBEDDING_MODEL,
    )
    model = load_sentence_transformer(name)
    passages = baseline_passages(kb)
    index = PassageIndex(passages, np.asarray(encode_passages(model, [p.text for p in passages])), knowledge_base_fingerprint(kb))

    known = dict(zip(texts, encode_queries(model, list(texts)))) if texts else {}

    def predict(text: str) -> Optional[str]:
        vector = known[text] if text in known else encode_queries(model, [text])[0]
        hits = index.search(vector, top_k=1)
        return hits[0].item_id if hits else None

    return predict


def intent_to_item(kb, intent: Optional[str]) -> Optional[str]:
    """The item the assistant would cite for a predicted intent: article intents are item ids;
    anything else (conversation intents, nlu_fallback) cites nothing."""
    return intent if intent and kb.item(intent) else None


def _run_with_progress(command: List[str], cwd: Path, log: Path, description: str) -> float:
    """Run a command (output to `log`) with an elapsed-time progress bar; its wall time in s."""
    from tqdm import tqdm

    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as output, tqdm(desc=description, unit="s", bar_format="{desc}: {elapsed} elapsed") as bar:
        process = subprocess.Popen(command, cwd=cwd, env=_environment(), stdout=output, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                time.sleep(1)
                bar.update(1)
        except BaseException:
            process.terminate()
            process.wait()
            raise
    elapsed = time.monotonic() - start
    if process.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({process.returncode}); see {log}")
    return elapsed


def rasa_default_model() -> Path:
    """Rasa's default pipeline trained with `rasa train nlu` on data/nlu/*.yml, cached under
    models/baselines/ by a hash of its inputs (config, training data, Rasa version)."""
    import rasa

    nlu_files = sorted((ROOT / "data" / "nlu").glob("*.yml"))
    key = hash_inputs(
        RASA_DEFAULT_CONFIG.encode(), rasa.__version__.encode(),
        *(f.name.encode() + b"\0" + f.read_bytes() for f in nlu_files),
    )
    target = BASELINES / f"rasa_default-{key}.tar.gz"
    if target.exists():
        return target
    BASELINES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasa-default-") as tmp:
        work = Path(tmp)
        config = work / "config.yml"
        config.write_text(RASA_DEFAULT_CONFIG, encoding="utf-8")
        data = work / "nlu"
        data.mkdir()
        for f in nlu_files:
            shutil.copy(f, data / f.name)
        command = [
            str(Path(sys.executable).parent / "rasa"), "train", "nlu", "--config", str(config),
            "--nlu", str(data), "--out", str(work / "out"), "--fixed-model-name", "rasa_default",
        ]
        _run_with_progress(command, work, REPORTS / "rasa_default_train.log", "train rasa_default")
        shutil.move(str(work / "out" / "rasa_default.tar.gz"), target)
        # Rasa writes the pipeline it filled in into the config file as comments: keep it.
        shutil.copy(config, target.with_name(f"rasa_default-{key}.config.yml"))
    return target


def rasa_default_predictor(kb, model_path: Path) -> Callable[[str], Optional[str]]:
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # else every parse is logged to stdout
    loop = asyncio.new_event_loop()
    agent = Agent.load(str(model_path))

    def predict(text: str) -> Optional[str]:
        result = loop.run_until_complete(agent.parse_message(text))
        return intent_to_item(kb, (result.get("intent") or {}).get("name"))

    return predict


def accuracy_entry(score, rejects: bool) -> Dict[str, Any]:
    """Article top-1 always; the 'other' questions (must cite nothing) only for methods that can
    decline to cite (the retrieval baselines always cite a passage)."""
    return {
        "article_accuracy": round(score.article_accuracy, 4),
        "article": [score.article_correct, score.article_total],
        "other_accuracy": round(score.other_accuracy, 4) if rejects else None,
        "other": [score.other_correct, score.other_total] if rejects else None,
    }


def score_offline(kb, questions, predict: Callable[[str], Optional[str]], description: str, rejects: bool):
    from tqdm import tqdm

    from bot.evaluation import score_dev_set

    bar = tqdm(total=len(questions), desc=description, unit="q", leave=False)

    def predict_with_progress(text: str) -> Optional[str]:
        bar.update(1)
        return predict(text)

    try:
        return accuracy_entry(score_dev_set(kb, questions, predict_with_progress), rejects)
    finally:
        bar.close()


# --- the stack through REST -------------------------------------------------------------------

@dataclass
class Exchange:
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


async def send(session, url: str, sender: str, text: str) -> Exchange:
    import aiohttp

    start = time.perf_counter()
    try:
        async with session.post(url, json={"sender": sender, "message": text}) as response:
            body = await response.json(content_type=None) if response.status == 200 else await response.text()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
        return Exchange(False, (time.perf_counter() - start) * 1000, repr(error))
    ms = (time.perf_counter() - start) * 1000
    return Exchange(status == 200 and not reply_is_empty(body), ms, body, status)


def _session():
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), connector=aiohttp.TCPConnector(limit=0))


def _sender(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


async def assistant_predictions(url: str, texts: Sequence[str]) -> List[List[str]]:
    """The reply texts of each question, each asked by a new visitor (as tests/test_dev_set.py)."""
    from tqdm import tqdm

    replies = []
    async with _session() as session:
        for text in tqdm(texts, desc="assistant dev set", unit="q", leave=False):
            exchange = await send(session, url, _sender("dev"), text)
            body = exchange.body if isinstance(exchange.body, list) else []
            replies.append([m.get("text") or "" for m in body if isinstance(m, dict)])
    return replies


async def single_user(url: str, texts: Sequence[str], count: int, warmup: int) -> Tuple[List[float], Dict[str, int]]:
    """Sequential messages of one visitor at a time (a new sender every CONVERSATION_LENGTH)."""
    from tqdm import tqdm

    latencies: List[float] = []
    errors: Dict[str, int] = {}
    async with _session() as session:
        sender = _sender("warmup")
        for text in islice(cycle(texts), warmup):
            await send(session, url, sender, text)
        messages = list(islice(cycle(texts), count))
        for number, text in enumerate(tqdm(messages, desc="single-user latency", unit="msg", leave=False)):
            if number % CONVERSATION_LENGTH == 0:
                sender = _sender("single")
            exchange = await send(session, url, sender, text)
            latencies.append(exchange.ms)
            if exchange.error:
                errors[exchange.error] = errors.get(exchange.error, 0) + 1
    return latencies, errors


async def concurrent(url: str, texts: Sequence[str], conversations: int, per_conversation: int) -> Dict[str, Any]:
    """`conversations` visitors at once, each sending its messages one after the other."""
    from tqdm import tqdm

    latencies: List[float] = []
    errors: Dict[str, int] = {}
    bar = tqdm(total=conversations * per_conversation, desc=f"{conversations} conversations", unit="msg", leave=False)

    async def visitor(number: int, session) -> None:
        sender = _sender(f"c{conversations}-{number}")
        start = (number * 7) % len(texts)  # each visitor starts elsewhere in the dev set
        for text in islice(cycle(texts[start:] + texts[:start]), per_conversation):
            exchange = await send(session, url, sender, text)
            latencies.append(exchange.ms)
            if exchange.error:
                errors[exchange.error] = errors.get(exchange.error, 0) + 1
            bar.update(1)

    async with _session() as session:
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


def _children(pid: int) -> List[int]:
    found, frontier = [], [pid]
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


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of a process and its descendants in MB (psutil if present, else /proc)."""
    try:
        import psutil  # not a dependency; used when installed

        process = psutil.Process(pid)
        total = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
        return round(total / 2**20, 1)
    except ImportError:
        pass
    except Exception:
        return None
    total_kb = 0
    for member in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1) if total_kb else None


def stack_rss(stack: Stack) -> Dict[str, Optional[float]]:
    actions, rasa_server = stack.processes[0], stack.processes[1]
    result = {"rasa": rss_mb(rasa_server.pid), "actions": rss_mb(actions.pid)}
    result["total"] = round(sum(v for v in result.values() if v), 1)
    return result


async def profile_messages(stack: Stack, texts: Sequence[str], count: int = 60) -> Dict[str, Any]:
    """Where one message's time goes: the REST round trip, /model/parse (NLU alone) of the same
    text, and the action server's webhook for the custom action that turn ran (replayed with
    the tracker as it was before that action). The rest is Rasa Core: policies, the tracker
    store (SQLite), the channel."""
    import rasa
    from tqdm import tqdm

    rest, parse, action, rest_minus = [], [], [], []
    by_action: Dict[str, List[float]] = {}
    async with _session() as session:
        async with session.get(f"{stack.url}/domain", headers={"Accept": "application/json"}) as response:
            domain = await response.json()
        custom = {a for a in domain.get("actions", []) if not a.startswith("utter_")}
        sender = _sender("profile")
        for number, text in enumerate(tqdm(list(islice(cycle(texts), count)), desc="profile", unit="msg", leave=False)):
            if number % CONVERSATION_LENGTH == 0:
                sender = _sender("profile")
            exchange = await send(session, stack.rest_url, sender, text)
            start = time.perf_counter()
            async with session.post(f"{stack.url}/model/parse", json={"text": text}) as response:
                await response.read()
            parse_ms = (time.perf_counter() - start) * 1000
            async with session.get(f"{stack.url}/conversations/{sender}/tracker", params={"include_events": "ALL"}) as response:
                tracker = await response.json()
            events = tracker.get("events", [])
            last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
            ran = [i for i, e in enumerate(events) if i > last_user and e.get("event") == "action" and e.get("name") in custom]
            action_ms = 0.0
            for index in ran:
                payload = {
                    "next_action": events[index]["name"], "sender_id": sender,
                    "tracker": {**tracker, "events": events[:index]}, "domain": domain, "version": rasa.__version__,
                }
                start = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{stack.actions_port}/webhook", json=payload) as response:
                    await response.read()
                elapsed = (time.perf_counter() - start) * 1000
                by_action.setdefault(events[index]["name"], []).append(elapsed)
                action_ms += elapsed
            rest.append(exchange.ms)
            parse.append(parse_ms)
            action.append(action_ms)
            rest_minus.append(max(exchange.ms - parse_ms - action_ms, 0.0))
    return {
        "messages": count,
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


# --- training, report, plot -----------------------------------------------------------------

def full_train_seconds() -> float:
    """Wall time of `rasa train --force` from the repository root into a temporary --out."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        command = [
            str(Path(sys.executable).parent / "rasa"), "train", "--force", "--out", out,
            "--fixed-model-name", "bench",
        ]
        return _run_with_progress(command, ROOT, REPORTS / "train.log", "rasa train --force")


def evaluate_targets(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    accuracy = report["retrieval_accuracy"]
    baselines = [accuracy[m] for m in METHODS[1:] if accuracy.get(m) is not None]
    p95 = report["latency_ms"].get("p95")
    throughput_8 = report["throughput_msg_s"].get("8")
    errors_8 = report["errors"].get("8")
    return {
        "assistant_beats_every_baseline": {
            "target": "assistant > each baseline", "value": accuracy.get("assistant"),
            "met": accuracy.get("assistant") is not None and all(accuracy["assistant"] > b for b in baselines),
        },
        "single_user_p95_ms": {"target": f"< {TARGET_P95_MS:.0f}", "value": p95, "met": p95 is not None and p95 < TARGET_P95_MS},
        "throughput_8_msg_s": {
            "target": f">= {TARGET_THROUGHPUT_8:.0f}", "value": throughput_8,
            "met": throughput_8 is not None and throughput_8 >= TARGET_THROUGHPUT_8,
        },
        "errors_8": {"target": "0", "value": errors_8, "met": errors_8 == 0},
    }


def build_report(
    accuracy: Dict[str, Dict[str, Any]],
    latency: Dict[str, Any],
    load: Dict[str, Dict[str, Any]],
    single_user_errors: Any,
    train_s: Optional[float],
    rss: Dict[str, Optional[float]],
    **extra: Any,
) -> Dict[str, Any]:
    """The report's JSON; `single_user_errors` is a count or a dict {kind: count}."""
    single_user_kinds = single_user_errors if isinstance(single_user_errors, dict) else {}
    single_user_count = sum(single_user_kinds.values()) if isinstance(single_user_errors, dict) else single_user_errors
    report: Dict[str, Any] = {
        "retrieval_accuracy": {m: (accuracy[m]["article_accuracy"] if m in accuracy else None) for m in METHODS},
        "retrieval_detail": accuracy,
        "latency_ms": latency,
        "throughput_msg_s": {str(c): load[str(c)]["throughput_msg_s"] for c in load},
        "concurrent_latency_ms": {str(c): load[str(c)]["latency_ms"] for c in load},
        "errors": {**{str(c): load[str(c)]["errors"] for c in load}, "single_user": single_user_count},
        "error_kinds": {**{str(c): load[str(c)].get("error_kinds", {}) for c in load}, "single_user": single_user_kinds},
        "train_s": None if train_s is None else round(train_s, 1),
        "rss_mb": rss,
    }
    report.update(extra)
    report["targets"] = evaluate_targets(report)
    return report


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{value:.1%}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(report: Dict[str, Any]) -> str:
    detail = report["retrieval_detail"]
    lines = [
        "| dev set (top-1) | " + " | ".join(METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    for label, key, pair in (("article questions", "article_accuracy", "article"), ("other questions (cite nothing)", "other_accuracy", "other")):
        cells = []
        for method in METHODS:
            entry = detail.get(method) or {}
            value = entry.get(key)
            cells.append("–" if value is None else f"{value:.1%} ({entry[pair][0]}/{entry[pair][1]})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| measure | value | target | met |", "|---|---|---|---|"]
    latency = report["latency_ms"]
    lines.append(f"| single-user latency p50 (ms) | {_fmt(latency.get('p50'))} | | |")
    targets = report["targets"]
    for name, row in targets.items():
        value = _fmt(row["value"], percent=name == "assistant_beats_every_baseline")
        lines.append(f"| {name} | {value} | {row['target']} | {'yes' if row['met'] else 'no'} |")
    for concurrency, value in report["throughput_msg_s"].items():
        if concurrency != "8":
            lines.append(f"| throughput_{concurrency}_msg_s | {_fmt(value)} | | |")
    for concurrency, summary in report.get("concurrent_latency_ms", {}).items():
        lines.append(f"| latency p50 / p95 at {concurrency} conversations (ms) | {_fmt(summary['p50'])} / {_fmt(summary['p95'])} | | |")
    for key, value in report["errors"].items():
        if key != "8":
            lines.append(f"| errors_{key} | {value} | | |")
    kinds = {key: value for key, value in report.get("error_kinds", {}).items() if value}
    if kinds:
        summary = "; ".join(f"{key}: " + ", ".join(f"{n}× {kind}" for kind, n in value.items()) for key, value in kinds.items())
        lines.append(f"| error kinds | {summary} | | |")
    train_note = report.get("train_note")
    lines.append(f"| train_s (rasa train --force) | {_fmt(report['train_s'])}{' (' + train_note + ')' if train_note else ''} | | |")
    rss = report["rss_mb"]
    lines.append(f"| rss_mb rasa / actions / total | {_fmt(rss.get('rasa'))} / {_fmt(rss.get('actions'))} / {_fmt(rss.get('total'))} | | |")
    profile = report.get("profile")
    if profile:
        lines += ["", "| profile (p50 ms, one message) | value |", "|---|---|"]
        for key in ("rest_round_trip_ms", "model_parse_ms", "action_webhook_ms", "core_and_rest_ms"):
            lines.append(f"| {key} | {_fmt(profile[key]['p50'])} (p95 {_fmt(profile[key]['p95'])}) |")
        lines.append(f"| serial_capacity_msg_s (1000 / p50 round trip) | {_fmt(profile.get('serial_capacity_msg_s'))} |")
    return "\n".join(lines)


def plot_latency(single: Sequence[float], concurrent_runs: Dict[str, Sequence[float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.hist(single, bins=40, color="#4477aa")
    for q, style in ((50, "-"), (95, "--")):
        value = percentile(single, q)
        left.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.0f} ms")
    left.set(title=f"single user ({len(single)} messages)", xlabel="REST round trip (ms)", ylabel="messages")
    left.legend()
    labels = ["1", *concurrent_runs]
    right.boxplot([list(single), *concurrent_runs.values()], labels=labels, showfliers=True)
    right.set(title="by concurrent conversations", xlabel="conversations", ylabel="REST round trip (ms)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# --- the whole run ----------------------------------------------------------------------------

def wait_for_quiet_machine(max_load: float, timeout_s: float = 900.0) -> float:
    """Wait until the 1-minute load average is below `max_load` (other work inflates latency)."""
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"waiting for a quieter machine: load {os.getloadavg()[0]:.2f} >= {max_load}", file=sys.stderr)
        time.sleep(30)
    return os.getloadavg()[0]


def run_benchmark(
    skip_train: bool = False,
    messages: int = 240,
    warmup: int = 20,
    profile: Optional[bool] = None,
    quiet_load: Optional[float] = None,
) -> Dict[str, Any]:
    """Everything `make bench` measures; writes reports/bench.json and reports/latency.png."""
    for key, value in _environment().items():
        os.environ.setdefault(key, value)
    os.chdir(ROOT)
    if not RASA_MODEL.exists():
        raise SystemExit(f"{RASA_MODEL} is missing: run `make train`")
    from bot.evaluation import answered_item, load_dev_set, score_dev_set
    from bot.knowledge_base import load_knowledge_base

    REPORTS.mkdir(exist_ok=True)
    kb = load_knowledge_base()
    questions = load_dev_set()
    texts = [q.text.strip() for q in questions]
    accuracy: Dict[str, Dict[str, Any]] = {}
    steps: Dict[str, float] = {}
    clock = time.monotonic()

    def step(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        steps[name] = round(now - clock, 1)
        clock = now

    print("baselines: bm25, embedding_knn, rasa_default", file=sys.stderr)
    accuracy["bm25"] = score_offline(kb, questions, BM25Retriever(baseline_passages(kb)).predict, "bm25", rejects=False)
    step("bm25")
    accuracy["embedding_knn"] = score_offline(kb, questions, embedding_knn_predictor(kb, texts), "embedding_knn", rejects=False)
    step("embedding_knn")
    baseline_model = rasa_default_model()
    accuracy["rasa_default"] = score_offline(kb, questions, rasa_default_predictor(kb, baseline_model), "rasa_default", rejects=True)
    step("rasa_default")

    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        work = Path(tmp)
        print("starting the stack", file=sys.stderr)
        with running_stack(work_dir=work, tracker_db=work / "conversations.db", log_dir=REPORTS) as stack:
            step("stack_start")
            replies = asyncio.run(assistant_predictions(stack.rest_url, texts))
            by_text = dict(zip(texts, replies))
            score = score_dev_set(kb, questions, lambda text: answered_item(kb, by_text[text.strip()]))
            accuracy["assistant"] = {**accuracy_entry(score, rejects=True), "misses": score.errors}
            step("assistant_dev_set")

            if quiet_load is not None:
                wait_for_quiet_machine(quiet_load)
                step("wait_for_quiet")
            load_before = os.getloadavg()
            if load_before[0] > 1.0:
                print(f"warning: load average {load_before[0]:.2f} on {os.cpu_count()} CPUs before the load runs: "
                      "other work inflates the latency figures", file=sys.stderr)
            single, single_errors = asyncio.run(single_user(stack.rest_url, texts, messages, warmup))
            step("single_user")
            load = {}
            for conversations in CONCURRENCY:
                per_conversation = max(10, math.ceil(messages / conversations))
                load[str(conversations)] = asyncio.run(concurrent(stack.rest_url, texts, conversations, per_conversation))
                step(f"concurrent_{conversations}")
            load_after = os.getloadavg()
            rss = stack_rss(stack)
            latency = {**latency_summary(single), "warmup": warmup}
            preliminary = build_report(accuracy, latency, load, single_errors, None, rss)
            missed = not all(row["met"] for key, row in preliminary["targets"].items() if key != "assistant_beats_every_baseline")
            profile_result = None
            if profile or (profile is None and missed):
                profile_result = asyncio.run(profile_messages(stack, texts))
                step("profile")

    train_s, train_note = None, None
    if skip_train:
        train_note = "skipped (--skip-train)"
    else:
        train_s = full_train_seconds()
        step("train")

    plot = plot_latency(single, {c: load[c]["latencies"] for c in load}, REPORTS / "latency.png")
    report = build_report(
        accuracy, latency, load, single_errors, train_s, rss,
        train_note=train_note,
        profile=profile_result,
        rasa_default_model=str(baseline_model.relative_to(ROOT)),
        machine={
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_before_latency": [round(x, 2) for x in load_before],
            "load_avg_after_throughput": [round(x, 2) for x in load_after],
        },
        method={
            "dev_set": "tests/nlu_dev_set.yml", "article_questions": score.article_total, "other_questions": score.other_total,
            "single_user_messages": messages, "conversation_length": CONVERSATION_LENGTH,
            "concurrent_messages": {c: load[c]["messages"] for c in load},
        },
        step_s=steps,
        plot=str(plot.relative_to(ROOT)),
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    (REPORTS / "bench.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(markdown_table(report))
    print(f"\nwritten: reports/bench.json, {report['plot']}", file=sys.stderr)
    return report
