"""Where hand-off notices go: one `StaffNotifier` per staff channel, chosen by environment variables.

STAFF_NOTIFIER=matrix|slack|telegram picks one; without it the first channel whose variables are set
is used (Matrix, then Slack, then Telegram). None set: no staff channel, hand-offs are not offered.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Mapping, Optional, Protocol
from urllib.parse import quote

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=15)


class StaffNotifier(Protocol):
    async def post(self, text: str) -> None:
        """Post `text` to the staff channel; raises on failure."""


async def _request(method: str, url: str, payload: Dict[str, Any], token: Optional[str] = None) -> Dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.request(method, url, json=payload, headers=headers) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else {}
            except ValueError:
                body = {"body": text[:200]}
            if response.status >= 300:
                raise RuntimeError(f"{method} {url.split('?')[0]} answered {response.status}: {body}")
            return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class MatrixSettings:
    """The Matrix application service: homeserver, tokens, the bot's user id and the staff room."""

    homeserver_url: str
    as_token: str
    hs_token: str
    bot_user: str
    staff_room: str

    VARIABLES: ClassVar[Dict[str, str]] = {
        "homeserver_url": "MATRIX_HOMESERVER_URL",
        "as_token": "MATRIX_AS_TOKEN",
        "hs_token": "MATRIX_HS_TOKEN",
        "bot_user": "MATRIX_BOT_USER",
        "staff_room": "MATRIX_STAFF_ROOM",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, overrides: Optional[Mapping[str, Any]] = None) -> Optional["MatrixSettings"]:
        """The settings from MATRIX_* variables (credentials.yml keys override them); None if any is missing."""
        values = {key: str((overrides or {}).get(key) or env.get(variable, "")).strip() for key, variable in cls.VARIABLES.items()}
        if not all(values.values()):
            return None
        values["homeserver_url"] = values["homeserver_url"].rstrip("/")
        return cls(**values)

    @property
    def bot_localpart(self) -> str:
        return self.bot_user.removeprefix("@").split(":", 1)[0]


class MatrixClient:
    """The client-server API calls the application service makes, as its bot user."""

    def __init__(self, settings: MatrixSettings) -> None:
        self.settings = settings

    def _url(self, path: str) -> str:
        return f"{self.settings.homeserver_url}/_matrix/client/v3{path}"

    async def send_text(self, room_id: str, text: str, msgtype: str = "m.notice") -> str:
        """Send a plain-text message (bots send m.notice, which other bots must not answer)."""
        path = f"/rooms/{quote(room_id, safe='')}/send/m.room.message/{uuid.uuid4().hex}"
        body = await _request("PUT", self._url(path), {"msgtype": msgtype, "body": text}, self.settings.as_token)
        return str(body.get("event_id", ""))

    async def join(self, room_id: str) -> None:
        await _request("POST", self._url(f"/rooms/{quote(room_id, safe='')}/join"), {}, self.settings.as_token)


class MatrixNotifier:
    def __init__(self, settings: MatrixSettings) -> None:
        self.client = MatrixClient(settings)
        self.room = settings.staff_room

    async def post(self, text: str) -> None:
        await self.client.send_text(self.room, text)


class SlackNotifier:
    """Slack: chat.postMessage with a bot token, or an incoming webhook URL."""

    def __init__(self, channel: str = "", token: str = "", webhook_url: str = "", api_url: str = "https://slack.com/api") -> None:
        self.channel, self.token, self.webhook_url, self.api_url = channel, token, webhook_url, api_url.rstrip("/")

    async def post(self, text: str) -> None:
        if self.webhook_url:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
                async with session.post(self.webhook_url, json={"text": text}) as response:
                    if response.status >= 300:
                        raise RuntimeError(f"Slack webhook answered {response.status}")
            return
        body = await _request("POST", f"{self.api_url}/chat.postMessage", {"channel": self.channel, "text": text}, self.token)
        if not body.get("ok"):
            raise RuntimeError(f"Slack chat.postMessage failed: {body.get('error')}")


class TelegramNotifier:
    """Telegram: the Bot API's sendMessage to the staff group's chat id."""

    def __init__(self, token: str, chat_id: str, api_url: str = "https://api.telegram.org") -> None:
        self.token, self.chat_id, self.api_url = token, chat_id, api_url.rstrip("/")

    async def post(self, text: str) -> None:
        body = await _request("POST", f"{self.api_url}/bot{self.token}/sendMessage", {"chat_id": self.chat_id, "text": text})
        if not body.get("ok"):
            raise RuntimeError(f"Telegram sendMessage failed: {body.get('description')}")


def staff_notifier_from_env(env: Mapping[str, str] = os.environ) -> Optional[StaffNotifier]:
    """The configured staff channel's notifier, or None."""
    candidates = {
        "matrix": lambda: MatrixNotifier(settings) if (settings := MatrixSettings.from_env(env)) else None,
        "slack": lambda: SlackNotifier(
            env.get("SLACK_STAFF_CHANNEL", ""), env.get("SLACK_BOT_TOKEN", ""), env.get("SLACK_WEBHOOK_URL", ""),
            env.get("SLACK_API_URL", "https://slack.com/api"),
        ) if env.get("SLACK_WEBHOOK_URL") or (env.get("SLACK_BOT_TOKEN") and env.get("SLACK_STAFF_CHANNEL")) else None,
        "telegram": lambda: TelegramNotifier(
            env["TELEGRAM_BOT_TOKEN"], env["TELEGRAM_STAFF_CHAT_ID"], env.get("TELEGRAM_API_URL", "https://api.telegram.org"),
        ) if env.get("TELEGRAM_BOT_TOKEN") and env.get("TELEGRAM_STAFF_CHAT_ID") else None,
    }
    chosen = env.get("STAFF_NOTIFIER", "").strip().lower()
    if chosen:
        if chosen not in candidates:
            raise ValueError(f"STAFF_NOTIFIER={chosen!r}: choose one of {', '.join(candidates)}")
        return candidates[chosen]()
    return next((notifier for make in candidates.values() if (notifier := make()) is not None), None)


def staff_channels(env: Mapping[str, str] = os.environ) -> frozenset:
    """Input channels whose users are staff (STAFF_CHANNELS, comma-separated; default `matrix`).
    Add `slack` or `telegram` only when that connector serves staff, never visitors: staff get no
    escalation."""
    return frozenset(name for name in re.split(r"[,\s]+", env.get("STAFF_CHANNELS", "matrix")) if name)
