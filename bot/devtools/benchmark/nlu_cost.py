"""What the semantic warning-sign layer adds to one NLU parse (issue 14: p95 may rise by at most
10 ms). The trained model is loaded in this process and parses each text once after a warm-up;
the SemanticSignRecognizer's own time is measured inside each parse, so the same parses give the
time with the layer and without it (parse minus the layer): no second model, no second run.
Texts: the dev set's questions (what the benchmark sends), and those plus the escalation stress
set's messages (long and multi-sentence: the ones the layer encodes again)."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence
from unittest import mock

import yaml
from rasa.core.agent import Agent
from rasa.utils.log_utils import configure_structlog

from bot import paths
from bot.components.semantic_sign_recognizer import SemanticSignRecognizer
from bot.devtools.benchmark.stats import latency_summary
from bot.devtools.evaluation import load_dev_set

STRESS_SET = paths.TESTS_DIR / "escalation_stress_set.yml"
WARMUP = 10


def dev_set_questions() -> List[str]:
    return [q.text.strip() for q in load_dev_set()]


def stress_messages() -> List[str]:
    return [case["text"] for case in yaml.safe_load(STRESS_SET.read_text(encoding="utf-8"))["cases"]]


def semantic_layer_costs(model: Path = paths.RASA_MODEL) -> Dict[str, Any]:
    """The cost on the questions the benchmark sends (the dev set) and on those plus the stress
    set's messages (long and multi-sentence by design: the layer's worst case)."""
    questions = dev_set_questions()
    return {"dev_set_questions": semantic_layer_cost(model, questions),
            "with_stress_messages": semantic_layer_cost(model, questions + stress_messages())}


def semantic_layer_cost(model: Path = paths.RASA_MODEL, texts: Sequence[str] = ()) -> Dict[str, Any]:
    """p50/p95 of the whole parse, of the layer alone and of the parse without it (ms)."""
    texts = list(texts) or dev_set_questions()
    configure_structlog(logging.WARNING)
    loop = asyncio.new_event_loop()
    layer_s: List[float] = []
    original = SemanticSignRecognizer.process

    def timed_process(self: SemanticSignRecognizer, messages: List[Any]) -> List[Any]:
        start = time.perf_counter()
        try:
            return original(self, messages)
        finally:
            layer_s.append(time.perf_counter() - start)

    parse_ms, layer_ms = [], []
    # patched before the model loads: Rasa's graph nodes keep the method they found at load time
    with mock.patch.object(SemanticSignRecognizer, "process", timed_process):
        agent = Agent.load(str(model))
        for text in texts[:WARMUP]:
            loop.run_until_complete(agent.parse_message(text))
        for text in texts:
            layer_s.clear()
            start = time.perf_counter()
            loop.run_until_complete(agent.parse_message(text))
            parse_ms.append((time.perf_counter() - start) * 1000)
            layer_ms.append(sum(layer_s) * 1000)
    loop.close()
    without = [total - layer for total, layer in zip(parse_ms, layer_ms)]
    with_layer, without_layer = latency_summary(parse_ms), latency_summary(without)
    return {
        "texts": len(texts),
        "nlu_parse_ms": with_layer,
        "nlu_parse_without_semantic_layer_ms": without_layer,
        "semantic_layer_ms": latency_summary(layer_ms),
        "p95_rise_ms": round(with_layer["p95"] - without_layer["p95"], 1),
    }
