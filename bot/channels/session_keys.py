"""The chat widget's session ids: signed by the server, so that a socket can only resume a
conversation it was given. Pure Python (hmac, secrets); imports nothing of Rasa.

A session token is `<conversation id>.<signature>`: the conversation id (32 hex digits, Rasa's
sender id, what staff see in hand-off notices) and the base64url HMAC-SHA256 of it under the
deployment's session key. Knowing a conversation id is therefore not enough to join it; only the
visitor's browser, which the server gave the token, can.

The key, in this order:

1. `WEBCHAT_SESSION_KEY` (at least 32 characters, e.g. `python -c "import secrets;
   print(secrets.token_urlsafe(32))"`): the setting for a deployment with several Rasa processes or
   machines. **Every process of a deployment must use the same key**, or a token issued by one is
   refused by another (the visitor then gets a new, empty conversation).
2. else `var/webchat_session_key` (bot/tokens.py, like the other secrets), created on first start
   with a random key (file mode 0600, folder 0700) and reused afterwards, so processes on one
   machine sharing the repository's `var/` share it too.

Changing the key ends every open widget conversation (their tokens no longer verify).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from typing import Optional

from bot.tokens import WEBCHAT_SESSION_KEY, secret

MIN_KEY_CHARS = 32

SEPARATOR = "."
CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as Rasa's socket.io channel makes them
# what is signed: the purpose first, so this key's signatures mean nothing anywhere else
SIGNATURE_CONTEXT = b"rugpijn-assistent webchat session v1\x00"


def new_conversation_id() -> str:
    return uuid.uuid4().hex


class SessionSigner:
    """Signs conversation ids into session tokens and checks tokens."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"the webchat session key must have at least {MIN_KEY_CHARS} characters")
        self._key = key

    def signature(self, conversation_id: str) -> str:
        digest = hmac.new(self._key, SIGNATURE_CONTEXT + conversation_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def token(self, conversation_id: str) -> str:
        """The session token the visitor's client keeps for `conversation_id`."""
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise ValueError("a conversation id is 32 lower-case hex digits")
        return f"{conversation_id}{SEPARATOR}{self.signature(conversation_id)}"

    def conversation(self, token: object) -> Optional[str]:
        """The conversation id of a valid token; None for anything else (a bare or foreign
        conversation id, a forged or tampered signature, not a string)."""
        if not isinstance(token, str) or len(token) > 200:
            return None
        conversation_id, separator, signature = token.partition(SEPARATOR)
        if not separator or not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        if not hmac.compare_digest(signature.encode("ascii", "replace"), self.signature(conversation_id).encode("ascii")):
            return None
        return conversation_id


def load_session_key() -> bytes:
    """The deployment's session key (bot/tokens.py: WEBCHAT_SESSION_KEY, or var/webchat_session_key)."""
    key = secret(WEBCHAT_SESSION_KEY)
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"{WEBCHAT_SESSION_KEY} must have at least {MIN_KEY_CHARS} characters")
    return key.encode("utf-8")
