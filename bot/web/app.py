"""The demo web page: the article, readable, with the rasa-webchat widget in the corner.

Everything the page loads comes from this app (no CDN, no web fonts): its own CSS and script, and
the rasa-webchat bundle from node_modules (installed by `make install` from package-lock.json).
The widget talks to the Rasa server's socket.io channel; its URL is configured here, never in the
page: by default the page's own host name on the Rasa port, or a fixed `socket_url`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import jinja2
import yaml
from aiohttp import web
from babel.dates import format_date
from babel.numbers import format_currency

from bot import paths
from bot.knowledge_base import KnowledgeBase, load_knowledge_base
from bot.privacy.retention import retention_from_env
from bot.web import staff

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
SITE_SETTINGS = WEB_DIR / "site.yml"
WEBCHAT_BUNDLE = paths.WEBCHAT_BUNDLE
WEBCHAT_ASSET = "webchat.js"
LOCALE = "nl_NL"

# rasa-webchat's CSS imports the Inter font from Google Fonts; the page uses system fonts instead.
REMOTE_CSS_IMPORT = re.compile(rb'@import url\((?:https?:)?//[^)"]*\);?')
ONE_YEAR = 365 * 24 * 3600
HOST_NAME = re.compile(r"^[A-Za-z0-9.-]+$|^[0-9A-Fa-f:.]+$")  # a DNS name or an IP address
CONTENT_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class WebConfig:
    """Where the widget finds the assistant."""

    rasa_port: int = 5005
    socket_url: Optional[str] = None  # fixed URL of the Rasa server; default: page host + rasa_port
    knowledge_base: Path = field(default_factory=paths.knowledge_base_path)
    site_settings: Path = SITE_SETTINGS
    webchat_bundle: Path = WEBCHAT_BUNDLE


CONFIG_KEY = web.AppKey("config", WebConfig)
SETTINGS_KEY = web.AppKey("settings", dict)
ASSETS_KEY = web.AppKey("assets", dict)


@dataclass(frozen=True)
class Asset:
    """A static file held in memory, addressed by a content hash so it can be cached for a year."""

    body: bytes
    content_type: str

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]


def without_remote_imports(bundle: bytes) -> bytes:
    """The webchat bundle with its CSS `@import url(https://…)` (web fonts) removed."""
    return REMOTE_CSS_IMPORT.sub(b"", bundle)


def load_assets(webchat_bundle: Path) -> Dict[str, Asset]:
    if not webchat_bundle.exists():
        raise FileNotFoundError(f"{webchat_bundle} is missing: run `make install` (npm ci)")
    assets = {
        path.name: Asset(path.read_bytes(), CONTENT_TYPES[path.suffix])
        for path in sorted(STATIC_DIR.iterdir())
        if path.suffix in CONTENT_TYPES
    }
    assets[WEBCHAT_ASSET] = Asset(without_remote_imports(webchat_bundle.read_bytes()), CONTENT_TYPES[".js"])
    return assets


def load_site_settings(path: Path = SITE_SETTINGS) -> Dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def host_name(host_header: str, default: str = "localhost") -> str:
    """The host name of a Host header ("localhost:8000", "[::1]:8000"), bracketed if IPv6."""
    try:
        name = urlsplit(f"//{host_header}").hostname or default
    except ValueError:
        name = default
    if not HOST_NAME.match(name):  # it goes into the page and its CSP header: names only
        name = default
    return f"[{name}]" if ":" in name else name


def socket_url(request: web.Request, config: WebConfig) -> str:
    """The Rasa server as the visitor's browser reaches it."""
    if config.socket_url:
        return config.socket_url.rstrip("/")
    return f"{request.scheme}://{host_name(request.host)}:{config.rasa_port}"


def websocket_origin(http_origin: str) -> str:
    return re.sub(r"^http", "ws", http_origin)


