"""Matrix channel: staff talk to the assistant in a Matrix room and answer hand-offs there.

An application service (https://spec.matrix.org/latest/application-service-api/): the homeserver
pushes room events to PUT /webhooks/matrix/_matrix/app/v1/transactions/{txnId}; replies go back
through the client-server API as the bot user. Settings come from MATRIX_* environment variables
(bot/staff/notifiers.py, README "Staff channel"); without them every transaction is refused (503).

In the staff room:
- a question gets the assistant's answer (the conversation is "<user>@<room>", channel `matrix`);
- `!antwoord <conversation-id> <tekst>` delivers the text to a visitor's conversation;
- `!klaar <conversation-id>` ends the hand-off (the visitor's messages are no longer mirrored);
- `!vergeet <conversation-id>` erases the conversation: its stored events and staff notices
  (bot/privacy/retention.py); erasing one that is gone already says so;
- `!rapport` posts the figures of the past 7 days (bot/staff/report.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import string
from collections import OrderedDict
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Set, Text
from urllib.parse import quote

import aiohttp
import redis
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import paths
from bot.channels.store_unavailable import told_when_unavailable
from bot.contract import HANDOFF_SLOT, STAFF_USER
from bot.privacy import retention
from bot.replies import reply
from bot.staff import report
from bot.staff.notifiers import TIMEOUT, MatrixClient, MatrixSettings
from bot.stores.backends import SharedRedis, endpoints_config, shared_redis

logger = logging.getLogger(__name__)

REGISTRATION_TEMPLATE = paths.ROOT / "matrix" / "registration.yaml.template"
SEEN_TRANSACTIONS = 10_000
# A homeserver retries a transaction with back-off until it is answered; a day covers its retries.
SEEN_TRANSACTION_TTL_S = 24 * 3600
SEEN_TRANSACTION_PART = "matrix:txn"  # Redis key `<prefix>:matrix:txn:<txn id>`
# Rasa's HTTP API does not percent-decode conversation ids: keep the characters a path allows as they are
PATH_SAFE = "/!$&'()*+,;=:@~"


def registration_yaml(settings: MatrixSettings, appservice_url: str, template: Path = REGISTRATION_TEMPLATE) -> str:
    """The homeserver's registration file for this application service."""
    return string.Template(template.read_text(encoding="utf-8")).substitute(
        url=appservice_url,
        as_token=settings.as_token,
        hs_token=settings.hs_token,
        sender_localpart=settings.bot_localpart,
        user_regex=re.escape(settings.bot_user),
    )


