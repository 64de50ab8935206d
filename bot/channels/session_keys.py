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
2. else the key file (`WEBCHAT_SESSION_KEY_FILE`, default `var/secrets/webchat_session.key`),
   created on first start with a random key (file mode 0600, folder 0700) and reused afterwards,
   so processes on one machine sharing the repository's `var/` share it too.

Changing the key ends every open widget conversation (their tokens no longer verify).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import uuid
from pathlib import Path
from typing import Mapping, Optional

from bot import paths

logger = logging.getLogger(__name__)

KEY_VARIABLE = "WEBCHAT_SESSION_KEY"
KEY_FILE_VARIABLE = "WEBCHAT_SESSION_KEY_FILE"
DEFAULT_KEY_FILE = paths.VAR_DIR / "secrets" / "webchat_session.key"
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


def load_session_key(environ: Mapping[str, str] = os.environ, key_file: Optional[Path] = None) -> bytes:
    """The deployment's session key: WEBCHAT_SESSION_KEY, else the key file (made on first use)."""
    configured = (environ.get(KEY_VARIABLE) or "").strip()
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise ValueError(f"{KEY_VARIABLE} must have at least {MIN_KEY_CHARS} characters")
        return configured.encode("utf-8")
    if key_file is None:
        key_file = paths.absolute(environ.get(KEY_FILE_VARIABLE) or DEFAULT_KEY_FILE)
    return key_from_file(key_file)


def key_from_file(path: Path) -> bytes:
    """The key in `path`; when there is none yet, a new random one written there first."""
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`.")
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"{path} holds no webchat session key of at least {MIN_KEY_CHARS} characters")
    return key.encode("utf-8")


def _create_key_file(path: Path) -> None:
    """Write a new key to `path`, atomically: processes starting together all end up with the
    key of the first one to finish (the file appears only complete, and never twice)."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is subject to the umask
    elif stat.S_IMODE(directory.stat().st_mode) & 0o077:
        logger.warning(f"{directory} (holding the webchat session key) is open to others; chmod 700 it.")
    draft = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # fails if another process made the key in the meantime
            logger.info(f"Created the webchat session key {path}.")
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
