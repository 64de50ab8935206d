"""Start and stop the assistant's processes: the action server, the Rasa server and (optionally)
the demo web page with the chat widget.

Used by `make run` (python -m bot.cli run), the end-to-end tests and the benchmark, so all three
run the same stack the same way.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence

import yaml

from bot import paths
from bot.paths import ENDPOINTS_VARIABLE
from bot.tokens import ACTION_SERVER_TOKEN, RASA_API_TOKEN, private_directory, secret, write_private
from bot.web.app import page_origins

ROOT = paths.ROOT
RASA_MODEL = paths.RASA_MODEL
WEBCHAT_CHANNEL = "bot.channels.webchat.WebchatInput"  # its section in credentials.yml
RASA_SERVER_MODULE = "bot.rasa_server"  # `rasa` without torch in the process (bot/rasa_server.py)
# Every server binds this address unless HOST says otherwise (README "What is exposed").
DEFAULT_HOST = "127.0.0.1"
STOP_TIMEOUT_S = 8.0
RESTART_BACKOFF_MAX_S = 30.0
PRIVATE_UMASK = 0o077  # the servers' files (database, journals) and the logs: owner only

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_endpoints(actions_port: int, directory: Path, tracker_db: Optional[Path] = None,
                    sections: Optional[Dict[str, Any]] = None) -> Path:
    """endpoints.yml with the action server's port and token (a private file: it holds the
    token), optionally another SQLite file, and `sections` replacing whole sections (e.g. a
    PostgreSQL `tracker_store`; a section set to None is removed)."""
    endpoints = yaml.safe_load(paths.ENDPOINTS.read_text(encoding="utf-8"))
    for name, section in (sections or {}).items():
        if section is None:
            endpoints.pop(name, None)
        else:
            endpoints[name] = section
    endpoints["action_endpoint"]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    endpoints["action_endpoint"]["headers"] = {"Authorization": f"Bearer {secret(ACTION_SERVER_TOKEN)}"}
    if tracker_db is not None:
        endpoints["tracker_store"]["db"] = str(tracker_db)
    return write_private(directory / "endpoints.yml", yaml.safe_dump(endpoints))


def write_credentials(directory: Path, web_origins: Sequence[str] = (), webchat_settings: Optional[Dict[str, Any]] = None) -> Path:
    """credentials.yml with the demo page's origins added to those the socket.io channel allows
    (and `webchat_settings` added to that channel's section, e.g. the cluster's Redis)."""
    credentials = yaml.safe_load(paths.CREDENTIALS.read_text(encoding="utf-8")) or {}
    webchat = credentials.get(WEBCHAT_CHANNEL)
    if webchat is not None and webchat_settings:
        webchat.update(webchat_settings)
    if webchat is not None and web_origins:
        configured = webchat.get("cors_allowed_origins") or []
        configured = [configured] if isinstance(configured, str) else list(configured)
        webchat["cors_allowed_origins"] = configured + [o for o in web_origins if o not in configured]
    return write_private(directory / "credentials.yml", yaml.safe_dump(credentials))


def wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
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
class Service:
    """One server process of the stack, with what it takes to start it again."""

    name: str
    command: List[str]
    health_url: str
    process: subprocess.Popen
    restarts: int = 0


@dataclass
class Stack:
    """The running servers; `url` is the Rasa server (REST channel under /webhooks/rest/webhook)."""

    rasa_port: int
    actions_port: int
    api_token: str  # Rasa's HTTP API (`?token=`); the visitor channels need none
    tracker_db: Optional[Path] = None
    web_port: Optional[int] = None  # the demo page with the chat widget, when started
    services: List[Service] = field(default_factory=list)
    spawn: Optional[Callable[[str, List[str]], subprocess.Popen]] = None

    @property
    def processes(self) -> List[subprocess.Popen]:
        return [service.process for service in self.services]

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

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

    def api_url(self, path: str) -> str:
        """A URL of Rasa's HTTP API with the token (`path` starts with /, may carry a query)."""
        separator = "&" if "?" in path else "?"
        return f"{self.url}{path}{separator}token={urllib.parse.quote(self.api_token)}"

    def tracker(self, sender: str) -> Dict[str, Any]:
        """The conversation's tracker from Rasa's HTTP API (events, slots, bot-message metadata)."""
        url = self.api_url(f"/conversations/{urllib.parse.quote(sender, safe='')}/tracker")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def restart_dead(self, now: float, next_try: Dict[str, float]) -> None:
        """Start again every service whose process ended, each with its own back-off
        (1 s, doubling to RESTART_BACKOFF_MAX_S while it keeps dying within a minute)."""
        for service in self.services:
            if service.process.poll() is None or now < next_try.get(service.name, 0.0):
                continue
            logger.warning("%s exited with %s; starting it again (restart %d)", service.name,
                           service.process.returncode, service.restarts + 1)
            service.process = self.spawn(service.name, service.command)
            service.restarts += 1
            next_try[service.name] = now + min(RESTART_BACKOFF_MAX_S, 2.0 ** min(service.restarts, 5))

    def supervise(self, should_stop: Callable[[], bool], poll_s: float = 0.5) -> None:
        """Keep every service running until `should_stop()`; a dead one is restarted."""
        next_try: Dict[str, float] = {}
        while not should_stop():
            self.restart_dead(time.monotonic(), next_try)
            time.sleep(poll_s)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGINT to every process, then SIGKILL to what still runs after `timeout` seconds in all."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def private_log(path: Path) -> IO[str]:
    """`path` opened for appending, readable by its owner only (logs name conversations)."""
    private_directory(path.parent)
    file = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a")
    os.chmod(path, 0o600)
    return file


