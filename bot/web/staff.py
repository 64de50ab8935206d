"""The staff page under /staff/ on the web app's port: the figures (bot/staff/insight.py), the review
queue (bot/staff/review.py) and one conversation's turns with the NLU decisions, behind the staff token.

Authentication: the token STAFF_TOKEN (bot/tokens.py: from the environment, or generated once into
var/staff_token), typed once on the login form, or sent as `Authorization: Bearer <token>`. The
login sets a session cookie (HttpOnly, SameSite=Strict, path /staff/, 12 hours) holding an expiry and
its HMAC under the token, never the token; every comparison is constant-time. Without either, a page
answers 401 with the login form. A form post from another origin is refused (403).

The pages load nothing but their own stylesheet and the SVG plots (CSP below; no script at all).
The figures and the queue are read from the tracker store of the endpoints file (RASA_ENDPOINTS),
in a worker thread: SQL and the embedding model block.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web

from bot import paths
from bot.embeddings.onnx_model import query_encoder
from bot.knowledge_base import KnowledgeBase, load_knowledge_base
from bot.privacy.retention import tracker_store_config
from bot.replies import reply
from bot.staff import insight as figures
from bot.staff import review
from bot.staff.plots import PLOTS
from bot.tokens import secret

logger = logging.getLogger(__name__)

STAFF_TOKEN = "STAFF_TOKEN"
PREFIX = "/staff/"
COOKIE = "staff_session"
SESSION_S = 12 * 3600
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "staff"
STATIC_DIR = Path(__file__).resolve().parent / "static" / "staff"
STYLESHEET = "staff.css"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
# matplotlib's SVG carries a <style> element; as an <img> it runs nothing
PLOT_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
# same-origin, not the app's no-referrer: under no-referrer Chromium sends `Origin: null` with a form
# post, and the origin check below needs the page's origin
NO_STORE = {"Cache-Control": "no-store", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "same-origin"}


@dataclass(frozen=True)
class StaffConfig:
    """Where the staff page reads and writes. The token, the tracker store and the examples file are
    looked up at each request (the environment, the endpoints file), the rest when the app is made."""

    token: Callable[[], str] = field(default=partial(secret, STAFF_TOKEN))
    tracker_store: Callable[[], Dict[str, Any]] = field(default=tracker_store_config)
    reviewed_examples: Callable[[], Path] = field(default=review.reviewed_examples_path)
    knowledge_base: Path = field(default_factory=paths.knowledge_base_path)
    embedding_model: Path = paths.EMBEDDING_MODEL
    nlu_dir: Path = paths.NLU_DATA_DIR


STAFF_CONFIG_KEY = web.AppKey("staff_config", StaffConfig)
MODEL_KEY = web.AppKey("review_model", dict)
INSIGHT_CACHE_KEY = web.AppKey("staff_insight", dict)
INSIGHT_TTL_S = 10.0


# -- authentication ------------------------------------------------------------------------------
def _signature(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"staff-session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, now: Optional[float] = None) -> str:
    expires = int((time.time() if now is None else now) + SESSION_S)
    return f"{expires}.{_signature(token, expires)}"


def valid_session(cookie: str, token: str, now: Optional[float] = None) -> bool:
    expires_text, _, signature = cookie.partition(".")
    if not expires_text.isdigit():
        return False
    expires = int(expires_text)
    now = time.time() if now is None else now
    return expires > now and hmac.compare_digest(signature.encode(), _signature(token, expires).encode())


def is_staff(request: web.Request, token: str) -> bool:
    """A valid session cookie or `Authorization: Bearer <token>`."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    return valid_session(request.cookies.get(COOKIE, ""), token)


def _same_origin(request: web.Request) -> bool:
    """No Origin (not a browser's cross-site post), or the page's own host. The host only, not the
    scheme: behind a TLS proxy the app sees http (the proxy must pass the Host header)."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def _safe_next(target: str) -> str:
    """Only a path of this staff page, never another site."""
    return target if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target else PREFIX


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def staff_only(handler: Handler) -> Handler:
    """The handler for staff only: others get the login form with 401 (an SVG or a post: plain 401)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin form")
        if is_staff(request, request.app[STAFF_CONFIG_KEY].token()):
            return await handler(request)
        if request.path.endswith(".svg") or request.method != "GET":
            raise web.HTTPUnauthorized(text="staff only")
        return _render("login.html", status=401, next=_safe_next(request.path_qs), error=None)

    return guarded


async def login_form(request: web.Request) -> web.Response:
    return _render("login.html", next=_safe_next(request.query.get("next", PREFIX)), error=None)


