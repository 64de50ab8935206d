"""The whole benchmark run (`make bench`): baselines, the stack's accuracy, latency, load, memory,
an optional profile and the full retraining; writes reports/bench.json and reports/latency.png."""
from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bot import paths
from bot.devtools.benchmark.baselines import (
    BM25Retriever,
    accuracy_entry,
    baseline_passages,
    embedding_knn_predictor,
    rasa_default_model,
    rasa_default_predictor,
    score_offline,
)
from bot.devtools.benchmark.nlu_cost import semantic_layer_costs
from bot.devtools.benchmark.load import CONCURRENCY, CONVERSATION_LENGTH, assistant_predictions, concurrent, single_user
from bot.devtools.benchmark.profile import profile_messages, stack_rss
from bot.devtools.benchmark.report import build_report, load_targets_missed, markdown_table, plot_latency
from bot.devtools.benchmark.stats import latency_summary
from bot.devtools.benchmark.topology import measure_cluster, parse_throughput_ratio
from bot.devtools.benchmark.training import full_train_seconds
from bot.devtools.evaluation import DEV_SET, DevQuestion, DevSetScore, load_dev_set, score_dev_set
from bot.knowledge_base import KnowledgeBase, load_knowledge_base
from bot.stack import Stack, running_stack, server_environment

BENCH_JSON = paths.REPORTS_DIR / "bench.json"
LATENCY_PLOT = paths.REPORTS_DIR / "latency.png"
BUSY_LOAD = 1.0  # a 1-minute load average above this before the load runs gets a warning


class StepTimer:
    """The wall time of each step of the run (s), each from the end of the previous one."""

    def __init__(self) -> None:
        self.steps: Dict[str, float] = {}
        self._last = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.steps[name] = round(now - self._last, 1)
        self._last = now


@dataclass
class StackRun:
    """What was measured against the running stack."""

    score: DevSetScore
    single: List[float] = field(default_factory=list)
    single_errors: Dict[str, int] = field(default_factory=dict)
    load: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    rss: Dict[str, Optional[float]] = field(default_factory=dict)
    load_before: Tuple[float, ...] = ()
    load_after: Tuple[float, ...] = ()
    profile: Optional[Dict[str, Any]] = None


def wait_for_quiet_machine(max_load: float, timeout_s: float = 900.0) -> float:
    """Wait until the 1-minute load average is below `max_load` (other work inflates latency)."""
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"waiting for a quieter machine: load {os.getloadavg()[0]:.2f} >= {max_load}", file=sys.stderr)
        time.sleep(30)
    return os.getloadavg()[0]


def warn_if_busy(load_average: Tuple[float, ...]) -> None:
    if load_average[0] > BUSY_LOAD:
        print(f"warning: load average {load_average[0]:.2f} on {os.cpu_count()} CPUs before the load runs: "
              "other work inflates the latency figures", file=sys.stderr)


def score_baselines(
    kb: KnowledgeBase, questions: Sequence[DevQuestion], step: StepTimer
) -> Tuple[Dict[str, Dict[str, Any]], Path]:
    """The three baselines' accuracy entries, and the Rasa default model they used."""
    print("baselines: bm25, embedding_knn, rasa_default", file=sys.stderr)
    texts = [q.text.strip() for q in questions]
    bm25 = BM25Retriever(baseline_passages(kb)).predict
    accuracy = {"bm25": score_offline(kb, questions, bm25, "bm25", rejects=False)}
    step("bm25")
    knn = embedding_knn_predictor(kb, texts)
    accuracy["embedding_knn"] = score_offline(kb, questions, knn, "embedding_knn", rejects=False)
    step("embedding_knn")
    model = rasa_default_model()
    rasa_default = rasa_default_predictor(kb, model)
    accuracy["rasa_default"] = score_offline(kb, questions, rasa_default, "rasa_default", rejects=True)
    step("rasa_default")
    return accuracy, model


def score_assistant(stack: Stack, kb: KnowledgeBase, questions: Sequence[DevQuestion]) -> DevSetScore:
    """The dev-set score of the running assistant, by the item each answer cites."""
    texts = [q.text.strip() for q in questions]
    by_text = dict(zip(texts, asyncio.run(assistant_predictions(stack, texts))))
    return score_dev_set(kb, questions, lambda text: by_text[text.strip()])


def run_load(stack: Stack, run: StackRun, texts: Sequence[str], messages: int, warmup: int, step: StepTimer) -> None:
    """Single-user latency, then each concurrency, then the servers' memory, into `run`."""
    run.load_before = os.getloadavg()
    warn_if_busy(run.load_before)
    run.single, run.single_errors = asyncio.run(single_user(stack.rest_url, texts, messages, warmup))
    step("single_user")
    for conversations in CONCURRENCY:
        per_conversation = max(10, math.ceil(messages / conversations))
        run.load[str(conversations)] = asyncio.run(concurrent(stack.rest_url, texts, conversations, per_conversation))
        step(f"concurrent_{conversations}")
    run.load_after = os.getloadavg()
    run.rss = stack_rss(stack)


