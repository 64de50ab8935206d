"""Rasa's distributed setup on one machine (`make cluster`): several Rasa servers behind nginx.

- N Rasa servers (replicas), each `rasa run` as bot/stack.py runs one, on its own port, sharing
  the tracker store (PostgreSQL), the lock store (Redis, atomic across servers) and the event broker
  (RabbitMQ) of `endpoints.cluster.yml`, and socket.io's rooms (Redis, bot/channels/webchat.py);
- one action server, the demo page, and the staff consumer (`bot.staff.consumer`);
- nginx (`deploy/nginx.conf.template`) as the one entry: the page on `/`, the webhooks (REST,
  Matrix …) on `/webhooks/`, socket.io on `/socket.io/` (sticky by client address), and Rasa's
  HTTP API on a second, loopback-only port.

Every process is a child of this one; `Cluster.stop()` stops them all, nginx included. The same
configuration on several machines: README "Production topology".
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import aio_pika
import jinja2
import psycopg2
import redis
import yaml
from psycopg2 import sql

from bot.channels.webchat import REDIS_CHANNEL_KEY, REDIS_URL_KEY
from bot.paths import ENDPOINTS_VARIABLE
from bot.stack import (
    DEFAULT_HOST,
    RASA_MODEL,
    ROOT,
    Service,
    Stack,
    actions_command,
    free_port,
    rasa_command,
    server_environment,
    spawner,
    wait_for,
    web_command,
    write_credentials,
)
from bot.tokens import ACTION_SERVER_TOKEN, RASA_API_TOKEN, private_directory, secret, write_private
from bot.web.app import page_origins

logger = logging.getLogger(__name__)

CLUSTER_ENDPOINTS = ROOT / "endpoints.cluster.yml"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
STAFF_CONSUMER_MODULE = "bot.staff.consumer"  # mirroring and staff notices from the RabbitMQ events
DEFAULT_PORT = 8080
NGINX_FAIL_TIMEOUT = "10s"  # how long nginx skips a Rasa server that refused a connection
NGINX_PATHS = ("/usr/sbin", "/sbin", "/usr/local/sbin")

# endpoints.cluster.yml sections and keys
ACTION_ENDPOINT = "action_endpoint"
TRACKER_STORE = "tracker_store"
LOCK_STORE = "lock_store"
EVENT_BROKER = "event_broker"
DIALECT_KEY = "dialect"
POSTGRESQL = "postgresql"
DB_KEY = "db"
LOGIN_DB_KEY = "login_db"
KEY_PREFIX_KEY = "key_prefix"
QUEUES_KEY = "queues"
EXCHANGE_KEY = "exchange_name"

# One thread per computation in each Rasa server: N servers on N cores do not fight over them.
# TensorFlow (DIET) reads the TF_* variables, OpenMP and MKL (torch, numpy's BLAS) the others;
# the onnxruntime encoder is set to one thread in code (bot/embeddings/onnx_model.py).
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


@dataclass(frozen=True)
class SharedNames:
    """What one deployment (or one test run) owns in the shared services."""

    database: str
    key_prefix: str  # letters and digits only (Rasa's lock store rule)
    queue: str
    exchange: str

    @classmethod
    def unique(cls, stem: str = "rugpijntest") -> "SharedNames":
        """Names no other run uses (a test run's own database, keys, queue and exchange)."""
        token = f"{stem}{secrets.token_hex(4)}"
        return cls(database=token, key_prefix=token, queue=f"{token}_events", exchange=token)

    @classmethod
    def of(cls, endpoints: Dict[str, Any]) -> "SharedNames":
        return cls(
            database=endpoints[TRACKER_STORE][DB_KEY],
            key_prefix=endpoints[LOCK_STORE][KEY_PREFIX_KEY],
            queue=endpoints[EVENT_BROKER][QUEUES_KEY][0],
            exchange=endpoints[EVENT_BROKER][EXCHANGE_KEY],
        )

    @property
    def socketio_channel(self) -> str:
        return f"{self.key_prefix}:socketio"


def cluster_endpoints(actions_port: int, names: Optional[SharedNames] = None) -> Dict[str, Any]:
    """endpoints.cluster.yml with the action server's port and token (and other names)."""
    endpoints = yaml.safe_load(CLUSTER_ENDPOINTS.read_text(encoding="utf-8"))
    endpoints[ACTION_ENDPOINT]["url"] = f"http://127.0.0.1:{actions_port}/webhook"
    endpoints[ACTION_ENDPOINT]["headers"] = {"Authorization": f"Bearer {secret(ACTION_SERVER_TOKEN)}"}
    if names is not None:
        endpoints[TRACKER_STORE][DB_KEY] = names.database
        endpoints[LOCK_STORE][KEY_PREFIX_KEY] = names.key_prefix
        endpoints[EVENT_BROKER][QUEUES_KEY] = [names.queue]
        endpoints[EVENT_BROKER][EXCHANGE_KEY] = names.exchange
    return endpoints


def redis_url(lock_store: Dict[str, Any]) -> str:
    """The lock store's Redis as a URL (socket.io's client manager takes one)."""
    password = lock_store.get("password")
    credentials = f":{urllib.parse.quote(str(password), safe='')}@" if password else ""
    return f"redis://{credentials}{lock_store.get('url', 'localhost')}:{lock_store.get('port', 6379)}/{lock_store.get('db', 0)}"


def nginx_binary() -> str:
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), *NGINX_PATHS]))
    if found is None:
        raise FileNotFoundError("nginx is not installed: run `make nginx` (Debian's nginx)")
    return found


