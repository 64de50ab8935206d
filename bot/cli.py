"""Command line of the assistant: `python -m bot.cli COMMAND` (the Makefile calls these)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional

from bot import paths
from bot.privacy import retention
from bot.stack import ROOT, RASA_MODEL, running_stack, server_environment, write_endpoints
from bot.tokens import ACTION_SERVER_TOKEN, secret


def build_kb(args: argparse.Namespace) -> None:
    """The knowledge base, then Rasa's files for its items (domain block, rules, training questions)."""
    from bot.knowledge_base import ArticleFormatError, build_knowledge_base
    from bot.knowledge_base.rasa_files import write_article_rasa_files

    try:
        kb = build_knowledge_base()
    except ArticleFormatError as error:
        sys.exit(f"Article source is malformed: {error}")
    files = write_article_rasa_files(kb)
    print(f"knowledge base: {len(kb.items)} items, {len(kb.products)} products, {len(kb.sources)} sources")
    for item_id in files.unknown_ids:
        print(f"  questions for '{item_id}' left out: no such item in the article")


def build_embedding_model(args: argparse.Namespace) -> None:
    from bot.embeddings.convert import build_sentence_transformer

    print(f"embedding model: {build_sentence_transformer()}")


def build_onnx(args: argparse.Namespace) -> None:
    from bot.embeddings.onnx_model import export_onnx, quantize_onnx

    print(f"embedding model for onnxruntime: {export_onnx(force=True)}")
    print(f"its 4-bit graph (what the encoders run): {quantize_onnx(force=True)}")


def build_spacy(args: argparse.Namespace) -> None:
    from bot.nlp import save_dutch_pipeline

    print(f"spaCy pipeline: {save_dutch_pipeline()}")


def rasa(arguments: List[str]) -> None:
    command = [str(Path(sys.executable).parent / "rasa"), *arguments]
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def train(args: argparse.Namespace) -> None:
    rasa(["train", "--fixed-model-name", RASA_MODEL.name.removesuffix(".tar.gz"), "--out", str(RASA_MODEL.parent)])


def run(args: argparse.Namespace) -> None:
    """Serve the assistant; a server that dies is started again; SIGTERM or Ctrl-C stops all."""
    rasa_port = int(os.environ.get("RASA_PORT", 5005))
    actions_port = int(os.environ.get("ACTIONS_PORT", 5055))
    web_port = int(os.environ.get("WEB_PORT", 8000))
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tracker_db = os.environ.get("TRACKER_DB")  # default: endpoints.yml (var/conversations.db)
    log_dir = os.environ.get("LOG_DIR")
    with running_stack(
        rasa_port=rasa_port, actions_port=actions_port, work_dir=paths.VAR_DIR, web=True, web_port=web_port,
        tracker_db=Path(tracker_db) if tracker_db else None, log_dir=Path(log_dir) if log_dir else None,
    ) as stack:
        print(f"Assistant ready: chat page http://localhost:{web_port}, REST {stack.rest_url} "
              f"(actions on :{actions_port}). Ctrl-C stops.", flush=True)
        stack.supervise(stop.is_set)


def cluster(args: argparse.Namespace) -> None:
    """Rasa's distributed setup behind nginx (README "Production topology"): CLUSTER_REPLICAS Rasa
    servers (default one per core) on PostgreSQL, Redis and RabbitMQ, the page, one entry on
    CLUSTER_PORT; a server that dies is started again; SIGTERM or Ctrl-C stops all."""
    from bot.cluster import DEFAULT_PORT, running_cluster

    replicas = int(os.environ.get("CLUSTER_REPLICAS") or os.cpu_count() or 1)
    port = int(os.environ.get("CLUSTER_PORT") or DEFAULT_PORT)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log_dir = os.environ.get("LOG_DIR")
    with running_cluster(
        replicas=replicas, port=port, work_dir=paths.VAR_DIR / "cluster", log_dir=Path(log_dir) if log_dir else None,
    ) as running:
        print(f"Cluster ready: {replicas} Rasa servers behind nginx on {running.public_url} (chat page /, "
              f"REST {running.rest_url}, socket.io /socket.io/); Rasa's HTTP API on {running.url}. Ctrl-C stops.", flush=True)
        running.supervise(stop.is_set)


def shell(args: argparse.Namespace) -> None:
    """`rasa shell` with the action server running beside it."""
    actions_port = int(os.environ.get("ACTIONS_PORT", 5055))
    endpoints = write_endpoints(actions_port, paths.VAR_DIR)
    command = [sys.executable, "-m", "bot.action_server", "--port", str(actions_port)]
    actions = subprocess.Popen(command, cwd=ROOT, env=server_environment({ACTION_SERVER_TOKEN: secret(ACTION_SERVER_TOKEN)}))
    try:
        rasa(["shell", "--model", str(RASA_MODEL), "--endpoints", str(endpoints), "--port", os.environ.get("RASA_PORT", "5005")])
    finally:
        actions.terminate()
        actions.wait()


