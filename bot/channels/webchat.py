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
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Union

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput
from sanic import Blueprint

logger = logging.getLogger(__name__)

ALL_ORIGINS = "*"
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
    """Socket.io channel that refuses browsers on pages not in `cors_allowed_origins`."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        credentials = credentials or {}
        channel = super().from_credentials(credentials)
        assert isinstance(channel, WebchatInput)
        channel.cors_allowed_origins = allowed_origins(credentials.get("cors_allowed_origins"))
        return channel

    def __init__(self, *args: Any, cors_allowed_origins: AllowedOrigins = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cors_allowed_origins = cors_allowed_origins

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        socketio_webhook = super().blueprint(on_new_message)
        assert self.sio is not None
        rasa_connect = self.sio.handlers[self.namespace or "/"]["connect"]

        async def connect(sid: str, environ: Dict, auth: Optional[Dict]) -> bool:
            origin = environ.get("HTTP_ORIGIN")
            if not origin_allowed(origin, environ, self.cors_allowed_origins):
                logger.warning(f"Socket.io connection from page origin {origin} refused (cors_allowed_origins).")
                return False
            return await rasa_connect(sid, environ, auth)

        self.sio.on("connect", connect, namespace=self.namespace)
        return socketio_webhook
