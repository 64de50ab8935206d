"""The demo page app and the socket.io channel's origin setting, without a running stack."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from markupsafe import escape

from bot.channels.webchat import WebchatInput, allowed_origins
from bot.knowledge_base import load_knowledge_base
from bot.stack import WEBCHAT_CHANNEL, write_credentials
from bot.web.app import WEBCHAT_BUNDLE, WebConfig, content_security_policy, create_app, host_name

pytestmark = pytest.mark.skipif(not WEBCHAT_BUNDLE.exists(), reason="node_modules missing: run `make install`")


async def fetch(config: WebConfig, path: str, headers: dict | None = None):
    async with TestClient(TestServer(create_app(config))) as client:
        response = await client.get(path, headers=headers or {})
        return response.status, response.headers, await response.read()


def page_config(page: str) -> dict:
    match = re.search(r'<script id="webchat-config" type="application/json">(.*?)</script>', page, re.S)
    assert match
    return json.loads(match.group(1))


async def test_page_shows_the_article_from_the_knowledge_base():
    status, headers, body = await fetch(WebConfig(), "/")
    page = body.decode()
    assert status == 200
    kb = load_knowledge_base()
    for item in kb.items:
        assert escape(item.heading) in page
        for paragraph in item.paragraphs:
            assert escape(paragraph) in page
    for source in kb.sources:
        assert escape(source.text) in page
    assert "digitale assistent" in page and "geen diagnose" in page
    assert headers["Cache-Control"] == "no-cache"


async def test_page_loads_nothing_from_elsewhere():
    _, headers, body = await fetch(WebConfig(rasa_port=5999), "/")
    page = body.decode()
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/static/") or url.startswith("data:"), url
    assert "<script>" not in page  # no inline script: the CSP allows none
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    assert "connect-src 'self' http://127.0.0.1:5999 ws://127.0.0.1:5999" in policy


async def test_widget_is_configured_in_dutch_with_the_rasa_port():
    _, _, body = await fetch(WebConfig(rasa_port=5999), "/")
    widget = page_config(body.decode())["widget"]
    assert widget["socketUrl"] == "http://127.0.0.1:5999"  # the page's host, Rasa's port
    assert widget["initPayload"] == "/session_start"
    assert widget["inputTextFieldHint"] == "Typ je vraag…"
    _, _, body = await fetch(WebConfig(socket_url="https://bot.example.nl/"), "/")
    assert page_config(body.decode())["widget"]["socketUrl"] == "https://bot.example.nl"


async def test_static_files_are_cached_by_version():
    _, _, body = await fetch(WebConfig(), "/")
    bundle_url = re.search(r'src="(/static/webchat\.js\?v=(\w+))"', body.decode())
    status, headers, bundle = await fetch(WebConfig(), bundle_url.group(1))
    assert status == 200 and b"fonts.googleapis" not in bundle
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = await fetch(WebConfig(), "/static/webchat.js?v=old")
    assert headers["Cache-Control"] == "no-cache"
    status, _, _ = await fetch(WebConfig(), "/static/webchat.js", {"If-None-Match": f'"{bundle_url.group(2)}"'})
    assert status == 304
    status, _, _ = await fetch(WebConfig(), "/static/../app.py")
    assert status == 404


@pytest.mark.parametrize(
    "header, expected",
    [("localhost:8000", "localhost"), ("[::1]:8000", "[::1]"), ("127.0.0.1", "127.0.0.1"),
     ('evil";x:1', "localhost"), ("a b:1", "localhost")],
)
def test_host_name_from_the_host_header(header, expected):
    assert host_name(header) == expected


def test_policy_blocks_inline_script_and_javascript_urls():
    policy = content_security_policy("https://bot.example.nl")
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "wss://bot.example.nl" in policy


@pytest.mark.parametrize(
    "configured, expected",
    [(None, None), ([], None), ("https://a.nl", ["https://a.nl"]), (["https://a.nl/", " http://b.nl:8000"],
     ["https://a.nl", "http://b.nl:8000"]), (["https://a.nl", "*"], "*")],
)
def test_allowed_origins(configured, expected):
    assert allowed_origins(configured) == expected


async def connects(credentials: dict, environ: dict) -> bool:
    channel = WebchatInput.from_credentials(credentials)
    assert channel.name() == "socketio"

    async def on_new_message(message):  # pragma: no cover - never called here
        return None

    channel.blueprint(on_new_message)
    assert channel.sio.eio.cors_allowed_origins == []  # CORS headers stay Rasa's (--cors)
    return await channel.sio.handlers["/"]["connect"]("sid", environ, None)


@pytest.mark.parametrize(
    "allowed, origin, expected",
    [(["https://a.nl"], "https://a.nl", True), (["https://a.nl"], "https://evil.example", False),
     (["https://a.nl"], None, True), (None, "http://rasa:5005", True), (None, "https://a.nl", False),
     ("*", "https://evil.example", True)],
)
async def test_channel_refuses_pages_from_other_origins(allowed, origin, expected):
    environ = {"HTTP_HOST": "rasa:5005", "wsgi.url_scheme": "http"}
    if origin:
        environ["HTTP_ORIGIN"] = origin
    credentials = {"session_persistence": True, "cors_allowed_origins": allowed}
    assert await connects(credentials, environ) is expected


def test_credentials_file_allows_the_demo_page(tmp_path: Path):
    path = write_credentials(tmp_path, ["http://localhost:8123"])
    section = yaml.safe_load(path.read_text())[WEBCHAT_CHANNEL]
    assert section["session_persistence"] is True
    assert "http://localhost:8123" in section["cors_allowed_origins"]
    assert "*" not in section["cors_allowed_origins"]