def write_nginx_config(directory: Path, listen: str, port: int, api_port: int, web_port: int, replica_ports: List[int]) -> Path:
    """deploy/nginx.conf.template rendered into `directory` (which also holds its pid, logs, temp files)."""
    template = jinja2.Template(NGINX_TEMPLATE.read_text(encoding="utf-8"), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = template.render(
        directory=str(directory), listen=listen, port=port, api_port=api_port, web_port=web_port,
        replica_ports=replica_ports, fail_timeout=NGINX_FAIL_TIMEOUT, as_root=os.geteuid() == 0,
    )
    return write_private(directory / "nginx.conf", text)


@dataclass
class Cluster(Stack):
    """The running cluster. `url` (and so `api_url`, `tracker`) is Rasa's HTTP API through nginx's
    loopback port; `public_url` the one entry (page, webhooks, socket.io)."""

    public_host: str = DEFAULT_HOST
    public_port: int = 0
    replica_ports: List[int] = field(default_factory=list)
    endpoints: Dict[str, Any] = field(default_factory=dict)
    nginx_dir: Optional[Path] = None

    @property
    def public_url(self) -> str:
        host = "127.0.0.1" if self.public_host in ("0.0.0.0", "::", "") else self.public_host
        return f"http://{host}:{self.public_port}"

    @property
    def rest_url(self) -> str:
        return f"{self.public_url}/webhooks/rest/webhook"

    @property
    def names(self) -> SharedNames:
        return SharedNames.of(self.endpoints)

    @property
    def replicas(self) -> List[Service]:
        return [service for service in self.services if service.name.startswith("rasa-")]

    def replica_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.replica_ports[index]}"

    @property
    def access_log(self) -> Path:
        assert self.nginx_dir is not None
        return self.nginx_dir / "access.log"


