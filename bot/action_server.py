"""The action server: rasa-sdk's app for the `actions` package, closed to everyone but the Rasa
server. `python -m bot.action_server --port 5055` (bot/stack.py starts it).

- Every request but `/health` must carry `Authorization: Bearer <ACTION_SERVER_TOKEN>` (bot/tokens.py);
  the Rasa server sends it (the `headers` of `action_endpoint`, written by bot/stack.py).
- Bodies are bounded (MAX_BODY_BYTES) and compressed bodies refused (no decompression bombs).
- An action error is logged with the action's name and the conversation id, never the tracker
  (rasa-sdk's own handler returns and logs the whole request body: the visitor's messages).
- It delivers queued staff notices (bot/staff/outbox.py) in the background, and runs the retention
  job (bot/privacy/retention.py: conversations RETENTION_DAYS after their last message are deleted).
- It binds 127.0.0.1 unless HOST says otherwise.
- The data the actions read is loaded before the first request (`preload`): parsed on first use,
  signs.yml alone took the first escalation 0.85 s.
"""
from __future__ import annotations

import argparse
import hmac
import logging
import os
from typing import Any, Optional

from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.clock import dutch_public_holidays, now
from bot.coverage import item_kind_words, quantity_questions, sign_questions, uncovered_topics
from bot.escalation.sign_book import load_sign_book
from bot.knowledge_base import current_knowledge_base
from bot.knowledge_base.answers import stop_words
from bot.knowledge_base.questions import question_rules
from bot.knowledge_base.suggestions import suggestion_settings
from bot.privacy.retention import purge_periodically
from bot.products import product_settings
from bot.replies import replies
from bot.staff.notifiers import staff_notifier_from_env
from bot.staff.outbox import default_outbox
from bot.tokens import ACTION_SERVER_TOKEN, secret

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024  # a tracker of a long conversation is well under this
OPEN_PATHS = frozenset({"/health"})
STAFF_NOTICES_JOB = "staff_notices"  # background tasks of the server, by name
RETENTION_JOB = "retention_purge"
DEFAULT_HOST = "127.0.0.1"


def bearer_matches(request: Request, token: str) -> bool:
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


def preload() -> None:
    """Loads (and caches) every data file the actions read, so no visitor waits for a parse."""
    load_sign_book()
    current_knowledge_base()
    replies()
    uncovered_topics()
    sign_questions()
    item_kind_words()
    quantity_questions()
    product_settings()
    question_rules()
    suggestion_settings()
    stop_words()
    dutch_public_holidays(now().year)


def create_action_server(token: str, package: str = "actions") -> Sanic:
    app = create_app(package, cors_origins=[])
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES

    @app.middleware("request")
    async def authenticate(request: Request) -> Optional[HTTPResponse]:
        if request.path in OPEN_PATHS:
            return None
        if not bearer_matches(request, token):
            return response.json({"error": "Unauthorized"}, status=401)
        if request.headers.get("Content-Encoding"):
            return response.json({"error": "Compressed bodies are not accepted"}, status=415)
        return None

    @app.listener("before_server_start")
    async def load_data(app: Sanic, loop: Any) -> None:
        preload()

    @app.listener("after_server_start")
    async def start_background_jobs(app: Sanic, loop: Any) -> None:
        app.add_task(default_outbox().deliver_forever(staff_notifier_from_env), name=STAFF_NOTICES_JOB)
        app.add_task(purge_periodically(), name=RETENTION_JOB)

    @app.listener("before_server_stop")
    async def stop_background_jobs(app: Sanic, loop: Any) -> None:
        """Cancelled and awaited: otherwise asyncio destroys them pending when the loop closes, and logs
        that as an error at every shutdown."""
        for name in (STAFF_NOTICES_JOB, RETENTION_JOB):
            await app.cancel_task(name, raise_exception=False)

    @app.exception(Exception)
    async def action_failed(request: Request, exception: Exception) -> HTTPResponse:
        body = request.json if isinstance(request.json, dict) else {}
        logger.error(
            "Action %s failed for conversation %s: %s",
            body.get("next_action"), body.get("sender_id"), type(exception).__name__,
        )
        return response.json({"error": "action failed"}, status=500)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.action_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("ACTIONS_PORT", 5055)))
    parser.add_argument("--host", default=os.environ.get("HOST", DEFAULT_HOST))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_action_server(secret(ACTION_SERVER_TOKEN))
    app.run(args.host, args.port, workers=1, access_log=False)


if __name__ == "__main__":
    main()
