"""Hand-off notices are rate-limited, per conversation and in total, so that nobody can flood the
staff room (e.g. "/request_human" from fresh conversation ids). Sliding windows: in this process's
memory (`NoticeLimiter`, `make run`), or, when the endpoints file configures a Redis lock store
(bot/stores/backends.py), in that Redis (`RedisNoticeLimiter`), so that every action server of a
deployment counts the same notices. Imports nothing of Rasa."""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Deque, Dict, Optional, Protocol

import redis

from bot.stores.backends import SharedRedis, endpoints_config, shared_redis

logger = logging.getLogger(__name__)

WINDOW_S = float(os.environ.get("HANDOFF_WINDOW_S", 600))
PER_CONVERSATION = int(os.environ.get("HANDOFF_PER_CONVERSATION", 3))
TOTAL = int(os.environ.get("HANDOFF_TOTAL", 30))

# Redis keys under the lock store's prefix: `<prefix>:ratelimit:conversation:<id>` and
# `<prefix>:ratelimit:all` (sorted sets, member → time), `<prefix>:ratelimit:summary` (a flag that
# lives one window).
RATE_LIMIT_PART = "ratelimit"


class Limiter(Protocol):
    window_s: float

    def allow(self, conversation_id: str, now: Optional[float] = None) -> bool: ...

    def total_reached(self, now: Optional[float] = None) -> bool: ...

    def summary_due(self, now: Optional[float] = None) -> bool: ...


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


# KEYS: 1 the conversation's window, 2 the total window. ARGV: now, window, per conversation,
# total, a unique member. Trims both windows, then counts the notice in both or in neither.
_LUA_ALLOW = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) or redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[5])
local ttl = math.ceil(window * 1000)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

# KEYS: 1 the total window. ARGV: now, window. The notices counted in the window.
_LUA_COUNT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
"""


class RedisNoticeLimiter:
    """`NoticeLimiter`'s windows as Redis sorted sets, shared by every process on this Redis: each
    check is one Lua script (atomic); the summary flag is `SET NX PX <window>`. Times are wall-clock
    seconds (processes on several machines share them)."""

    def __init__(self, shared: SharedRedis, per_conversation: int = PER_CONVERSATION, total: int = TOTAL,
                 window_s: float = WINDOW_S) -> None:
        self.shared = shared
        self.per_conversation = per_conversation
        self.total = total
        self.window_s = window_s
        self._allow = shared.client.register_script(_LUA_ALLOW)
        self._count = shared.client.register_script(_LUA_COUNT)

    def key(self, *parts: str) -> str:
        return self.shared.key(RATE_LIMIT_PART, *parts)

    def allow(self, conversation_id: str, now: Optional[float] = None) -> bool:
        """True (and counted) when a notice for `conversation_id` may go out now. While Redis fails,
        True: a hand-off or escalation notice reaching staff matters more than the flood limit."""
        now = time.time() if now is None else now
        keys = [self.key("conversation", conversation_id), self.key("all")]
        args = [repr(now), repr(self.window_s), self.per_conversation, self.total, f"{now!r}:{uuid.uuid4().hex}"]
        try:
            return bool(self._allow(keys=keys, args=args))
        except redis.RedisError as error:
            logger.error("Hand-off rate limits unavailable (%s): notice for %s let through", type(error).__name__, conversation_id)
            return True

    def total_reached(self, now: Optional[float] = None) -> bool:
        now = time.time() if now is None else now
        return int(self._count(keys=[self.key("all")], args=[repr(now), repr(self.window_s)])) >= self.total

    def summary_due(self, now: Optional[float] = None) -> bool:
        """True once per window, across every process, while the total limit holds notices back."""
        return bool(self.shared.client.set(self.key("summary"), "1", nx=True, px=max(1, int(self.window_s * 1000))))


def limiter_for(endpoints_file: Optional[Path] = None) -> Limiter:
    """The limiter the endpoints file selects: Redis with a Redis lock store, else memory."""
    shared = shared_redis(endpoints_config(endpoints_file))
    return RedisNoticeLimiter(shared) if shared is not None else NoticeLimiter()


_LIMITER: Optional[Limiter] = None


def default_limiter() -> Limiter:
    """This process's limiter, as the endpoints file it runs with (RASA_ENDPOINTS) selects."""
    global _LIMITER
    if _LIMITER is None:
        _LIMITER = limiter_for()
    return _LIMITER

