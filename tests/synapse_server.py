"""A throw-away Synapse homeserver for the tests: loopback only, SQLite in a temporary directory.

Synapse runs from its own virtualenv (.venv-synapse, `make synapse`). The application service
registration is rendered from matrix/registration.yaml.template with generated tokens.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote

import requests
import yaml

from bot.channels.matrix import registration_yaml
from bot.stack import ROOT, free_port
from bot.staff.notifiers import MatrixSettings

SYNAPSE_PYTHON = ROOT / ".venv-synapse" / "bin" / "python"
SERVER_NAME = "localhost"


@dataclass
class StaffUser:
    homeserver: str
    user_id: str
    token: str
    since: Optional[str] = None

    def api(self, method: str, path: str, **kwargs) -> Dict:
        response = requests.request(
            method, f"{self.homeserver}/_matrix/client/v3{path}",
            headers={"Authorization": f"Bearer {self.token}"}, timeout=60, **kwargs,
        )
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def say(self, room_id: str, text: str) -> str:
        path = f"/rooms/{quote(room_id, safe='')}/send/m.room.message/{secrets.token_hex(8)}"
        return self.api("PUT", path, json={"msgtype": "m.text", "body": text})["event_id"]

    def sync(self, timeout_ms: int = 0) -> List[Dict]:
        """New timeline events of all rooms since the previous sync (long-polls up to timeout_ms)."""
        params = {"timeout": timeout_ms, **({"since": self.since} if self.since else {})}
        body = self.api("GET", "/sync", params=params)
        self.since = body["next_batch"]
        rooms = body.get("rooms", {}).get("join", {})
        return [dict(event, room_id=room) for room, data in rooms.items() for event in data.get("timeline", {}).get("events", [])]


@dataclass
class Homeserver:
    url: str
    directory: Path
    process: subprocess.Popen
    shared_secret: str
    users: List[StaffUser] = field(default_factory=list)

    def register(self, username: str, password: str) -> StaffUser:
        """A user, through the shared-secret admin API (/_synapse/admin/v1/register)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = requests.get(endpoint, timeout=30).json()["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(), b"notadmin"]))
        body = {"nonce": nonce, "username": username, "password": password, "admin": False, "mac": mac.hexdigest()}
        response = requests.post(endpoint, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return StaffUser(self.url, response.json()["user_id"], response.json()["access_token"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_synapse(directory: Path, appservice_url: str, log_path: Path, timeout: float = 60.0) -> tuple[Homeserver, MatrixSettings]:
    """Start Synapse with the assistant registered as application service; returns it and the
    Matrix settings (no staff room yet) the assistant needs."""
    if not SYNAPSE_PYTHON.exists():
        raise FileNotFoundError(f"{SYNAPSE_PYTHON} is missing: run `make synapse` (make install/test do it)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = MatrixSettings(url, secrets.token_hex(24), secrets.token_hex(24), f"@rugpijn-assistent:{SERVER_NAME}", "")
    registration = directory / "appservice.yaml"
    registration.write_text(registration_yaml(settings, appservice_url), encoding="utf-8")
    shared_secret = secrets.token_hex(24)
    config = {
        "server_name": SERVER_NAME,
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [{
            "port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
            "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / f"{SERVER_NAME}.signing.key"),
        "registration_shared_secret": shared_secret,
        "enable_registration": False,
        "report_stats": False,
        "macaroon_secret_key": secrets.token_hex(24),
        "form_secret": secrets.token_hex(24),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "app_service_config_files": [str(registration)],
        # the tests send bursts of messages as one staff user
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_joins": {"local": {"per_second": 1000, "burst_count": 1000}},
    }
    config_path = directory / "homeserver.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "--config-path", str(config_path)]
    subprocess.run([*command, "--generate-keys"], cwd=directory, check=True, capture_output=True, timeout=120)
    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    homeserver = Homeserver(url, directory, process, shared_secret)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Synapse exited with {process.returncode}; see {log_path}")
        try:
            if requests.get(f"{url}/_matrix/client/versions", timeout=2).status_code == 200:
                return homeserver, settings
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            homeserver.stop()
            raise TimeoutError(f"Synapse did not answer within {timeout:.0f} s; see {log_path}")
        time.sleep(0.2)
