"""Hand-off notices are rate-limited, per conversation and in total, so that nobody can flood the
staff room (e.g. "/request_human" from fresh conversation ids). Sliding windows in this process's
memory. Imports nothing of Rasa."""
from __future__ import annotations

import os
import time
from collections import defaultdict, deque
from typing import Deque, Dict, Optional

WINDOW_S = float(os.environ.get("HANDOFF_WINDOW_S", 600))
PER_CONVERSATION = int(os.environ.get("HANDOFF_PER_CONVERSATION", 3))
TOTAL = int(os.environ.get("HANDOFF_TOTAL", 30))


class NoticeLimiter:
    """At most `per_conversation` notices per conversation and `total` in all per `window_s`."""

    def __init__(self, per_conversation: int = PER_CONVERSATION, total: int = TOTAL, window_s: float = WINDOW_S) -> None:
        self.per_conversation = per_conversation
        self.total = total
        self.window_s = window_s
        self._all: Deque[float] = deque()
        self._by_conversation: Dict[str, Deque[float]] = defaultdict(deque)
        self._summary_sent_until = 0.0

    def _trim(self, times: Deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def allow(self, conversation_id: str, now: Optional[float] = None) -> bool:
        """True (and counted) when a notice for `conversation_id` may go out now."""
        now = time.monotonic() if now is None else now
        mine = self._by_conversation[conversation_id]
        self._trim(self._all, now)
        self._trim(mine, now)
        if len(mine) >= self.per_conversation or len(self._all) >= self.total:
            return False
        mine.append(now)
        self._all.append(now)
        return True

    def total_reached(self, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        self._trim(self._all, now)
        return len(self._all) >= self.total

    def summary_due(self, now: Optional[float] = None) -> bool:
        """True once per window while the total limit holds notices back (staff get one summary)."""
        now = time.monotonic() if now is None else now
        if now < self._summary_sent_until:
            return False
        self._summary_sent_until = now + self.window_s
        return True


NOTICE_LIMITER = NoticeLimiter()