def content_security_policy(socket_origin: str) -> str:
    """Scripts only from this app (no inline script, no `javascript:` URLs); sockets only to Rasa.

    rasa-webchat injects its CSS as <style> elements and sets inline styles, hence 'unsafe-inline'
    for styles; its icons and carousel font are data: URIs.
    """
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self' {socket_origin} {websocket_origin(socket_origin)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_config(settings: Mapping[str, Any], socket: str) -> Dict[str, Any]:
    """What static/widget.js reads: the WebChat.default(...) options, labels, message delay and
    the privacy notice."""
    return {
        "widget": {**settings["widget"], "socketUrl": socket},
        "labels": settings.get("labels", {}),
        "messageDelayMs": int(settings.get("message_delay_ms", 300)),
        "privacyNotice": settings["privacy_notice"].format(retention_days=retention_days_text(retention_from_env())),
    }


def retention_days_text(retention: timedelta) -> str:
    days = retention.total_seconds() / 86400
    return f"{days:g}".replace(".", ",")


def format_price(price: float, currency: str) -> str:
    return format_currency(price, currency, locale=LOCALE)


def article_view(kb: KnowledgeBase) -> Dict[str, Any]:
    """The article, in page order, as the template shows it."""
    faq = [item for item in kb.items if item.kind == "faq"]
    sections = [
        {"item": item, "products": [p for p in kb.products if p.section == item.id]}
        for item in kb.items
        if item.kind == "section"
    ]
    return {
        "metadata": kb.metadata,
        "date": format_date(date.fromisoformat(kb.metadata.date), format="long", locale=LOCALE),
        "intro": next((item for item in kb.items if item.kind == "intro"), None),
        "sections": sections,
        "faq": faq,
        "closing": kb.closing,
        "sources": kb.sources,
        "sources_item": next((item for item in kb.items if item.kind == "sources"), None),
    }


@lru_cache(maxsize=None)
def template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,  # article text renders as text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["price"] = lambda product: format_price(product.price, product.currency)
    return environment


def asset_url(assets: Mapping[str, Asset], name: str) -> str:
    return f"/static/{name}?v={assets[name].etag}"


async def page(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    settings: Dict[str, Any] = request.app[SETTINGS_KEY]
    assets: Dict[str, Asset] = request.app[ASSETS_KEY]
    socket = socket_url(request, config)
    html = template_environment().get_template("index.html").render(
        page=settings["page"],
        article=article_view(load_knowledge_base(config.knowledge_base)),
        config=page_config(settings, socket),  # `tojson` escapes <, > and & for the script element
        assets={name: asset_url(assets, name) for name in assets},
    )
    response = web.Response(text=html, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = content_security_policy(socket)
    response.headers["Cache-Control"] = "no-cache"  # the page carries the socket URL
    return response


async def static_file(request: web.Request) -> web.StreamResponse:
    asset: Optional[Asset] = request.app[ASSETS_KEY].get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    etag = f'"{asset.etag}"'
    versioned = request.query.get("v") == asset.etag
    headers = {
        "ETag": etag,
        # a versioned URL never changes content; an unversioned one is revalidated
        "Cache-Control": f"public, max-age={ONE_YEAR}, immutable" if versioned else "no-cache",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})
    response.enable_compression()  # gzip when the browser accepts it (the bundle is 0.7 MB)
    return response


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(config: WebConfig = WebConfig()) -> web.Application:
    app = web.Application(middlewares=[security_headers])
    app[CONFIG_KEY] = config
    app[SETTINGS_KEY] = load_site_settings(config.site_settings)
    app[ASSETS_KEY] = load_assets(config.webchat_bundle)
    load_knowledge_base(config.knowledge_base)  # fail at start, not on the first visitor
    app.router.add_get("/", page)
    app.router.add_get("/health", health)
    app.router.add_get("/static/{name}", static_file)
    # the staff page under /staff/, behind STAFF_TOKEN (bot/web/staff.py)
    staff.mount(app, staff.StaffConfig(knowledge_base=config.knowledge_base))
    return app


def run(config: WebConfig, host: str, port: int) -> None:
    web.run_app(create_app(config), host=host, port=port, access_log=None, print=None)


LOCAL_HOSTS = ("localhost", "127.0.0.1")


def page_origins(port: int, hosts: Sequence[str] = LOCAL_HOSTS) -> List[str]:
    """The origins a browser gives this page when it runs on this machine."""
    return [f"http://{host}:{port}" for host in hosts]
