"""`make run` (python -m bot.cli run) as a process under faults: the referral survives a frozen
action server, a killed server is started again, and SIGTERM frees every port within 10 s."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from bot import paths
from bot.contract import ESCALATION, cited_items, latest_turn_bot_events
from bot.paths import ENDPOINTS_VARIABLE
from bot.staff.outbox import OUTBOX_VARIABLE
from bot.stack import actions_command, free_port, server_environment, spawner, wait_for, write_endpoints
from bot.tokens import ACTION_SERVER_TOKEN, RASA_API_TOKEN, secret
from conftest import ARTIFACTS

URGENT_TEXT = "ik kan sinds vanochtend niet meer plassen"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listener_pid(port: int) -> int:
    output = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"pid=(\d+)", output).group(1))


def wait_until(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    ports = {"RASA_PORT": free_port(), "ACTIONS_PORT": free_port(), "WEB_PORT": free_port()}
    directory = tmp_path_factory.mktemp("run")
    ARTIFACTS.mkdir(exist_ok=True)
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "TRACKER_DB": str(directory / "conversations.db")}
    with open(ARTIFACTS / "make_run.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=paths.ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        token = secret(RASA_API_TOKEN)
        status = f"http://127.0.0.1:{ports['RASA_PORT']}/status?token={token}"
        wait_until(lambda: process.poll() is None and _ok(status), 300, "make run ready")
        yield process, ports, token
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def say(ports, token, sender: str, text: str):
    base = f"http://127.0.0.1:{ports['RASA_PORT']}"
    started = time.monotonic()
    replies = requests.post(f"{base}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60).json()
    seconds = time.monotonic() - started
    tracker = requests.get(f"{base}/conversations/{sender}/tracker?token={token}", timeout=30).json()
    return replies, tracker, seconds


def test_referral_comes_from_the_rasa_server_when_the_action_server_hangs(supervised):
    process, ports, token = supervised
    sender = f"test-{uuid.uuid4().hex[:8]}"
    say(ports, token, sender, "hoi")
    actions = listener_pid(ports["ACTIONS_PORT"])
    os.kill(actions, signal.SIGSTOP)  # the action server hangs: no answer, no error
    try:
        replies, tracker, seconds = say(ports, token, sender, URGENT_TEXT)
    finally:
        os.kill(actions, signal.SIGCONT)
    referral = replies[0].get("text", "")
    assert seconds < 15 and "huisarts" in referral and "huisartsenpost" in referral
    assert tracker["slots"]["escalation_level"] == "urgent_now"
    referral = [e for e in latest_turn_bot_events(tracker) if (e.get("metadata") or {}).get(ESCALATION)]
    assert referral and referral[0]["metadata"][ESCALATION]["fallback"] is True


def test_a_killed_action_server_is_started_again(supervised):
    process, ports, token = supervised
    os.kill(listener_pid(ports["ACTIONS_PORT"]), signal.SIGKILL)
    wait_until(lambda: _ok(f"http://127.0.0.1:{ports['ACTIONS_PORT']}/health"), 60, "action server restarted")
    _, tracker, _ = say(ports, token, f"test-{uuid.uuid4().hex[:8]}", "Wat is het DAVID Spine-programma?")
    assert cited_items(latest_turn_bot_events(tracker)) == ["section_therapies"]


def test_sigterm_stops_everything_and_frees_the_ports(supervised):
    process, ports, _ = supervised
    process.send_signal(signal.SIGTERM)
    seconds = wait_until(lambda: process.poll() is not None and not any(port_open(p) for p in ports.values()), 10,
                         "all ports free after SIGTERM")
    assert process.returncode is not None and seconds < 10


def test_the_action_server_stops_its_background_jobs_before_its_loop_closes(tmp_path):
    """SIGTERM: the staff-notice delivery and the retention purge are cancelled and awaited, so
    asyncio never logs "Task was destroyed but it is pending!" (it did at every stop)."""
    port = free_port()
    endpoints = write_endpoints(port, tmp_path, tmp_path / "conversations.db")
    environment = server_environment({ENDPOINTS_VARIABLE: str(endpoints), OUTBOX_VARIABLE: str(tmp_path / "outbox.db"),
                                      ACTION_SERVER_TOKEN: secret(ACTION_SERVER_TOKEN)})
    process = spawner(environment, tmp_path)("actions", actions_command(port, "127.0.0.1"))
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, 120.0)
        wait_until(lambda: (tmp_path / "outbox.db").exists(), 30, "the background jobs started (the outbox opened)")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "actions.log").read_text()
    assert "Task was destroyed but it is pending" not in log, log[-2000:]
