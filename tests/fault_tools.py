"""Helpers of the shared-state and fault tests (tests/test_shared_state.py, tests/test_faults.py):
a PostgreSQL database, a Redis key prefix and RabbitMQ names of the test's own, removed afterwards;
a TCP proxy that can cut a service off; a Redis server of the test's own; a local HTTP server that
records what a staff webhook receives. Everything on loopback."""
from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set

import psycopg2
import redis
from aiohttp import web
from sqlalchemy.engine import URL

from bot.stack import free_port

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_PORT = 6379
RABBITMQ_PORT = 5672


def unique_name(mark: str) -> str:
    """`mark` + 12 hex digits: alphanumeric (Redis prefixes), a valid database and queue name."""
    return f"{mark}{secrets.token_hex(6)}"


def _admin_command(statement: str) -> None:
    connection = psycopg2.connect(dbname="postgres", **POSTGRES)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def postgres_database(mark: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped afterwards with every connection to it."""
    name = unique_name(mark)
    _admin_command(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin_command(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_url(database: str, port: int = POSTGRES["port"]) -> URL:
    return URL.create("postgresql", username=POSTGRES["user"], host="127.0.0.1", port=port, database=database)


def tracker_store_section(database: str, port: int = POSTGRES["port"]) -> Dict[str, object]:
    """endpoints.yml `tracker_store:` on PostgreSQL (our store, Rasa's SQL keys)."""
    return {"type": "bot.stores.tracker_store.PrivateSQLTrackerStore", "dialect": "postgresql",
            "url": "127.0.0.1", "port": port, "db": database, "username": POSTGRES["user"], "password": ""}


def lock_store_section(prefix: str, port: int = REDIS_PORT) -> Dict[str, object]:
    return {"type": "bot.stores.lock_store.AtomicRedisLockStore", "url": "127.0.0.1", "port": port, "db": 0,
            "key_prefix": prefix}


def delete_redis_keys(prefix: str, port: int = REDIS_PORT) -> int:
    client = redis.Redis(host="127.0.0.1", port=port, db=0)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return len(keys)


class TcpProxy:
    """A TCP proxy on a free loopback port to `target_port`, in a thread of its own. `cut()` stops
    listening and aborts every open connection (the service looks down: connections are refused);
    `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: Optional[asyncio.AbstractServer] = None
        self.connections: Set[asyncio.Transport] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.restore()

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections.update({writer.transport, upstream_writer.transport})
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        self.connections.difference_update({writer.transport, upstream_writer.transport})

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for transport in list(self.connections):
            transport.abort()
        self.connections.clear()

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._cut())

    async def _cancel_all(self) -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.cut()
        self._call(self._cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class RedisServer:
    """A redis-server child process of the test's own (nothing on disk), to kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server did not listen on {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class WebhookRecorder:
    """A local HTTP server standing in for a Slack incoming webhook: records each posted text."""

    def __init__(self) -> None:
        self.received: List[str] = []
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner: Optional[web.AppRunner] = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _post(self, request: web.Request) -> web.Response:
        self.received.append((await request.json())["text"])
        return web.json_response({"ok": True})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