def server_environment(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
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


def spawner(environment: Dict[str, str], log_dir: Optional[Path]) -> Callable[[str, List[str]], subprocess.Popen]:
    """Starts a server process in the repository root with `environment`, its output appended to
    `<log_dir>/<name>.log` (or the terminal without `log_dir`)."""

    def spawn(name: str, command: List[str]) -> subprocess.Popen:
        output = private_log(log_dir / f"{name}.log") if log_dir else None
        # umask 077: whatever a server creates (the SQLite database, its journal) is its owner's only
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output,
                                stderr=subprocess.STDOUT if output else None, umask=PRIVATE_UMASK)

    return spawn


def actions_command(port: int, host: str) -> List[str]:
    return [sys.executable, "-m", "bot.action_server", "--port", str(port), "--host", host]


def rasa_command(
    port: int, endpoints: Path, credentials: Path, api_token: str, host: str,
    model: Path = RASA_MODEL, origins: Sequence[str] = (),
) -> List[str]:
    """`rasa run` as every Rasa server of this project runs (through bot/rasa_server.py: no torch in
    the process): HTTP API behind the token, CORS for the page origins."""
    return [
        sys.executable, "-m", RASA_SERVER_MODULE, "run", "--enable-api", "--auth-token", api_token,
        "--interface", host, "--model", str(model),
        "--port", str(port), "--endpoints", str(endpoints),
        "--credentials", str(credentials), *(["--cors", *origins] if origins else []),
    ]


def web_command(port: int, rasa_port: int, host: str) -> List[str]:
    """The demo page; the widget connects to the page's host on `rasa_port`."""
    return [sys.executable, "-m", "bot.web", "--port", str(port), "--rasa-port", str(rasa_port), "--host", host]


def start_stack(
    rasa_port: Optional[int] = None,
    actions_port: Optional[int] = None,
    tracker_db: Optional[Path] = None,
    work_dir: Optional[Path] = None,
    log_dir: Optional[Path] = None,
    model: Path = RASA_MODEL,
    timeout: float = 300.0,
    web: bool = False,
    web_port: Optional[int] = None,
    env: Optional[Dict[str, str]] = None,
    endpoints_sections: Optional[Dict[str, Any]] = None,
) -> Stack:
    """Start the action server and the Rasa server (and with `web` the demo page) and wait until
    they answer. Every server binds HOST (default 127.0.0.1). Rasa's HTTP API needs RASA_TOKEN and
    the action server ACTION_SERVER_TOKEN (bot/tokens.py: from the environment, or generated once
    under var/). HTTP CORS and the socket.io channel allow the demo page's origins only. `env` adds
    environment variables for the servers (e.g. the MATRIX_* settings of the staff channel);
    `endpoints_sections` replaces sections of endpoints.yml (e.g. a PostgreSQL tracker store)."""
    rasa_port = rasa_port or free_port()
    actions_port = actions_port or free_port()
    web_port = (web_port or free_port()) if web else None
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rugpijn-stack-"))
    endpoints = write_endpoints(actions_port, work_dir, tracker_db, endpoints_sections)
    origins = page_origins(web_port) if web_port else []
    credentials = write_credentials(work_dir, origins)
    host = os.environ.get("HOST", DEFAULT_HOST)
    api_token = (env or {}).get(RASA_API_TOKEN) or secret(RASA_API_TOKEN)
    # RASA_URL: where the Matrix channel reaches this server's HTTP API (staff replies)
    environment = server_environment({
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        ENDPOINTS_VARIABLE: str(endpoints),  # the tracker store the retention job and erasure clean
        RASA_API_TOKEN: api_token,
        ACTION_SERVER_TOKEN: secret(ACTION_SERVER_TOKEN),
        **(env or {}),
    })

    spawn = spawner(environment, log_dir)
    stack = Stack(rasa_port, actions_port, api_token, tracker_db, web_port, spawn=spawn)

    def start(name: str, command: List[str], health_url: str) -> Service:
        service = Service(name, command, health_url, spawn(name, command))
        stack.services.append(service)
        return service

    try:
        actions = start("actions", actions_command(actions_port, host), f"http://127.0.0.1:{actions_port}/health")
        rasa = start(
            "rasa",
            rasa_command(rasa_port, endpoints, credentials, api_token, host, model, origins),
            f"{stack.url}/status?token={urllib.parse.quote(api_token)}",
        )
        services = [actions]
        if web_port:
            services.append(start("web", web_command(web_port, rasa_port, host), f"{stack.web_url}/health"))
        # Rasa (the slowest to start) last: once its /status answers, start-up is complete, so a
        # client that waits for Rasa never races the start-up checks of the other servers.
        for service in [*services, rasa]:
            wait_for(service.health_url, service.process, timeout)
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
