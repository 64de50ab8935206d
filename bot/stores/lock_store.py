"""A Redis lock store whose ticket lock is atomic across Rasa servers (replicas, Sanic workers).

**The race in the stock store.** Rasa 3.6's `RedisLockStore` keeps a conversation's `TicketLock`
as one JSON string and changes it in Python: `issue_ticket`, `finish_serving` and `update_lock`
each GET the JSON, edit it, and SET it back (RasaHQ/rasa#9213; fixed only in Rasa Pro). Two
replicas that receive messages of one conversation at the same moment both read "last ticket n",
both write "ticket n+1", and both find themselves first in line: they process the conversation at
the same time, and one tracker write overwrites the other. A stale write-back can equally drop a
waiting ticket (its message then fails with `LockError`) or bring back a finished one, and the
queue stalls behind it. tests/test_lock_store.py shows both with 8 processes on one conversation.

**How this store closes it.** Every change to a conversation's lock is one Lua script, which Redis
runs atomically, on four keys that share the hash tag `{conversation_id}`:
- `…:ticket`    the ticket counter (INCR). A new counter starts at Redis' clock in microseconds, so
                a ticket number is never issued twice, even after an idle conversation's keys
                were deleted: the number is the holder's fencing token.
- `…:queue`     sorted set of the live tickets, scored by number: arrival order.
- `…:deadlines` sorted set ticket -> expiry (ms, Redis' clock), set to now + `lock_lifetime`
                when the ticket is issued, at each poll of its waiter and when it is served.
                Every script first purges expired tickets: a crashed waiter or holder blocks
                the others for `lock_lifetime` at most, and live waiters are not dropped
                behind it. A waiter whose ticket expired anyway (it did not poll within
                `lock_lifetime`) gets Rasa's `LockError`.
- `…:holder`    the ticket being served, `SET … PX lock_lifetime`. Only the lowest live ticket
                can take it, and only when nobody holds it.
Release deletes the holder only if it still holds the caller's ticket (a late release of an
expired holder never frees its successor's lock); when no ticket is left, all four keys go.
Waiters poll every `wait_time_in_seconds` (Rasa's default 1 s), as the stock store does. Redis
errors surface as `LockError` (never a hang: the client has Rasa's 10 s socket timeout).

endpoints.yml (the keys of Rasa's `type: redis` lock store; the lifetime is Rasa's,
`TICKET_LOCK_LIFETIME`, default 60 s)::

    lock_store:
      type: bot.stores.lock_store.AtomicRedisLockStore
      url: 127.0.0.1
      port: 6379
      db: 0
      key_prefix: rugpijn      # alphanumeric, else Rasa's rule: ignored with a warning
      password: ${REDIS_PASSWORD}
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncGenerator, List, Optional, Text, Tuple

import redis
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import (
    DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX,
    DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
    LOCK_LIFETIME,
    LockError,
    LockStore,
)
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# Rasa's defaults for its `RedisLockStore` (same endpoints.yml keys, same values).
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_DB = 1
DEFAULT_WAIT_TIME_IN_SECONDS = 1.0

# The keys of one conversation: `<prefix>{<conversation id>}:<suffix>`.
COUNTER_SUFFIX = "ticket"
QUEUE_SUFFIX = "queue"
DEADLINES_SUFFIX = "deadlines"
HOLDER_SUFFIX = "holder"

# The counter and queue outlive their last ticket by this much (ms) before Redis drops them.
KEY_GRACE_MS = 1000

# What the acquire script answers.
ACQUIRED = 1
WAITING = 0
TICKET_EXPIRED = -1

# Shared by every script. KEYS: 1 counter, 2 queue, 3 deadlines, 4 holder. Ticket numbers are
# kept as decimal strings: Lua numbers are doubles whose tostring() would round them.
_LUA_COMMON = f"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function purge(now)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', now))
  for _, ticket in ipairs(expired) do
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('ZREM', KEYS[3], ticket)
  end
  local holder = redis.call('GET', KEYS[4])
  if holder and not redis.call('ZSCORE', KEYS[2], holder) then
    redis.call('DEL', KEYS[4])
  end
end

local function touch(now)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return
  end
  local ttl = math.max(1, tonumber(last[2]) - now + {KEY_GRACE_MS})
  for i = 1, 3 do
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
"""