def without_reply_fallback(body: str) -> str:
    """The message without the quoted fallback ("> <@user> …" lines) that clients put in a reply."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


class SeenTransactions(Protocol):
    def first_time(self, txn_id: str) -> bool:
        """True the first time `txn_id` is seen (and from then on it counts as seen)."""


class SeenInMemory:
    """The last SEEN_TRANSACTIONS transaction ids, in this process (`make run`: one Rasa server)."""

    def __init__(self, size: int = SEEN_TRANSACTIONS) -> None:
        self.size = size
        self._seen: "OrderedDict[str, None]" = OrderedDict()

    def first_time(self, txn_id: str) -> bool:
        if txn_id in self._seen:
            return False
        self._seen[txn_id] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class SeenInRedis:
    """Transaction ids seen by any Rasa server on this Redis: `SET <key> 1 NX EX <ttl>`, so a retry
    that reaches another replica is still handled once."""

    def __init__(self, shared: SharedRedis, ttl_s: int = SEEN_TRANSACTION_TTL_S) -> None:
        self.shared = shared
        self.ttl_s = ttl_s

    def first_time(self, txn_id: str) -> bool:
        return bool(self.shared.client.set(self.shared.key(SEEN_TRANSACTION_PART, txn_id), "1", nx=True, ex=self.ttl_s))


def seen_transactions_for(endpoints_file: Optional[Path] = None) -> SeenTransactions:
    """Redis when the endpoints file configures a Redis lock store (bot/stores/backends.py), else memory."""
    shared = shared_redis(endpoints_config(endpoints_file))
    return SeenInRedis(shared) if shared is not None else SeenInMemory()


class MatrixOutput(OutputChannel):
    """Sends the assistant's replies to one room: text, buttons as a numbered list."""

    def __init__(self, client: MatrixClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id

    @classmethod
    def name(cls) -> Text:
        return "matrix"

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self.client.send_text(self.room_id, text)

    async def send_text_with_buttons(self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any) -> None:
        options = "\n".join(f"{number}. {button.get('title', '')}" for number, button in enumerate(buttons, 1))
        await self.client.send_text(self.room_id, f"{text}\n{options}" if options else text)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self.client.send_text(self.room_id, image)

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        return None  # widget-only payloads have no plain rendering


class RasaApi:
    """The Rasa server's own HTTP API (needs --enable-api): where staff replies enter a conversation."""

    def __init__(self, url: str, token: str = "") -> None:
        self.url, self.token = url.rstrip("/"), token

    def _url(self, conversation_id: str, path: str, **query: str) -> str:
        query = {**query, **({"token": self.token} if self.token else {})}
        suffix = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
        return f"{self.url}/conversations/{quote(conversation_id, safe=PATH_SAFE)}{path}" + (f"?{suffix}" if suffix else "")

    async def has_conversation(self, conversation_id: str) -> bool:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(self._url(conversation_id, "/tracker", include_events="ALL")) as reply:
                tracker = await reply.json() if reply.status == 200 else {}
        return any(event.get("event") == "user" for event in tracker.get("events") or [])

    async def append(self, conversation_id: str, events: List[Dict[str, Any]]) -> None:
        """Append events; bot events are also sent to the visitor's latest channel (if it can push)."""
        url = self._url(conversation_id, "/tracker/events", output_channel="latest", execute_side_effects="true")
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(url, json=events) as reply:
                if reply.status != 200:
                    raise RuntimeError(f"Rasa answered {reply.status}: {await reply.text()}")


class MatrixInput(InputChannel):
    """The application service endpoint; credentials.yml keys override the MATRIX_* variables."""

    @classmethod
    def name(cls) -> Text:
        return "matrix"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        rasa_url = os.environ.get("RASA_URL") or f"http://127.0.0.1:{os.environ.get('RASA_PORT', '5005')}"
        return cls(MatrixSettings.from_env(overrides=credentials or {}), RasaApi(rasa_url, os.environ.get("RASA_TOKEN", "")))

    def __init__(self, settings: Optional[MatrixSettings], rasa: RasaApi, seen: Optional[SeenTransactions] = None) -> None:
        self.settings = settings
        self.rasa = rasa
        self.client = MatrixClient(settings) if settings else None
        self.seen = seen or seen_transactions_for()
        self._lock = asyncio.Lock()
        self._tasks: Set[asyncio.Task] = set()
        if settings is None:
            logger.info("Matrix channel not configured (MATRIX_* variables): transactions are refused.")

    def _auth_problem(self, request: Request) -> Optional[HTTPResponse]:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.args.get("access_token")
        if not token:
            return response.json({"errcode": "M_UNAUTHORIZED", "error": "Missing token"}, status=401)
        if token != self.settings.hs_token:  # type: ignore[union-attr]
            return response.json({"errcode": "M_FORBIDDEN", "error": "Bad token"}, status=403)
        return None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        matrix = Blueprint("matrix_webhook", __name__)
        on_new_message = told_when_unavailable(on_new_message)  # the staff room hears it, not just the log

        @matrix.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.settings else "not configured"})

        @matrix.route("/_matrix/app/v1/transactions/<txn_id>", methods=["PUT"])
        async def transaction(request: Request, txn_id: str) -> HTTPResponse:
            if self.settings is None:
                return response.json({"errcode": "M_UNKNOWN", "error": "Matrix channel not configured"}, status=503)
            problem = self._auth_problem(request)
            if problem:
                return problem
            try:
                first_time = self.seen.first_time(txn_id)
            except redis.RedisError as error:  # not known whether it was handled: the homeserver retries
                logger.error("Matrix transaction %s not taken: Redis failed (%s)", txn_id, type(error).__name__)
                return response.json({"errcode": "M_UNKNOWN", "error": "Try again later"}, status=503)
            if not first_time:  # the homeserver retried (maybe at another replica): already handled
                return response.json({})
            events = (request.json or {}).get("events") or []
            # answer the homeserver now; handle the events in order, after it
            task = asyncio.get_running_loop().create_task(self._handle_in_order(events, on_new_message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return response.json({})

        matrix.add_route(transaction, "/transactions/<txn_id>", methods=["PUT"], name="legacy_transaction")

        @matrix.route("/_matrix/app/v1/ping", methods=["POST"])
        async def ping(request: Request) -> HTTPResponse:
            if self.settings is None:
                return response.json({"errcode": "M_UNKNOWN", "error": "Matrix channel not configured"}, status=503)
            return self._auth_problem(request) or response.json({})

        return matrix

    async def _handle_in_order(self, events: List[Dict[str, Any]], on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        async with self._lock:
            for event in events:
                try:
                    await self._handle(event, on_new_message)
                except Exception:
                    logger.exception(f"Matrix event {event.get('event_id')} could not be handled")

    async def _handle(self, event: Dict[str, Any], on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        assert self.settings is not None and self.client is not None
        room, sender, content = event.get("room_id"), event.get("sender"), event.get("content") or {}
        if sender == self.settings.bot_user or room != self.settings.staff_room:
            return  # its own messages, and rooms it does not serve
        if event.get("type") == "m.room.member":
            if event.get("state_key") == self.settings.bot_user and content.get("membership") == "invite":
                await self.client.join(room)
            return
        if event.get("type") != "m.room.message" or content.get("msgtype") != "m.text" or "m.new_content" in content:
            return  # only new text messages (no notices from other bots, no edits)
        text = without_reply_fallback(str(content.get("body") or "")).strip()
        if text.startswith("!"):
            await self.client.send_text(room, await self._command(text, str(sender)))
            return
        await on_new_message(
            UserMessage(
                text,
                MatrixOutput(self.client, room),
                sender_id=f"{sender}@{room}",  # characters Rasa's HTTP API can address
                input_channel=self.name(),
                message_id=event.get("event_id"),
                metadata={"staff": True, "matrix_room": room, "matrix_user": sender},
            )
        )

    async def _command(self, text: str, staff_user: str) -> str:
        """Runs a staff command; returns the confirmation for the room."""
        command, _, rest = text.partition(" ")
        conversation_id, _, message = rest.strip().partition(" ")
        command = command.lower()
        if command == "!rapport" and not rest.strip():
            return await self._report(staff_user)
        if command not in ("!antwoord", "!klaar", "!vergeet") or not conversation_id or (command == "!antwoord" and not message.strip()):
            return reply("staff_command_usage")
        if command == "!vergeet":
            return await self._erase(conversation_id, staff_user)
        if not await self.rasa.has_conversation(conversation_id):
            return reply("staff_unknown_conversation", conversation_id=conversation_id)
        if command == "!antwoord":
            event = {"event": "bot", "text": reply("staff_message_to_visitor", text=message.strip()), "metadata": {STAFF_USER: staff_user}}
            await self.rasa.append(conversation_id, [event])
            return reply("staff_reply_sent", conversation_id=conversation_id)
        await self.rasa.append(conversation_id, [{"event": "slot", "name": HANDOFF_SLOT, "value": False}])
        return reply("staff_hand_off_closed", conversation_id=conversation_id)

    async def _erase(self, conversation_id: str, staff_user: str) -> str:
        loop, config = asyncio.get_running_loop(), retention.tracker_store_config()
        if await loop.run_in_executor(None, retention.conversation_exists, config, conversation_id):
            # an open hand-off ends first: the mirror stops copying this id's messages
            await self.rasa.append(conversation_id, [{"event": "slot", "name": HANDOFF_SLOT, "value": False}])
        removed = await loop.run_in_executor(
            None, retention.erase, config, conversation_id, retention.outbox_path_from_env()
        )
        logger.info("Conversation %s erased by staff member %s: %s", conversation_id, staff_user, removed.summary())
        if not removed.events and not removed.notices:
            return reply("staff_nothing_to_erase", conversation_id=conversation_id)
        return reply("staff_conversation_erased", conversation_id=conversation_id, removed=removed.summary())

    async def _report(self, staff_user: str) -> str:
        try:
            weekly = await asyncio.get_running_loop().run_in_executor(
                None, report.last_week, retention.tracker_store_config()
            )
        except ValueError as error:  # no SQL tracker store configured
            logger.warning("No weekly report: %s", error)
            return reply("staff_report_unavailable")
        logger.info("Weekly report requested by staff member %s", staff_user)
        return weekly.text()
