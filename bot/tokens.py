"""The deployment's shared secrets: each from its environment variable, or generated once into a
private file under var/ (folder 0700, file 0600, whatever the umask) and reused, so every process of
one deployment on one machine agrees without configuration. A multi-machine deployment sets the
variables. Imports nothing of Rasa."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot import paths

RASA_API_TOKEN = "RASA_TOKEN"  # Rasa's HTTP API (`rasa run --auth-token`): staff replies, tools, tests
ACTION_SERVER_TOKEN = "ACTION_SERVER_TOKEN"  # the Rasa server's calls to the action server
WEBCHAT_SESSION_KEY = "WEBCHAT_SESSION_KEY"  # signs the chat widget's session ids


def private_directory(directory: Path = paths.VAR_DIR) -> Path:
    """`directory`, created if missing, readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def secret(variable: str, directory: Path = paths.VAR_DIR) -> str:
    """The secret named `variable`: from the environment, else from var/<variable lowercased>,
    generated there (32 random bytes, hex) on first use."""
    value = os.environ.get(variable)
    if value:
        return value
    path = private_directory(directory) / variable.lower()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()