# ARGV: lifetime ms. Returns the new ticket number (string).
_LUA_ISSUE = (
    _LUA_COMMON
    + """
local now = now_ms()
purge(now)
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])))
end
local ticket = string.format('%d', redis.call('INCR', KEYS[1]))
redis.call('ZADD', KEYS[2], ticket, ticket)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), ticket)
touch(now)
return ticket
"""
)

# ARGV: ticket, lifetime ms. Returns {status, tickets ahead or the holder's expiry in ms}.
_LUA_ACQUIRE = (
    _LUA_COMMON
    + f"""
local now = now_ms()
purge(now)
local ticket = ARGV[1]
if not redis.call('ZSCORE', KEYS[2], ticket) then
  touch(now)
  return {{{TICKET_EXPIRED}, 0}}
end
local holder = redis.call('GET', KEYS[4])
if holder == ticket then
  return {{{ACQUIRED}, tonumber(redis.call('ZSCORE', KEYS[3], ticket))}}
end
local lifetime = tonumber(ARGV[2])
local ahead = redis.call('ZRANK', KEYS[2], ticket)
if holder or ahead > 0 then
  redis.call('ZADD', KEYS[3], now + lifetime, ticket)
  touch(now)
  return {{{WAITING}, ahead}}
end
redis.call('SET', KEYS[4], ticket, 'PX', lifetime)
redis.call('ZADD', KEYS[3], now + lifetime, ticket)
touch(now)
return {{{ACQUIRED}, now + lifetime}}
"""
)

# ARGV: ticket. Returns {1 if the caller held the lock, tickets left}.
_LUA_RELEASE = (
    _LUA_COMMON
    + """
local released = 0
if redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('DEL', KEYS[4])
  released = 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local now = now_ms()
purge(now)
touch(now)
return {released, redis.call('ZCARD', KEYS[2])}
"""
)

# No ARGV. Returns the live tickets as {ticket, expiry ms, ...}.
_LUA_SNAPSHOT = (
    _LUA_COMMON
    + """
local now = now_ms()
purge(now)
touch(now)
return redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
"""
)

# ARGV: ticket, expiry ms, ... (replaces the queue; keeps the holder if its ticket stays).
_LUA_REPLACE = (
    _LUA_COMMON
    + """
redis.call('DEL', KEYS[2], KEYS[3])
local highest = 0
for i = 1, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
  highest = math.max(highest, tonumber(ARGV[i]))
end
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
if highest > counter then
  redis.call('SET', KEYS[1], string.format('%d', highest))
end
local now = now_ms()
purge(now)
touch(now)
return redis.call('ZCARD', KEYS[2])
"""
)


@dataclass(frozen=True)
class RedisSettings:
    """The connection keys of Rasa's `RedisLockStore` (endpoints.yml: `url` is the host)."""

    host: Text = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: int = DEFAULT_DB
    username: Optional[Text] = None
    password: Optional[Text] = None
    use_ssl: bool = False
    ssl_certfile: Optional[Text] = None
    ssl_keyfile: Optional[Text] = None
    ssl_ca_certs: Optional[Text] = None
    key_prefix: Optional[Text] = None
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_IN_SECONDS

    @classmethod
    def from_endpoint_config(cls, endpoint_config: EndpointConfig) -> "RedisSettings":
        """Unknown keys raise `TypeError`, as Rasa's `type: redis` does."""
        kwargs = dict(endpoint_config.kwargs)
        if endpoint_config.url:
            kwargs["host"] = endpoint_config.url
        return cls(**kwargs)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=self.host,
            port=int(self.port),
            db=int(self.db),
            username=self.username,
            password=self.password,
            ssl=self.use_ssl,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            ssl_ca_certs=self.ssl_ca_certs,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
        )


