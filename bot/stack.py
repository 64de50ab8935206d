"""Start and stop the assistant's processes: the action server, the Rasa server and (optionally)
the demo web page with the chat widget.

Used by `make run` (python -m bot.cli run), the end-to-end tests and the benchmark, so all three
run the same stack the same way.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import yaml

from bot.web.app import page_origins

ROOT = Path(__file__).resolve().parent.parent
RASA_MODEL = ROOT / "models" / "assistant.tar.gz"
WEBCHAT_CHANNEL = "bot.channels.webchat.WebchatInput"  # its section in credentials.yml


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_endpoints(actions_port: int, directory: Path, tracker_db: Optional[Path] = None) -> Path:
    """endpoints.yml with the action server's port (and optionally another SQLite file)."""
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    if tracker_db is not None:
        endpoints["tracker_store"]["db"] = str(tracker_db)
    path = directory / "endpoints.yml"
    path.write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    return path


def write_credentials(directory: Path, web_origins: Sequence[str] = ()) -> Path:
    """credentials.yml with the demo page's origins added to those the socket.io channel allows."""
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8")) or {}
    webchat = credentials.get(WEBCHAT_CHANNEL)
    if webchat is not None and web_origins:
        configured = webchat.get("cors_allowed_origins") or []
        configured = [configured] if isinstance(configured, str) else list(configured)
        webchat["cors_allowed_origins"] = configured + [o for o in web_origins if o not in configured]
    path = directory / "credentials.yml"
    path.write_text(yaml.safe_dump(credentials), encoding="utf-8")
    return path


def _wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Stack:
    """The running servers; `url` is the Rasa server (REST channel under /webhooks/rest/webhook)."""

    rasa_port: int
    actions_port: int
    tracker_db: Optional[Path] = None
    web_port: Optional[int] = None  # the demo page with the chat widget, when started
    processes: List[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def web_url(self) -> str:
        if self.web_port is None:
            raise RuntimeError("the stack was started without the web page (web=True)")
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def rest_url(self) -> str:
        return f"{self.url}/webhooks/rest/webhook"

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    # Sanic closes a connection that sent nothing for 5 s; under load the Rasa server's event loop
    # (busy with other messages' NLU) can take longer between connecting to the action server and
    # sending the request, and the reply is lost ("Cannot write to closing transport", make bench).
    env.setdefault("SANIC_KEEP_ALIVE_TIMEOUT", "60")
    return env


def start_stack(
    rasa_port: Optional[int] = None,
    actions_port: Optional[int] = None,
    tracker_db: Optional[Path] = None,
    work_dir: Optional[Path] = None,
    log_dir: Optional[Path] = None,
    model: Path = RASA_MODEL,
    cors: str = "*",
    timeout: float = 300.0,
    web: bool = False,
    web_port: Optional[int] = None,
    env: Optional[Dict[str, str]] = None,
) -> Stack:
    """Start the action server and the Rasa server (and with `web` the demo page) and wait until
    they answer. The Rasa server's socket.io channel allows the demo page's origins. `env` adds
    environment variables for the servers (e.g. the MATRIX_* settings of the staff channel)."""
    rasa_port = rasa_port or free_port()
    actions_port = actions_port or free_port()
    web_port = (web_port or free_port()) if web else None
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rugpijn-stack-"))
    endpoints = write_endpoints(actions_port, work_dir, tracker_db)
    credentials = write_credentials(work_dir, page_origins(web_port) if web_port else ())
    bin_dir = Path(sys.executable).parent
    stack = Stack(rasa_port, actions_port, tracker_db, web_port)
    # RASA_URL: where the Matrix channel reaches this server's HTTP API (staff replies)
    environment = _environment({"RASA_URL": f"http://127.0.0.1:{rasa_port}", **(env or {})})

    def spawn(name: str, command: List[str]) -> subprocess.Popen:
        output = open(log_dir / f"{name}.log", "w") if log_dir else None
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT if output else None)
        stack.processes.append(process)
        return process

    try:
        actions = spawn(
            "actions",
            [str(bin_dir / "rasa"), "run", "actions", "--actions", "actions", "--port", str(actions_port)],
        )
        rasa = spawn(
            "rasa",
            [
                str(bin_dir / "rasa"), "run", "--enable-api", "--model", str(model),
                "--port", str(rasa_port), "--endpoints", str(endpoints),
                "--credentials", str(credentials), "--cors", cors,
            ],
        )
        if web_port:
            page = spawn(
                "web",
                [sys.executable, "-m", "bot.web", "--port", str(web_port), "--rasa-port", str(rasa_port)],
            )
            _wait_for(f"{stack.web_url}/health", page, timeout)
        _wait_for(f"http://127.0.0.1:{actions_port}/health", actions, timeout)
        _wait_for(f"{stack.url}/status", rasa, timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running_stack(**kwargs) -> Iterator[Stack]:
    stack = start_stack(**kwargs)
    try:
        yield stack
    finally:
        stack.stop()
