"""The benchmark's report: its JSON (reports/bench.json), the targets, the Markdown table and the
latency plot."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from matplotlib.figure import Figure

from bot.devtools.benchmark.stats import percentile

REQUIRED_KEYS = ("retrieval_accuracy", "latency_ms", "throughput_msg_s", "errors", "train_s", "rss_mb")
METHODS = ("assistant", "bm25", "embedding_knn", "rasa_default")
TARGET_P95_MS = 250.0
TARGET_THROUGHPUT_8 = 20.0
TARGET_CLUSTER_THROUGHPUT_8 = 40.0  # the cluster on this 2-core machine (issue 16; goal 50)
ACCURACY_ROWS = (
    ("article questions", "article_accuracy", "article"),
    ("other questions (cite nothing)", "other_accuracy", "other"),
)
PROFILE_ROWS = ("rest_round_trip_ms", "model_parse_ms", "action_webhook_ms", "core_and_rest_ms")


# --- the JSON ---------------------------------------------------------------------------------

def evaluate_targets(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Each target with its value and whether it is met."""
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
        **cluster_targets(report),
    }


def cluster_targets(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The scaled topology's targets (issue 16), when the run measured the cluster."""
    if "cluster_throughput_msg_s" not in report:
        return {}
    throughput = report["cluster_throughput_msg_s"].get("8")
    errors = report["cluster_errors"].get("8")
    return {
        "cluster_throughput_8_msg_s": {
            "target": f">= {TARGET_CLUSTER_THROUGHPUT_8:.0f}", "value": throughput,
            "met": throughput is not None and throughput >= TARGET_CLUSTER_THROUGHPUT_8,
        },
        "cluster_errors_8": {"target": "0", "value": errors, "met": errors == 0},
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


def load_targets_missed(report: Dict[str, Any]) -> bool:
    """Whether a latency, throughput or error target is missed (accuracy aside)."""
    return not all(row["met"] for key, row in report["targets"].items() if key != "assistant_beats_every_baseline")


# --- the Markdown table -----------------------------------------------------------------------

def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{value:.1%}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def accuracy_rows(report: Dict[str, Any]) -> List[str]:
    detail = report["retrieval_detail"]
    lines = ["| dev set (top-1) | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for label, key, pair in ACCURACY_ROWS:
        cells = []
        for method in METHODS:
            entry = detail.get(method) or {}
            value = entry.get(key)
            cells.append("–" if value is None else f"{value:.1%} ({entry[pair][0]}/{entry[pair][1]})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def load_rows(report: Dict[str, Any]) -> List[str]:
    lines = [f"| single-user latency p50 (ms) | {_fmt(report['latency_ms'].get('p50'))} | | |"]
    for name, row in report["targets"].items():
        value = _fmt(row["value"], percent=name == "assistant_beats_every_baseline")
        lines.append(f"| {name} | {value} | {row['target']} | {'yes' if row['met'] else 'no'} |")
    for concurrency, value in report["throughput_msg_s"].items():
        if concurrency != "8":
            lines.append(f"| throughput_{concurrency}_msg_s | {_fmt(value)} | | |")
    for concurrency, summary in report.get("concurrent_latency_ms", {}).items():
        p50_p95 = f"{_fmt(summary['p50'])} / {_fmt(summary['p95'])}"
        lines.append(f"| latency p50 / p95 at {concurrency} conversations (ms) | {p50_p95} | | |")
    for key, value in report["errors"].items():
        if key != "8":
            lines.append(f"| errors_{key} | {value} | | |")
    kinds = {key: value for key, value in report.get("error_kinds", {}).items() if value}
    if kinds:
        summary = "; ".join(
            f"{key}: " + ", ".join(f"{n}× {kind}" for kind, n in value.items()) for key, value in kinds.items()
        )
        lines.append(f"| error kinds | {summary} | | |")
    return lines + cluster_rows(report)


def cluster_rows(report: Dict[str, Any]) -> List[str]:
    """The cluster's other figures (its 8-conversation targets are among the targets)."""
    lines = []
    for concurrency, value in report.get("cluster_throughput_msg_s", {}).items():
        if concurrency != "8":
            lines.append(f"| cluster_throughput_{concurrency}_msg_s (errors) | {_fmt(value)} ({report['cluster_errors'][concurrency]}) | | |")
    for concurrency, summary in report.get("cluster_latency_ms", {}).items():
        lines.append(f"| cluster latency p50 / p95 at {concurrency} conversations (ms) | {_fmt(summary['p50'])} / {_fmt(summary['p95'])} | | |")
    if report.get("cluster_rss_mb"):
        lines.append(f"| cluster RSS per Rasa server (MB) | {', '.join(_fmt(v) for v in report['cluster_rss_mb'].values())} | | |")
    if report.get("parse_throughput_ratio_vs_rasa_default") is not None:
        detail = report["parse_throughput"]
        lines.append(f"| /model/parse msg/s: this pipeline / Rasa's default | {_fmt(detail['assistant']['throughput_msg_s'])} / "
                     f"{_fmt(detail['rasa_default']['throughput_msg_s'])} = {_fmt(report['parse_throughput_ratio_vs_rasa_default'])} | | |")
    return lines


def resource_rows(report: Dict[str, Any]) -> List[str]:
    train_note = report.get("train_note")
    rss = " / ".join(_fmt(report["rss_mb"].get(key)) for key in ("rasa", "actions", "total"))
    return [
        f"| train_s (rasa train --force) | {_fmt(report['train_s'])}{' (' + train_note + ')' if train_note else ''} | | |",
        f"| rss_mb rasa / actions / total | {rss} | | |",
    ]


def profile_rows(profile: Dict[str, Any]) -> List[str]:
    lines = ["", "| profile (p50 ms, one message) | value |", "|---|---|"]
    for key in PROFILE_ROWS:
        lines.append(f"| {key} | {_fmt(profile[key]['p50'])} (p95 {_fmt(profile[key]['p95'])}) |")
    lines.append(f"| serial_capacity_msg_s (1000 / p50 round trip) | {_fmt(profile.get('serial_capacity_msg_s'))} |")
    return lines


def markdown_table(report: Dict[str, Any]) -> str:
    """The report as Markdown: accuracy per method, then the measures and their targets."""
    lines = [*accuracy_rows(report), "", "| measure | value | target | met |", "|---|---|---|---|"]
    lines += load_rows(report) + resource_rows(report)
    if report.get("profile"):
        lines += profile_rows(report["profile"])
    return "\n".join(lines)


# --- the plot ---------------------------------------------------------------------------------

def plot_latency(single: Sequence[float], concurrent_runs: Dict[str, Sequence[float]], path: Path) -> Path:
    """Histogram of the single-user round trips and box plots by concurrency, saved as PNG."""
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2)
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
    return path
