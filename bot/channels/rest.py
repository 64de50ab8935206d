"""Rasa's REST channel for visitors: malformed requests get a 400 instead of an error 500, the
channel is always `rest` (Rasa's own channel takes `input_channel` from the request body, so a
visitor could claim to be staff), and the text follows the visitor rule of
bot/channels/visitor_text.py (no `/` commands but the assistant's own payloads).

When the conversation database cannot be reached (`TrackerStoreUnavailable`, bot/stores/
tracker_store.py), the webhook answers 503 with `Retry-After` instead of the replies of a turn that
was not stored (Rasa's channel logs the error and answers 200 with whatever was sent): the client
sends the message again, and it is handled once the database is back.

Registered in credentials.yml under its class path; it keeps the name `rest`, so the webhook
stays at /webhooks/rest/webhook.
"""
from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.visitor_text import visitor_text
from bot.stores.tracker_store import TrackerStoreUnavailable

MAX_MESSAGE_CHARS = 10_000
RETRY_AFTER_S = 2


@dataclass
class Outcome:
    """What became of one webhook request's message (set while Rasa handles it)."""

    store_unavailable: bool = False


# The request being handled in this task: Sanic runs a request's middleware and handler in one task.
_OUTCOME: ContextVar[Optional[Outcome]] = ContextVar("rest_outcome", default=None)


def request_problem(request: Request) -> Optional[str]:
    """Why a webhook request cannot be handled, or None when it can."""
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        return "Body is not valid JSON."
    if not isinstance(body, dict):
        return "Body must be a JSON object with 'sender' and 'message'."
    if not isinstance(body.get("message"), str):
        return "'message' must be a string."
    sender = body.get("sender")
    if sender is not None and not isinstance(sender, (str, int)):
        return "'sender' must be a string."
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        return "'metadata' must be an object."
    return None


class ValidatingRestInput(RestInput):
    """REST channel whose webhook answers 400 with a reason for a malformed request."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def _extract_message(self, req: Request) -> Optional[str]:
        text = super()._extract_message(req)
        return visitor_text(text[:MAX_MESSAGE_CHARS]) if text is not None else None

    def _extract_input_channel(self, req: Request) -> str:
        """Always this channel: what the body says about its channel is not trusted."""
        return self.name()

    async def _extract_sender(self, req: Request) -> Optional[str]:
        sender = await super()._extract_sender(req)
        return str(sender) if sender is not None else None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        async def handle(message: UserMessage) -> Any:
            try:
                return await on_new_message(message)
            except TrackerStoreUnavailable:  # logged by the store (without the text); answered with 503
                outcome = _OUTCOME.get()
                if outcome is None:
                    raise
                outcome.store_unavailable = True
                return None

        blueprint = super().blueprint(handle)

        @blueprint.middleware("request")
        async def validate(request: Request) -> Optional[HTTPResponse]:
            if request.method == "POST" and request.path.endswith("/webhook"):
                problem = request_problem(request)
                if problem:
                    return response.json({"error": problem}, status=400)
                request.ctx.outcome = Outcome()
                _OUTCOME.set(request.ctx.outcome)
            return None

        @blueprint.middleware("response")
        async def unavailable(request: Request, _: HTTPResponse) -> Optional[HTTPResponse]:
            outcome = getattr(request.ctx, "outcome", None)
            if outcome is not None and outcome.store_unavailable:
                return response.json({"error": "The conversation could not be stored; send the message again."},
                                     status=503, headers={"Retry-After": str(RETRY_AFTER_S)})
            return None

        return blueprint
