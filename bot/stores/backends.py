"""Which shared backends the endpoints file selects for the staff state that several processes
must see alike (the staff-notice outbox, the hand-off rate limits, the Matrix transactions seen).

The one rule, read from the endpoints file the Rasa server runs with (bot.paths.endpoints_path(),
RASA_ENDPOINTS):
- `tracker_store` SQL with `dialect: postgresql` → the staff outbox is a table in that database;
  otherwise it stays the local SQLite file (STAFF_OUTBOX, default var/outbox.db).
- `lock_store` of a Redis type (`type: redis` or `bot.stores.lock_store.AtomicRedisLockStore`) →
  the rate limits and the Matrix transactions seen are kept in that Redis, under the lock store's
  `key_prefix`; otherwise in this process's memory (`make run`: one process).

Imports nothing of Rasa: the action server and the staff consumer use it too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

import redis
import yaml
from sqlalchemy.engine import URL, make_url

from bot import paths

TRACKER_STORE_SECTION = "tracker_store"
LOCK_STORE_SECTION = "lock_store"
EVENT_BROKER_SECTION = "event_broker"

POSTGRESQL_DIALECTS = ("postgresql", "postgres")
REDIS_LOCK_STORE_TYPES = ("redis", "bot.stores.lock_store.AtomicRedisLockStore")

# Rasa's defaults for its Redis lock store (rasa/core/lock_store.py), kept here without Rasa.
REDIS_DEFAULT_HOST = "localhost"
REDIS_DEFAULT_PORT = 6379
REDIS_DEFAULT_DB = 1
REDIS_DEFAULT_PREFIX = "rasa"  # used when the lock store has no (alphanumeric) key_prefix
REDIS_SOCKET_TIMEOUT_S = 10.0


def endpoints_config(path: Optional[Path] = None) -> Dict[str, Any]:
    """The endpoints file (default: the one the Rasa server runs with), ${VARIABLES} filled in from
    the environment as Rasa does; {} when the file is missing."""
    path = path or paths.endpoints_path()
    if not path.exists():
        return {}
    return yaml.safe_load(os.path.expandvars(path.read_text(encoding="utf-8"))) or {}


def sql_url(config: Mapping[str, Any]) -> URL:
    """The database URL of a SQL `tracker_store:` section, as Rasa's `SQLTrackerStore.get_db_url`
    builds it (a complete URL in `url` wins; the port may be part of `url`)."""
    host = config.get("url")
    if host and "://" in str(host):
        return make_url(str(host))
    port = config.get("port")
    if host:
        parsed = urlsplit(f"scheme://{host}")
        port = parsed.port or port
        host = parsed.hostname or host
    return URL.create(
        str(config.get("dialect") or "sqlite"),
        username=config.get("username"),
        password=config.get("password"),
        host=host,
        port=int(port) if port is not None else None,
        database=str(config.get("db") or "rasa.db"),
        query=dict(config.get("query") or {}),
    )


def shared_sql_url(endpoints: Mapping[str, Any]) -> Optional[URL]:
    """The tracker store's PostgreSQL URL, when the tracker store is SQL on PostgreSQL; else None."""
    section = endpoints.get(TRACKER_STORE_SECTION) or {}
    store_type = str(section.get("type") or "").lower()
    if not store_type or store_type in ("redis", "mongod", "dynamo", "memory", "in_memory"):
        return None
    url = sql_url(section)
    return url if url.get_backend_name() in POSTGRESQL_DIALECTS else None


def redis_client(section: Mapping[str, Any], default_db: int, **options: Any) -> "redis.Redis":
    """A client for the Redis of an endpoints section (Rasa's keys: url, port, db, username,
    password, use_ssl, ssl_*; `default_db` when it names none: Rasa's lock store uses 1, its
    tracker store 0), with extra `options` for redis-py."""
    return redis.Redis(
        host=section.get("url") or REDIS_DEFAULT_HOST,
        port=int(section.get("port") or REDIS_DEFAULT_PORT),
        db=int(section.get("db") if section.get("db") is not None else default_db),
        username=section.get("username"),
        password=section.get("password"),
        ssl=bool(section.get("use_ssl", False)),
        ssl_certfile=section.get("ssl_certfile"),
        ssl_keyfile=section.get("ssl_keyfile"),
        ssl_ca_certs=section.get("ssl_ca_certs"),
        **options,
    )


def shared_redis(endpoints: Mapping[str, Any]) -> Optional["SharedRedis"]:
    """The lock store's Redis with its key prefix, when a Redis lock store is configured; else None."""
    section = endpoints.get(LOCK_STORE_SECTION) or {}
    if str(section.get("type") or "") not in REDIS_LOCK_STORE_TYPES:
        return None
    client = redis_client(section, REDIS_DEFAULT_DB, socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                          socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S)
    prefix = section.get("key_prefix")
    return SharedRedis(client, str(prefix) if prefix and str(prefix).isalnum() else REDIS_DEFAULT_PREFIX)


class SharedRedis:
    """A Redis client and the deployment's key prefix: `key("ratelimit", "all")` →
    `<prefix>:ratelimit:all` (next to the lock store's `<prefix>:lock:…`)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))