def start_cluster(
    replicas: int = 2,
    port: Optional[int] = None,
    names: Optional[SharedNames] = None,
    work_dir: Optional[Path] = None,
    log_dir: Optional[Path] = None,
    model: Path = RASA_MODEL,
    timeout: float = 300.0,
    env: Optional[Dict[str, str]] = None,
) -> Cluster:
    """Start the action server, `replicas` Rasa servers, the page, the staff consumer and nginx on
    `port` (HOST, default 127.0.0.1), and wait until they answer.
    `names`: the database, key prefix, queue and exchange (default: those of endpoints.cluster.yml)."""
    if replicas < 1:
        raise ValueError("a cluster needs at least one Rasa server")
    nginx = nginx_binary()
    port = port or free_port()
    actions_port, web_port, api_port = free_port(), free_port(), free_port()
    replica_ports = [free_port() for _ in range(replicas)]
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="rugpijn-cluster-"))
    nginx_dir = private_directory(work_dir / "nginx")
    host = os.environ.get("HOST", DEFAULT_HOST)

    endpoints = cluster_endpoints(actions_port, names)
    endpoints_file = write_private(work_dir / "endpoints.yml", yaml.safe_dump(endpoints))
    create_database(endpoints[TRACKER_STORE])
    shared = SharedNames.of(endpoints)
    socketio = {REDIS_URL_KEY: redis_url(endpoints[LOCK_STORE]), REDIS_CHANNEL_KEY: shared.socketio_channel}
    origins = page_origins(port)  # the page as browsers reach it: through nginx
    credentials = write_credentials(work_dir, origins, socketio)
    api_token = (env or {}).get(RASA_API_TOKEN) or secret(RASA_API_TOKEN)
    environment = server_environment({
        "RASA_URL": f"http://127.0.0.1:{api_port}",  # staff replies reach any Rasa server
        ENDPOINTS_VARIABLE: str(endpoints_file),
        RASA_API_TOKEN: api_token,
        ACTION_SERVER_TOKEN: secret(ACTION_SERVER_TOKEN),
        **{name: os.environ.get(name, value) for name, value in ONE_THREAD.items()},
        **(env or {}),
    })
    spawn = spawner(environment, log_dir)
    cluster = Cluster(
        rasa_port=api_port, actions_port=actions_port, api_token=api_token, web_port=web_port, spawn=spawn,
        public_host=host, public_port=port, replica_ports=replica_ports, endpoints=endpoints, nginx_dir=nginx_dir,
    )

    def start(name: str, command: List[str], health_url: str = "") -> Service:
        service = Service(name, command, health_url, spawn(name, command))
        cluster.services.append(service)
        return service

    try:
        start("actions", actions_command(actions_port, "127.0.0.1"), f"http://127.0.0.1:{actions_port}/health")
        for index, replica_port in enumerate(replica_ports):
            start(
                f"rasa-{index}",
                rasa_command(replica_port, endpoints_file, credentials, api_token, "127.0.0.1", model, origins),
                f"http://127.0.0.1:{replica_port}/status?token={urllib.parse.quote(api_token)}",
            )
        start("web", web_command(web_port, port, "127.0.0.1"), f"http://127.0.0.1:{web_port}/health")
        start("staff-consumer", [sys.executable, "-m", STAFF_CONSUMER_MODULE, "--endpoints", str(endpoints_file)])
        config = write_nginx_config(nginx_dir, host, port, api_port, web_port, replica_ports)
        start("nginx", [nginx, "-p", str(nginx_dir), "-c", str(config), "-e", str(nginx_dir / "error.log")],
              f"{cluster.public_url}/health")
        for service in cluster.services:
            if service.health_url:
                wait_for(service.health_url, service.process, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def running_cluster(**kwargs: Any) -> Iterator[Cluster]:
    cluster = start_cluster(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


def postgres_login(tracker_store: Dict[str, Any]) -> "psycopg2.extensions.connection":
    """A connection to the tracker store's `login_db` (autocommit: database statements)."""
    connection = psycopg2.connect(
        host=tracker_store.get("url"), port=tracker_store.get("port"), user=tracker_store.get("username"),
        password=tracker_store.get("password") or None, dbname=tracker_store.get(LOGIN_DB_KEY) or "postgres",
    )
    connection.autocommit = True
    return connection


def create_database(tracker_store: Dict[str, Any]) -> None:
    """The tracker store's PostgreSQL database, created when missing. Rasa's `login_db` does the
    same, but N servers starting at once race for it (one logs an error), and the staff consumer
    may connect before any of them."""
    if tracker_store.get(DIALECT_KEY) != POSTGRESQL:
        return
    with contextlib.closing(postgres_login(tracker_store)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (tracker_store[DB_KEY],))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tracker_store[DB_KEY])))
            logger.info("Created the database %s.", tracker_store[DB_KEY])


def drop_shared_state(endpoints: Dict[str, Any]) -> None:
    """Delete what a cluster left in the shared services: its database (WITH FORCE: open
    connections are closed), its Redis keys, its RabbitMQ queues and exchange. For test runs."""
    tracker_store, lock_store, broker = endpoints[TRACKER_STORE], endpoints[LOCK_STORE], endpoints[EVENT_BROKER]
    with contextlib.closing(postgres_login(tracker_store)) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(tracker_store[DB_KEY])))
    client = redis.Redis.from_url(redis_url(lock_store))
    try:
        keys = list(client.scan_iter(match=f"{lock_store[KEY_PREFIX_KEY]}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    asyncio.run(delete_broker_queues(broker))


async def delete_broker_queues(broker: Dict[str, Any]) -> None:
    connection = await aio_pika.connect(
        host=broker.get("url", "localhost"), port=int(broker.get("port", 5672)),
        login=broker.get("username", "guest"), password=broker.get("password", "guest"),
    )
    async with connection:
        channel = await connection.channel()
        for queue in broker.get(QUEUES_KEY) or []:
            await channel.queue_delete(queue)
        if broker.get(EXCHANGE_KEY):
            await channel.exchange_delete(broker[EXCHANGE_KEY])
