"""Rasa's socket.io channel for the website chat widget, with the allowed page origins configurable.

Rasa 3.6's `SocketIOInput` creates its socket.io server with `cors_allowed_origins=[]`: no origin
check at all, so any web page may open a socket to the assistant (browsers apply CORS to the
polling transport, which Rasa's `--cors` governs, but not to WebSockets). This channel keeps
everything of Rasa's channel (name `socketio`, events, `session_persistence`, JWT) and adds one
credentials key, `cors_allowed_origins`: the pages (exact `scheme://host[:port]`) whose browser may
connect. A connection whose `Origin` header is not allowed is refused at connect, over either
transport. Clients that send no `Origin` (not browsers) are not affected.

- a list of origins: only those (the production setting);
- missing or empty: only pages served from the Rasa server's own origin;
- `"*"`: every origin (development only; a warning is logged).

HTTP CORS headers stay Rasa's (`rasa run --cors ...`); python-engineio adds none of its own, so a
response never carries two `Access-Control-Allow-Origin` headers.

A socket belongs to its visitor. Rasa's channel lets a socket join whatever conversation its
`session_request` names (and so receive its replies, staff answers included) and post into any
conversation its `user_uttered` names. Here the server issues the session ids itself
(bot/channels/session_keys.py):

- `session_request` resumes a conversation only for a server-signed session token
  (`<conversation id>.<signature>`); anything else (nothing, a bare conversation id, a forged or
  tampered token) gets a new conversation. The socket joins only that conversation's room.
- `session_confirm` answers `{"session_id": <conversation id>, "session_token": <token>}`:
  rasa-webchat keeps `session_id` (its messages name it, and it is Rasa's sender id, what staff
  see); the client keeps the token to resume after a reload (bot/web/static/widget.js does this
  for the widget). A conversation id alone never lets anyone in.
- `user_uttered` is accepted only for the conversation this socket was given (socket id →
  conversation, per process; the name may be the conversation id or its token), others are
  dropped; its text follows the visitor rule (bot/channels/visitor_text.py).

Several Rasa servers (`make cluster`, README "Production topology"): with `redis_url` in the
channel's credentials (or SOCKETIO_REDIS_URL), the socket.io server uses python-socketio's Redis
client manager, so a message for a conversation (a staff reply through Rasa's HTTP API) reaches the
visitor's socket whichever server holds it. Every server of a deployment names the same Redis and
`redis_channel`. Without it, one server on its own, as `make run` has it.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Union

import socketio
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

from bot.channels.rest import MAX_MESSAGE_CHARS
from bot.channels.session_keys import SessionSigner, load_session_key, new_conversation_id
from bot.channels.store_unavailable import told_when_unavailable
from bot.channels.visitor_text import visitor_text

logger = logging.getLogger(__name__)

ALL_ORIGINS = "*"
# The shared socket.io rooms of several Rasa servers (credentials keys; the URL also from the environment).
REDIS_URL_KEY = "redis_url"
REDIS_CHANNEL_KEY = "redis_channel"
REDIS_URL_VARIABLE = "SOCKETIO_REDIS_URL"
DEFAULT_REDIS_CHANNEL = "socketio"  # python-socketio's default
# None = the server's own origin only, "*" = any, a list = exactly those
AllowedOrigins = Union[None, str, List[str]]


def allowed_origins(configured: Union[None, str, Sequence[str]]) -> AllowedOrigins:
    """The allowed origins from the credentials value."""
    if configured is None or configured == "" or configured == []:
        return None
    if isinstance(configured, str):
        configured = [configured]
    origins = [str(origin).strip().rstrip("/") for origin in configured if str(origin).strip()]
    if ALL_ORIGINS in origins:
        logger.warning("Socket.io accepts connections from every web page (cors_allowed_origins: '*').")
        return ALL_ORIGINS
    return origins or None


def own_origin(environ: Mapping[str, Any]) -> Optional[str]:
    """The origin the request was addressed to (scheme and Host header)."""
    host = environ.get("HTTP_HOST")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}" if host else None


def origin_allowed(origin: Optional[str], environ: Mapping[str, Any], allowed: AllowedOrigins) -> bool:
    if origin is None or allowed == ALL_ORIGINS:
        return True
    if allowed is None:
        return origin == own_origin(environ)
    return origin in allowed


class WebchatInput(SocketIOInput):
    """Socket.io channel that refuses browsers on pages not in `cors_allowed_origins` and gives
    each socket only the conversation the server issued to its visitor."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        channel = super().from_credentials(credentials)
        assert isinstance(channel, WebchatInput)
        channel.cors_allowed_origins = allowed_origins(credentials.get("cors_allowed_origins"))
        channel.redis_url = credentials.get(REDIS_URL_KEY) or os.environ.get(REDIS_URL_VARIABLE) or None
        channel.redis_channel = credentials.get(REDIS_CHANNEL_KEY) or DEFAULT_REDIS_CHANNEL
        return channel

    def __init__(
        self,
        *args: Any,
        cors_allowed_origins: AllowedOrigins = None,
        session_signer: Optional[SessionSigner] = None,
        redis_url: Optional[str] = None,
        redis_channel: str = DEFAULT_REDIS_CHANNEL,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.cors_allowed_origins = cors_allowed_origins
        self.redis_url = redis_url  # None: this server's sockets only
        self.redis_channel = redis_channel
        self.session_signer = session_signer  # default: the deployment's key, loaded in blueprint()
        self.conversations: Dict[str, str] = {}  # socket id -> the conversation it was given

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        socketio_webhook = super().blueprint(told_when_unavailable(on_new_message))
        sio = self.sio
        assert sio is not None
        if self.redis_url:
            # before the first connection, which initializes the manager (subscribes to the channel)
            sio.manager = socketio.AsyncRedisManager(self.redis_url, channel=self.redis_channel)
            sio.manager.set_server(sio)
            logger.info(f"Socket.io rooms are shared through Redis (channel {self.redis_channel}).")
        if self.session_signer is None:
            self.session_signer = SessionSigner(load_session_key())
        signer = self.session_signer
        handlers = sio.handlers[self.namespace or "/"]
        rasa_connect = handlers["connect"]
        rasa_disconnect = handlers["disconnect"]
        rasa_handle_message = handlers[self.user_message_evt]

        async def connect(sid: str, environ: Dict, auth: Optional[Dict]) -> bool:
            origin = environ.get("HTTP_ORIGIN")
            if not origin_allowed(origin, environ, self.cors_allowed_origins):
                logger.warning(f"Socket.io connection from page origin {origin} refused (cors_allowed_origins).")
                return False
            return await rasa_connect(sid, environ, auth)

        async def disconnect(sid: str) -> None:
            self.conversations.pop(sid, None)
            await rasa_disconnect(sid)

        async def session_request(sid: str, data: Any) -> None:
            # everything up to the emit is synchronous: requests and messages of one socket take
            # effect in the order they came, though python-socketio runs each in its own task
            claimed = data.get("session_id") if isinstance(data, dict) else None
            conversation = signer.conversation(claimed)
            if conversation is None:
                conversation = new_conversation_id()
                if claimed:  # never log the claim itself: it may be someone's token
                    logger.warning(f"Socket {sid} asked for a session id without a valid signature; it gets a new conversation.")
            previous = self.conversations.get(sid)
            if previous is not None and previous != conversation:
                sio.leave_room(sid, previous, namespace=self.namespace)
            self.conversations[sid] = conversation
            if self.session_persistence:
                sio.enter_room(sid, conversation, namespace=self.namespace)
            confirmation = {"session_id": conversation, "session_token": signer.token(conversation)}
            await sio.emit("session_confirm", confirmation, room=sid, namespace=self.namespace)
            logger.debug(f"Socket {sid} has conversation {conversation}.")

        async def handle_message(sid: str, data: Any) -> None:
            if not isinstance(data, dict) or not isinstance(data.get("message", ""), str):
                logger.warning(f"Socket {sid} sent a malformed {self.user_message_evt}; ignored.")
                return
            message = {**data, "message": visitor_text(data.get("message", "")[:MAX_MESSAGE_CHARS])}
            if self.session_persistence:
                conversation = self.conversations.get(sid)
                claimed = data.get("session_id")
                if conversation is None or (claimed != conversation and signer.conversation(claimed) != conversation):
                    logger.warning(f"Socket {sid} sent a message for a conversation it was not given; ignored.")
                    return
                message["session_id"] = conversation  # Rasa's sender id: the conversation id, never a token
            await rasa_handle_message(sid, message)

        self.sio.on("connect", connect, namespace=self.namespace)
        self.sio.on("disconnect", disconnect, namespace=self.namespace)
        self.sio.on("session_request", session_request, namespace=self.namespace)
        self.sio.on(self.user_message_evt, handle_message, namespace=self.namespace)
        return socketio_webhook