def measure_stack(
    kb: KnowledgeBase, questions: Sequence[DevQuestion], accuracy: Dict[str, Dict[str, Any]], step: StepTimer,
    messages: int, warmup: int, profile: Optional[bool], quiet_load: Optional[float],
) -> StackRun:
    """Start the stack (temporary tracker database) and measure everything that needs it; adds
    the assistant's entry to `accuracy`."""
    texts = [q.text.strip() for q in questions]
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        work = Path(tmp)
        print("starting the stack", file=sys.stderr)
        with running_stack(work_dir=work, tracker_db=work / "conversations.db", log_dir=paths.REPORTS_DIR) as stack:
            step("stack_start")
            run = StackRun(score_assistant(stack, kb, questions))
            accuracy["assistant"] = {**accuracy_entry(run.score, rejects=True), "misses": run.score.errors}
            step("assistant_dev_set")
            if quiet_load is not None:
                wait_for_quiet_machine(quiet_load)
                step("wait_for_quiet")
            run_load(stack, run, texts, messages, warmup, step)
            preliminary = build_report(accuracy, latency_summary(run.single), run.load, run.single_errors, None, run.rss)
            if profile or (profile is None and load_targets_missed(preliminary)):
                run.profile = asyncio.run(profile_messages(stack, texts))
                step("profile")
    return run


def train_seconds(skip_train: bool, step: StepTimer) -> Tuple[Optional[float], Optional[str]]:
    """`train_s` and its note."""
    if skip_train:
        return None, "skipped (--skip-train)"
    train_s = full_train_seconds()
    step("train")
    return train_s, None


def relative(path: Path) -> str:
    return str(path.relative_to(paths.ROOT))


def machine_info(run: StackRun) -> Dict[str, Any]:
    return {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_avg_before_latency": [round(x, 2) for x in run.load_before],
        "load_avg_after_throughput": [round(x, 2) for x in run.load_after],
    }


def method_info(run: StackRun, messages: int) -> Dict[str, Any]:
    return {
        "dev_set": relative(DEV_SET), "article_questions": run.score.article_total, "other_questions": run.score.other_total,
        "single_user_messages": messages, "conversation_length": CONVERSATION_LENGTH,
        "concurrent_messages": {c: run.load[c]["messages"] for c in run.load},
    }


def prepare_environment() -> None:
    """The servers' environment (offline model hubs, quiet TensorFlow) for this process too."""
    for key, value in server_environment().items():
        os.environ.setdefault(key, value)
    if not paths.RASA_MODEL.exists():
        raise SystemExit(f"{paths.RASA_MODEL} is missing: run `make train`")
    paths.REPORTS_DIR.mkdir(exist_ok=True)


def run_benchmark(
    skip_train: bool = False,
    messages: int = 240,
    warmup: int = 20,
    profile: Optional[bool] = None,
    quiet_load: Optional[float] = None,
) -> Dict[str, Any]:
    """Everything `make bench` measures; writes reports/bench.json and reports/latency.png."""
    prepare_environment()
    kb, questions, step = load_knowledge_base(), load_dev_set(), StepTimer()
    accuracy, baseline_model = score_baselines(kb, questions, step)
    run = measure_stack(kb, questions, accuracy, step, messages, warmup, profile, quiet_load)
    texts = [q.text.strip() for q in questions]
    cluster = measure_cluster(texts, messages)
    step("cluster")
    parse_ratio = parse_throughput_ratio(paths.RASA_MODEL, baseline_model, texts)
    step("parse_throughput")
    semantic_layer = semantic_layer_costs()
    step("semantic_layer_cost")
    train_s, train_note = train_seconds(skip_train, step)
    runs = {c: run.load[c]["latencies"] for c in run.load}
    runs.update({f"cluster {c}": cluster["load"][c]["latencies"] for c in cluster["load"]})
    plot = plot_latency(run.single, runs, LATENCY_PLOT)
    report = build_report(
        accuracy, {**latency_summary(run.single), "warmup": warmup}, run.load, run.single_errors, train_s, run.rss,
        train_note=train_note,
        profile=run.profile,
        semantic_layer=semantic_layer,
        cluster_throughput_msg_s={c: cluster["load"][c]["throughput_msg_s"] for c in cluster["load"]},
        cluster_errors={c: cluster["load"][c]["errors"] for c in cluster["load"]},
        cluster_latency_ms={c: cluster["load"][c]["latency_ms"] for c in cluster["load"]},
        cluster_rss_mb=cluster["rss_mb"],
        cluster_replicas=cluster["replicas"],
        parse_throughput_ratio_vs_rasa_default=parse_ratio["ratio"],
        parse_throughput=parse_ratio,
        rasa_default_model=relative(baseline_model),
        machine=machine_info(run),
        method=method_info(run, messages),
        step_s=step.steps,
        plot=relative(plot),
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    BENCH_JSON.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(markdown_table(report))
    print(f"\nwritten: {relative(BENCH_JSON)}, {report['plot']}", file=sys.stderr)
    return report