def key_prefix_for(key_prefix: Optional[Text]) -> Text:
    """Rasa's rule: an alphanumeric prefix becomes `<prefix>:lock:`, anything else is ignored."""
    if not key_prefix:
        return DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX
    if isinstance(key_prefix, str) and key_prefix.isalnum():
        return f"{key_prefix}:{DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX}"
    logger.warning(
        "Ignoring the non-alphanumeric lock store key prefix; using '%s'.",
        DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX,
    )
    return DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX


def milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def held_lock(conversation_id: Text, ticket: int, expires_ms: int) -> TicketLock:
    """What `lock()` yields: Rasa's `TicketLock` with the held ticket."""
    return TicketLock(conversation_id, deque([Ticket(ticket, expires_ms / 1000)]))


class AtomicRedisLockStore(LockStore):
    """Rasa's Redis ticket lock, with each step one atomic Lua script (see the module docstring)."""

    def __init__(
        self, endpoint_config: Optional[EndpointConfig] = None, **settings: Any
    ) -> None:
        """Built by Rasa with `endpoint_config=` (endpoints.yml); or with `RedisSettings` keys."""
        if endpoint_config is not None:
            config = RedisSettings.from_endpoint_config(endpoint_config)
        else:
            config = RedisSettings(**settings)
        self.red = config.client()
        self.key_prefix = key_prefix_for(config.key_prefix)
        self._issue = self.red.register_script(_LUA_ISSUE)
        self._acquire = self.red.register_script(_LUA_ACQUIRE)
        self._release = self.red.register_script(_LUA_RELEASE)
        self._snapshot = self.red.register_script(_LUA_SNAPSHOT)
        self._replace = self.red.register_script(_LUA_REPLACE)
        super().__init__()

    def keys_for(self, conversation_id: Text) -> List[Text]:
        """Counter, queue, deadlines, holder: one hash tag, so one slot on a cluster too."""
        base = f"{self.key_prefix}{{{conversation_id}}}:"
        return [
            base + suffix
            for suffix in (COUNTER_SUFFIX, QUEUE_SUFFIX, DEADLINES_SUFFIX, HOLDER_SUFFIX)
        ]

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = DEFAULT_WAIT_TIME_IN_SECONDS,
    ) -> AsyncGenerator[TicketLock, None]:
        """Holds the conversation's lock for at most `lock_lifetime` seconds; polls every
        `wait_time_in_seconds` while others are ahead. `LockError` when the ticket expires
        while waiting or Redis fails."""
        ticket = self.issue_ticket(conversation_id, lock_lifetime)
        try:
            yield await self._acquire_lock(
                conversation_id, ticket, wait_time_in_seconds, lock_lifetime
            )
        finally:
            self.cleanup(conversation_id, ticket)

    def issue_ticket(
        self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME
    ) -> int:
        """Queues a new ticket that expires after `lock_lifetime` seconds unless it is served."""
        try:
            ticket = self._issue(
                keys=self.keys_for(conversation_id), args=[milliseconds(lock_lifetime)]
            )
        except redis.RedisError as error:
            raise self._lock_error(conversation_id, "issuing a ticket", error) from error
        logger.debug("Issued ticket %s for conversation '%s'.", int(ticket), conversation_id)
        return int(ticket)

    async def _acquire_lock(
        self,
        conversation_id: Text,
        ticket: int,
        wait_time_in_seconds: float,
        lock_lifetime: float = LOCK_LIFETIME,
    ) -> TicketLock:
        while True:
            status, value = self.try_acquire(conversation_id, ticket, lock_lifetime)
            if status == ACQUIRED:
                logger.debug("Acquired lock for conversation '%s'.", conversation_id)
                return held_lock(conversation_id, ticket, value)
            if status == TICKET_EXPIRED:
                raise LockError(
                    f"Could not acquire lock for conversation_id '{conversation_id}': "
                    f"ticket {ticket} expired while waiting."
                )
            logger.debug(
                "Conversation '%s': %d item(s) ahead, retrying in %s s.",
                conversation_id,
                value,
                wait_time_in_seconds,
            )
            await asyncio.sleep(wait_time_in_seconds)

    def try_acquire(
        self, conversation_id: Text, ticket: int, lock_lifetime: float = LOCK_LIFETIME
    ) -> Tuple[int, int]:
        """One attempt: (`ACQUIRED`, expiry ms) / (`WAITING`, tickets ahead) / (`TICKET_EXPIRED`, 0)."""
        try:
            status, value = self._acquire(
                keys=self.keys_for(conversation_id),
                args=[ticket, milliseconds(lock_lifetime)],
            )
        except redis.RedisError as error:
            raise self._lock_error(conversation_id, "acquiring the lock", error) from error
        return int(status), int(value)

    def release(self, conversation_id: Text, ticket_number: int) -> bool:
        """Drops the ticket; frees the lock only if this ticket holds it (the fencing check).
        Deletes the conversation's keys when no ticket is left. True if the ticket held it."""
        try:
            released, _ = self._release(
                keys=self.keys_for(conversation_id), args=[ticket_number]
            )
        except redis.RedisError as error:
            raise self._lock_error(conversation_id, "releasing the lock", error) from error
        return bool(released)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Rasa's name for `release`."""
        self.release(conversation_id, ticket_number)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """`release` that never raises: if Redis fails, the ticket expires by itself."""
        try:
            self.release(conversation_id, ticket_number)
        except LockError as error:
            logger.warning(
                "Could not release the lock of conversation '%s' (%s); it expires by itself.",
                conversation_id,
                type(error.__cause__).__name__,
            )

    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        """A snapshot of the live tickets (first = served or next), None if there are none."""
        try:
            flat = self._snapshot(keys=self.keys_for(conversation_id))
        except redis.RedisError as error:
            raise self._lock_error(conversation_id, "reading the lock", error) from error
        tickets = [
            Ticket(int(number), float(expires) / 1000)
            for number, expires in zip(flat[::2], flat[1::2])
        ]
        tickets.sort(key=lambda ticket: ticket.number)
        return TicketLock(conversation_id, deque(tickets)) if tickets else None

    def save_lock(self, lock: TicketLock) -> None:
        """Replaces the conversation's tickets with `lock`'s, atomically (administration and
        Rasa's generic helpers; `lock()` never calls it)."""
        args: List[Any] = []
        for ticket in lock.tickets:
            args += [ticket.number, int(ticket.expires * 1000)]
        try:
            self._replace(keys=self.keys_for(lock.conversation_id), args=args)
        except redis.RedisError as error:
            raise self._lock_error(lock.conversation_id, "saving the lock", error) from error

    def delete_lock(self, conversation_id: Text) -> None:
        """Forcibly removes the conversation's lock and queue."""
        deleted = self.red.delete(*self.keys_for(conversation_id))
        self._log_deletion(conversation_id, bool(deleted))

    def update_lock(self, conversation_id: Text) -> None:
        """Purges expired tickets (every script does; kept for Rasa's interface)."""
        self.get_lock(conversation_id)

    def is_someone_waiting(self, conversation_id: Text) -> bool:
        return self.get_lock(conversation_id) is not None

    @staticmethod
    def _lock_error(conversation_id: Text, step: Text, error: redis.RedisError) -> LockError:
        logger.error(
            "Lock store: Redis failed while %s for conversation '%s' (%s).",
            step,
            conversation_id,
            type(error).__name__,
        )
        return LockError(
            f"Error while {step} for conversation_id '{conversation_id}': "
            f"{type(error).__name__}: {error}"
        )