async def login(request: web.Request) -> web.Response:
    if not _same_origin(request):
        raise web.HTTPForbidden(text="cross-origin form")
    form = await request.post()
    target = _safe_next(str(form.get("next") or PREFIX))
    typed = str(form.get("token") or "").strip()
    token = request.app[STAFF_CONFIG_KEY].token()
    if not typed or not hmac.compare_digest(typed.encode(), token.encode()):
        return _render("login.html", status=401, next=target, error=reply("staff_login_wrong"))
    warm_up(request.app)
    response = web.HTTPSeeOther(target)
    response.set_cookie(COOKIE, session_cookie(token), max_age=SESSION_S, path=PREFIX, httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther(f"{PREFIX}login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


# -- rendering -----------------------------------------------------------------------------------
def _time(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%d-%m %H:%M")


@lru_cache(maxsize=None)
def template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["time"] = _time
    environment.filters["quote"] = lambda text: quote(str(text), safe="")
    environment.globals["reply"] = reply
    environment.globals["stylesheet"] = f"{PREFIX}static/{STYLESHEET}?v={stylesheet_etag()}"
    return environment


@lru_cache(maxsize=None)
def stylesheet() -> bytes:
    return (STATIC_DIR / STYLESHEET).read_bytes()


def stylesheet_etag() -> str:
    return hashlib.sha256(stylesheet()).hexdigest()[:16]


def _render(template: str, status: int = 200, **values: Any) -> web.Response:
    html = template_environment().get_template(template).render(**values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=NO_STORE)


async def static_file(request: web.Request) -> web.Response:
    if request.match_info["name"] != STYLESHEET:
        raise web.HTTPNotFound()
    versioned = request.query.get("v") == stylesheet_etag()
    return web.Response(body=stylesheet(), content_type="text/css", charset="utf-8", headers={
        "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache"})


async def _blocking(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def _kb(config: StaffConfig) -> KnowledgeBase:
    return load_knowledge_base(config.knowledge_base)


# -- the figures ---------------------------------------------------------------------------------
async def _insight(app: web.Application, days: int, fresh: bool) -> figures.Insight:
    """The figures of the last `days` days. The page reads the store (`fresh`); its plots, requested
    right after, reuse that reading for INSIGHT_TTL_S seconds, so they show the page's figures."""
    cache: Dict[int, Tuple[float, figures.Insight]] = app[INSIGHT_CACHE_KEY]
    hit = cache.get(days)
    if not fresh and hit is not None and time.monotonic() - hit[0] < INSIGHT_TTL_S:
        return hit[1]
    seen = await _blocking(figures.insight, app[STAFF_CONFIG_KEY].tracker_store(), days)
    cache[days] = (time.monotonic(), seen)
    return seen


async def overview(request: web.Request) -> web.Response:
    config = request.app[STAFF_CONFIG_KEY]
    days = figures.clamp_days(request.query.get("days"))
    seen = await _insight(request.app, days, fresh=True)
    kb = _kb(config)
    return _render("overview.html", insight=seen, days=days, day_choices=(1, 7, 30),
                   headings={item.id: item.button_title for item in kb.items}, plots=list(PLOTS))


async def plot(request: web.Request) -> web.Response:
    draw = PLOTS.get(request.match_info["name"])
    if draw is None:
        raise web.HTTPNotFound()
    seen = await _insight(request.app, figures.clamp_days(request.query.get("days")), fresh=False)
    svg = await _blocking(draw, seen)
    return web.Response(text=svg, content_type="image/svg+xml", charset="utf-8", headers={
        "Cache-Control": "no-store", "Content-Security-Policy": PLOT_CONTENT_SECURITY_POLICY})


async def conversation(request: web.Request) -> web.Response:
    config = request.app[STAFF_CONFIG_KEY]
    sender_id = request.match_info["sender_id"]
    lines = await _blocking(figures.conversation_lines, config.tracker_store(), sender_id)
    if not lines:
        raise web.HTTPNotFound(text="no such conversation", headers=NO_STORE)
    kb = _kb(config)
    return _render("conversation.html", sender_id=sender_id, lines=lines,
                   headings={item.id: item.button_title for item in kb.items})


# -- the review queue ----------------------------------------------------------------------------
def _model(app: web.Application) -> Tuple[review.Encoder, review.ItemVectors]:
    """The encoder (cached vectors) and the items' vectors, loaded on first use, once per process."""
    state = app[MODEL_KEY]
    with state["lock"]:
        if "encoder" not in state:
            config = app[STAFF_CONFIG_KEY]
            encoder = review.CachedEncoder(query_encoder(config.embedding_model))
            state["items"] = review.ItemVectors.build(_kb(config), encoder, review.nlu_examples(config.nlu_dir))
            state["encoder"] = encoder
        return state["encoder"], state["items"]


def review_groups(app: web.Application) -> List[review.Group]:
    config = app[STAFF_CONFIG_KEY]
    store_config = config.tracker_store()
    encoder, items = _model(app)
    with review.DecisionStore(store_config) as store:
        decided = store.decided()
    turns = figures.visitor_turns(store_config, 0.0, time.time() + 1.0)
    return review.group(review.candidates(turns, encoder, decided), encoder, items)


def warm_up(app: web.Application) -> None:
    """Load the model and encode the queue in the background (after a login): the first visit of
    the queue then finds the vectors ready. Errors are logged; the queue page reports its own."""
    asyncio.get_running_loop().run_in_executor(None, review_groups, app).add_done_callback(_log_failure)


def _log_failure(done: "asyncio.Future[Any]") -> None:
    if not done.cancelled() and done.exception() is not None:
        logger.warning("warming up the review queue failed: %r", done.exception())


def reason_text(reason: str, confidence: Optional[float]) -> str:
    if reason == review.LOW_CONFIDENCE_REASON:
        return reply("staff_reason_low_confidence", confidence=round(100 * (confidence or 0.0)))
    return reply(f"staff_reason_{reason}")


async def _queue_page(request: web.Request, status: int = 200, message: Optional[str] = None) -> web.Response:
    groups = await _blocking(review_groups, request.app)
    kb = _kb(request.app[STAFF_CONFIG_KEY])
    return _render("review.html", status=status, groups=groups, items=kb.items, message=message, failed=status >= 400,
                   headings={item.id: item.button_title for item in kb.items}, reason_text=reason_text)


async def queue(request: web.Request) -> web.Response:
    done = request.query.get("done")
    message = None
    if done in (review.ACCEPTED, review.RELABELLED):
        item = _kb(request.app[STAFF_CONFIG_KEY]).item(request.query.get("item", ""))
        message = reply("staff_review_accepted", item=item.heading) if item else None
    elif done == review.DISMISSED:
        message = reply("staff_review_dismissed")
    return await _queue_page(request, message=message)


async def decide(request: web.Request) -> web.Response:
    config = request.app[STAFF_CONFIG_KEY]
    form = await request.post()
    try:
        event_id = int(request.match_info["event_id"])
    except ValueError:
        raise web.HTTPNotFound()
    decision = str(form.get("decision") or "")
    item = str(form.get("item") or "") or None
    if decision == review.ACCEPTED and item != form.get("suggestion"):
        decision = review.RELABELLED
    kb = _kb(config)

    def take() -> None:
        with review.DecisionStore(config.tracker_store()) as store:
            review.decide(store, event_id, decision, item, kb.item_ids, config.reviewed_examples())

    try:
        await _blocking(take)
    except review.ReviewError as error:
        return await _queue_page(request, status=422, message=reply(error.key, **error.values))
    raise web.HTTPSeeOther(f"{PREFIX}review?done={decision}&item={quote(item or '')}")


# -- the routes ----------------------------------------------------------------------------------
def routes() -> List[web.RouteDef]:
    """The staff pages under /staff/. A route table, not a sub-application: aiohttp 3.9's sub-app
    resolution reads `request.url`, which fails with the installed yarl when the Host has a port."""
    return [
        web.get(PREFIX.rstrip("/"), _to_staff),
        web.get(PREFIX, staff_only(overview)),
        web.get(f"{PREFIX}login", login_form),
        web.post(f"{PREFIX}login", login),
        web.post(f"{PREFIX}logout", staff_only(logout)),
        web.get(f"{PREFIX}plots/{{name}}.svg", staff_only(plot)),
        web.get(f"{PREFIX}review", staff_only(queue)),
        web.post(f"{PREFIX}review/{{event_id}}", staff_only(decide)),
        web.get(f"{PREFIX}conversations/{{sender_id}}", staff_only(conversation)),
        web.get(f"{PREFIX}static/{{name}}", static_file),
    ]


async def _to_staff(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(PREFIX)


def mount(app: web.Application, config: Optional[StaffConfig] = None) -> None:
    """Add the staff pages to the web app: /staff/… (and /staff redirects there)."""
    app[STAFF_CONFIG_KEY] = config or StaffConfig()
    app[MODEL_KEY] = {"lock": threading.Lock()}
    app[INSIGHT_CACHE_KEY] = {}
    app.add_routes(routes())