def evaluate(args: argparse.Namespace) -> None:
    """Dev-set top-1 of DIET, of the embedding search alone, and of the final intent."""
    import requests

    from bot.devtools.evaluation import compare_retrieval, load_dev_set
    from bot.knowledge_base import load_knowledge_base

    url = f"http://localhost:{os.environ.get('RASA_PORT', 5005)}/model/parse"
    scores = compare_retrieval(lambda text: requests.post(url, json={"text": text}, timeout=60).json(), load_knowledge_base(), load_dev_set())
    for name, accuracy in scores.items():
        print(f"{name:>18}: {accuracy:.1%}")


def evaluate_escalation(args: argparse.Namespace) -> None:
    """An escalation set through the pattern layer and both layers combined, offline."""
    from bot.devtools.escalation_eval import evaluate as evaluate_cases, fit_semantic_model, load_cases

    scores = evaluate_cases(load_cases(Path(args.cases)), fit_semantic_model())
    for layer in ("patterns", "combined"):
        print(layer, {name: round(value, 3) for name, value in scores.summary(layer).items()})
    for sign, recall in scores.per_sign().items():
        print(f"  {sign:>26}: {recall}")


def bench(args: argparse.Namespace) -> None:
    """Accuracy against baselines, latency, throughput, training time, memory (bot/devtools/benchmark/)."""
    from bot.devtools.benchmark.run import run_benchmark

    run_benchmark(skip_train=args.skip_train, messages=args.messages, profile=args.profile, quiet_load=args.wait_quiet)


def purge(args: argparse.Namespace) -> None:
    """Delete conversations whose last message is older than the retention (RETENTION_DAYS), with their staff notices."""
    config = retention.tracker_store_config()
    removed = retention.purge(config, retention.retention_from_env(), retention.outbox_path_from_env(), dry_run=args.dry_run)
    print(("would delete: " if args.dry_run else "deleted: ") + removed.summary())


def erase(args: argparse.Namespace) -> None:
    """Erase one conversation (a visitor's request): its stored events and staff notices."""
    removed = retention.erase(retention.tracker_store_config(), args.conversation_id, retention.outbox_path_from_env())
    print(f"{args.conversation_id}: erased {removed.summary()}")


def matrix_registration(args: argparse.Namespace) -> None:
    """Print the homeserver's application service registration, from the MATRIX_* variables."""
    from bot.channels.matrix import registration_yaml
    from bot.staff.notifiers import MatrixSettings

    settings = MatrixSettings.from_env()
    if settings is None:
        sys.exit("Set " + ", ".join(MatrixSettings.VARIABLES.values()) + " first (README, Staff channel).")
    print(registration_yaml(settings, args.url), end="")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, function, help_text in [
        ("build-kb", build_kb, "parse data/article into models/knowledge_base.json; write the items' Rasa files"),
        ("build-embedding-model", build_embedding_model, "convert the bundled e5 model to sentence-transformers"),
        ("build-onnx", build_onnx, "export the embedding model for onnxruntime (models/multilingual-e5-small/onnx/)"),
        ("build-spacy", build_spacy, "save the Dutch spaCy pipeline to models/spacy-nl"),
        ("train", train, "train the Rasa model (models/assistant.tar.gz)"),
        ("run", run, "serve the assistant: Rasa on RASA_PORT, actions on ACTIONS_PORT, the chat page on WEB_PORT"),
        ("cluster", cluster, "several Rasa servers behind nginx on CLUSTER_PORT (PostgreSQL, Redis, RabbitMQ)"),
        ("shell", shell, "talk to the assistant in the terminal"),
        ("evaluate", evaluate, "dev-set top-1 per retrieval method (needs `make run`)"),
    ]:
        commands.add_parser(name, help=help_text).set_defaults(function=function)
    escalation_parser = commands.add_parser("evaluate-escalation", help="an escalation set through both layers, offline")
    escalation_parser.add_argument("cases", nargs="?", default=str(paths.TESTS_DIR / "escalation_cases.yml"))
    escalation_parser.set_defaults(function=evaluate_escalation)
    bench_parser = commands.add_parser("bench", help="benchmark the real stack: writes reports/bench.json")
    bench_parser.add_argument("--skip-train", action="store_true", help="skip the ~6 min `rasa train --force` (train_s: null)")
    bench_parser.add_argument("--messages", type=int, default=240, help="single-user messages (at least 200)")
    bench_parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                              help="profile one message's path (default: only when a target is missed)")
    bench_parser.add_argument("--wait-quiet", type=float, metavar="LOAD",
                              help="before the latency runs, wait (up to 15 min) for a 1-min load average below LOAD")
    bench_parser.set_defaults(function=bench)
    purge_parser = commands.add_parser("purge", help="delete conversations older than RETENTION_DAYS (default 30) after their last message")
    purge_parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    purge_parser.set_defaults(function=purge)
    erase_parser = commands.add_parser("erase", help="erase one conversation by id (tracker rows, staff notices)")
    erase_parser.add_argument("conversation_id")
    erase_parser.set_defaults(function=erase)
    registration_parser = commands.add_parser("matrix-registration", help="print the Matrix application service registration")
    registration_parser.add_argument("--url", required=True, help="where the homeserver reaches Rasa, e.g. http://rasa:5005/webhooks/matrix")
    registration_parser.set_defaults(function=matrix_registration)
    args = parser.parse_args(argv)
    args.function(args)


if __name__ == "__main__":
    main()
