"""Hand-off to staff: the redacted transcript that goes with a notice."""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Sequence

HANDOFF_SLOT = "handoff_active"
TRANSCRIPT_TURNS = 6
LINE_CHARS = 300

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
# A run of digits with the separators phone numbers use; redacted when it holds 9 or more digits
# (Dutch numbers have 10; dates and prices have fewer).
PHONE_LIKE = re.compile(r"(?<![\w@])(?:\+|00)?\d[\d \t().-]{6,}\d(?!\w)")


def redact(text: str) -> str:
    """The text with e-mail addresses and phone numbers replaced."""
    text = EMAIL.sub("[e-mailadres]", text)
    return PHONE_LIKE.sub(lambda m: "[telefoonnummer]" if sum(c.isdigit() for c in m.group()) >= 9 else m.group(), text)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def transcript(events: Iterable[Dict[str, Any]], extra_bot_texts: Sequence[str] = (), turns: int = TRANSCRIPT_TURNS) -> List[str]:
    """The last `turns` messages of a conversation, redacted, one line each ("bezoeker: …", "assistent: …")."""
    lines = [
        f"{'bezoeker' if event['event'] == 'user' else 'assistent'}: {_one_line(redact(event.get('text') or ''))}"
        for event in events
        if event.get("event") in ("user", "bot") and event.get("text")
    ]
    lines += [f"assistent: {_one_line(redact(text))}" for text in extra_bot_texts if text]
    return lines[-turns:]

