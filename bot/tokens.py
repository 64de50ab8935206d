"""The deployment's shared secrets: each from its environment variable, or generated once into a
private file under var/ (folder 0700, file 0600, whatever the umask) and reused, so every process of
one deployment on one machine agrees without configuration. A multi-machine deployment sets the
variables. Imports nothing of Rasa."""
from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from bot import paths

logger = logging.getLogger(__name__)

RASA_API_TOKEN = "RASA_TOKEN"  # Rasa's HTTP API (`rasa run --auth-token`): staff replies, tools, tests
ACTION_SERVER_TOKEN = "ACTION_SERVER_TOKEN"  # the Rasa server's calls to the action server
WEBCHAT_SESSION_KEY = "WEBCHAT_SESSION_KEY"  # signs the chat widget's session tokens
SECRET_BYTES = 32


def private_directory(directory: Path = paths.VAR_DIR) -> Path:
    """`directory`, created if missing, readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def write_private(path: Path, text: str) -> Path:
    """`text` written to `path`, readable by its owner only (created 0600, whatever the umask)."""
    private_directory(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode on open
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def secret(variable: str, directory: Path = paths.VAR_DIR) -> str:
    """The secret named `variable`: from the environment, else from var/<variable lowercased>,
    generated there (32 random bytes, hex) on first use."""
    value = (os.environ.get(variable) or "").strip()
    if value:
        return value
    path = private_directory(directory) / variable.lower()
    if not path.exists():
        _create_secret_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning(f"{path} is readable by others (mode {mode:o}); run `chmod 600 {path}`.")
    return path.read_text(encoding="utf-8").strip()


def _create_secret_file(path: Path) -> None:
    """Write a new secret to `path` atomically: processes starting together all end up with the
    secret of the first one to finish (the file appears only complete, and never twice)."""
    draft = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_hex(SECRET_BYTES) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # fails if another process made it in the meantime
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
