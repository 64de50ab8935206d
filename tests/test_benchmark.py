"""The benchmark's pure parts (no stack, no training): percentiles, BM25, the report's shape."""
from __future__ import annotations

import pytest

from bot.devtools.benchmark.baselines import BM25Retriever, baseline_passages, dutch_tokens, intent_to_item
from bot.devtools.benchmark.load import reply_is_empty
from bot.devtools.benchmark.report import REQUIRED_KEYS, build_report, markdown_table
from bot.devtools.benchmark.stats import latency_summary, percentile
from bot.knowledge_base import load_knowledge_base


def test_percentile_interpolates_between_ranks():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile(list(range(1, 101)), 50) == pytest.approx(50.5)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary():
    summary = latency_summary([10.0, 20.0, 30.0, 40.0])
    assert summary["p50"] == 25.0 and summary["max"] == 40.0 and summary["n"] == 4
    assert latency_summary([])["p95"] is None


def test_empty_replies_are_errors():
    assert reply_is_empty([])
    assert reply_is_empty(None)
    assert reply_is_empty([{"recipient_id": "x", "text": ""}])
    assert not reply_is_empty([{"recipient_id": "x", "text": "Hoi!"}])
    assert not reply_is_empty([{"recipient_id": "x", "buttons": [{"title": "a", "payload": "/a"}]}])


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


@pytest.fixture(scope="module")
def bm25(kb):
    return BM25Retriever(baseline_passages(kb))


def test_tokens_are_dutch_lemmas_without_stop_words():
    tokens = dutch_tokens("Welke oefeningen zijn goed voor de rugspieren?")
    assert "oefening" in tokens and "rugspier" in tokens
    assert "de" not in tokens and "?" not in tokens


def test_bm25_finds_the_passage_a_question_quotes(kb, bm25):
    for item_id in ("section_acute_vs_chronic", "faq_best_exercises", "section_therapies"):
        passage = next(p for p in baseline_passages(kb) if p.item_id == item_id)
        literal_question = " ".join(passage.text.split()[:25])
        assert bm25.predict(literal_question) == item_id
    assert bm25.rank("wat is acute rugpijn")[0][1] > 0


def test_every_item_is_reachable_by_the_baselines(kb):
    assert {p.item_id for p in baseline_passages(kb)} == set(kb.item_ids)


def test_intent_maps_to_the_cited_item(kb):
    assert intent_to_item(kb, "faq_best_exercises") == "faq_best_exercises"
    assert intent_to_item(kb, "greet") is None
    assert intent_to_item(kb, "nlu_fallback") is None
    assert intent_to_item(kb, None) is None


def test_report_has_the_required_keys_and_renders():
    entry = {"article_accuracy": 0.9, "article": [9, 10], "other_accuracy": 1.0, "other": [2, 2]}
    baseline = {"article_accuracy": 0.5, "article": [5, 10], "other_accuracy": None, "other": None}
    load = {
        "8": {"throughput_msg_s": 25.0, "errors": 0, "latency_ms": latency_summary([100.0, 200.0])},
        "32": {"throughput_msg_s": 24.0, "errors": 1, "latency_ms": latency_summary([300.0, 900.0])},
    }
    report = build_report(
        {"assistant": entry, "bm25": baseline, "embedding_knn": baseline, "rasa_default": entry | {"article_accuracy": 0.8}},
        latency_summary([50.0, 60.0, 300.0]), load, 0, None, {"rasa": 900.0, "actions": 200.0, "total": 1100.0},
        train_note="skipped",
    )
    for key in REQUIRED_KEYS:
        assert key in report
    assert set(report["latency_ms"]) >= {"p50", "p95"}
    assert report["throughput_msg_s"] == {"8": 25.0, "32": 24.0}
    assert report["errors"] == {"8": 0, "32": 1, "single_user": 0}
    assert report["targets"]["assistant_beats_every_baseline"]["met"]
    assert not report["targets"]["single_user_p95_ms"]["met"]
    assert report["targets"]["throughput_8_msg_s"]["met"] and report["targets"]["errors_8"]["met"]
    table = markdown_table(report)
    assert "| article questions | 90.0% (9/10)" in table
    assert "train_s" in table and "skipped" in table


def test_report_with_the_cluster_has_its_targets_and_rows():
    entry = {"article_accuracy": 0.9, "article": [9, 10]}
    load = {"8": {"throughput_msg_s": 25.0, "errors": 0, "latency_ms": latency_summary([100.0, 200.0])}}
    cluster = {
        "cluster_throughput_msg_s": {"8": 41.5, "32": 43.0},
        "cluster_errors": {"8": 0, "32": 2},
        "cluster_latency_ms": {"8": latency_summary([150.0, 250.0]), "32": latency_summary([600.0, 900.0])},
        "cluster_rss_mb": {"rasa-0": 1200.0, "rasa-1": 1190.0},
        "parse_throughput_ratio_vs_rasa_default": 0.5,
        "parse_throughput": {"ratio": 0.5, "assistant": {"throughput_msg_s": 30.0}, "rasa_default": {"throughput_msg_s": 60.0}},
    }
    report = build_report({"assistant": entry}, latency_summary([50.0]), load, 0, None, {"total": 1.0}, **cluster)
    assert report["targets"]["cluster_throughput_8_msg_s"] == {"target": ">= 40", "value": 41.5, "met": True}
    assert report["targets"]["cluster_errors_8"]["met"]
    table = markdown_table(report)
    assert "| cluster_throughput_32_msg_s (errors) | 43 (2) |" in table
    assert "30 / 60 = 0.5" in table
    slow = build_report({"assistant": entry}, latency_summary([50.0]), load, 0, None, {"total": 1.0},
                        **{**cluster, "cluster_throughput_msg_s": {"8": 30.0}})
    assert not slow["targets"]["cluster_throughput_8_msg_s"]["met"]
    without = build_report({"assistant": entry}, latency_summary([50.0]), load, 0, None, {"total": 1.0})
    assert "cluster_throughput_8_msg_s" not in without["targets"]
