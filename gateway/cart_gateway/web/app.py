"""The web service's pages (Starlette + Jinja2 templates, no JavaScript build).

Staff pages (login required): the review queue, a review with its frames, its
weight trace and verdict buttons, the store view with the figures, the audit
log (supervisors); login and logout are in login.py. The cart screen (a cart's
tablet, by its per-cart key) is in screen.py. Frames are served only to a
logged-in session, with `Cache-Control: no-store`; the screen pages never name
a frame. Every POST carries a CSRF token (the screen's is its cart key).
"""
from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .. import protocol as P
from ..catalogue import Catalogue
from ..config import GatewayConfig
from ..rollout import catalogue_path
from ..notify import sd_notify
from . import forms as F
from . import login, screen
from . import views as V
from .accounts import Accounts, Role, Session, csrf_ok
from .broker import Broker, NotSent
from .config import WebConfig
from .figures import Figures
from .gwstate import GatewayState, GatewayStateMissing
from .pictures import personal_svg, thumbnail_svg
from .plots import bars_svg, weight_trace_svg
from .site import COOKIE, Site, client_of, wait_until

log = logging.getLogger("cart_gateway.web")
HERE = Path(__file__).parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


MAX_FORM_BYTES = 16384     # the largest form here (several products) is ~1 kB


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        if request.method == "POST":
            n = request.headers.get("content-length")
            if n is None or not n.isdigit() or int(n) > MAX_FORM_BYTES:
                return PlainTextResponse(f"a form must have a Content-Length of at most {MAX_FORM_BYTES} bytes", 413)
        resp = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        # staff pages show baskets and frames; the screen shows a shopper's basket: nothing is cached
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp


@dataclass
class Services:
    web: WebConfig
    gw: GatewayConfig
    accounts: Accounts
    state: GatewayState
    catalogue: Catalogue
    broker: Broker
    figures: Figures

    def __post_init__(self):
        self.tz = ZoneInfo(self.web.timezone)
        self.search = F.CatalogueSearch(self.catalogue)


def build(web: WebConfig, gw: GatewayConfig, broker: Broker | None = None) -> Starlette:
    accounts = Accounts(web.state_dir / "web.sqlite3", web.session_idle_s, web.session_max_s,
                        web.login_max_failures, web.login_lockout_s)
    state = GatewayState(gw.state_dir)
    catalogue = Catalogue.load(catalogue_path(gw))     # the rolled-out one if any (rollout.py)
    if broker is None:
        m = web.mqtt
        broker = Broker(m.host or gw.mqtt.host, m.port or gw.mqtt.port, gw.gateway_id,
                        m.client_id or m.username or f"web-{gw.gateway_id}", m.username, m.password,
                        str(m.cafile) if m.cafile else None)
    svc = Services(web, gw, accounts, state, catalogue, broker, Figures(state, web.timezone))
    return make_app(svc)


# ====================================================================== helpers
def _fmt_ms(svc: Services, t_ms: int | None) -> str:
    if not t_ms:
        return "–"
    return datetime.fromtimestamp(t_ms / 1000, svc.tz).strftime("%H:%M:%S")


def make_app(svc: Services) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(euros=V.euros, quote=quote)
    templates.env.filters["clock"] = lambda t: _fmt_ms(svc, t)
    templates.env.filters["datetime"] = lambda t: datetime.fromtimestamp(t / 1000, svc.tz).strftime("%Y-%m-%d %H:%M:%S")

    def page(request: Request, name: str, ctx: dict, status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    # ------------------------------------------------------------ staff sessions
    def staff(request: Request, touch: bool = True) -> Session | Response:
        token = request.cookies.get(COOKIE)
        s = svc.accounts.session(token, touch=touch)
        if isinstance(s, Session):
            return s
        if request.method == "GET" and not request.url.path.startswith(("/frames/", "/api/")):
            q = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
            if s == "expired":
                q["expired"] = "1"
            resp: Response = RedirectResponse("/login?" + urlencode(q), 303)
        else:
            resp = PlainTextResponse("login required" if s != "expired" else "session expired: log in again", 401)
        if s == "expired":
            resp.delete_cookie(COOKIE, path="/")
        return resp

    async def form_with_csrf(request: Request, s: Session) -> dict | Response:
        form = dict(await request.form(max_files=0, max_fields=64))
        if not csrf_ok(s.csrf, form.get("csrf")):
            svc.accounts.audit(s.user, "csrf_rejected", request.url.path, {}, client_of(request))
            return PlainTextResponse("forbidden: the form's CSRF token is missing or wrong (reload the page)", 403)
        return form

    def base_ctx(s: Session | None) -> dict:
        return {"session": s, "gateway": svc.gw.gateway_id, "gateway_state": svc.broker.gateway_state(),
                "broker_ok": svc.broker.connected.is_set(), "supervisor": bool(s and s.role == Role.SUPERVISOR)}

    site = Site(svc, page, staff, base_ctx, form_with_csrf)

    # ------------------------------------------------------------ review queue
    def queue(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return s
        now = time.time() * 1000
        rows = [{"r": r, "waiting": V.ago(now - r.created_ms),
                 "top": V.candidates(svc.catalogue, r.request, 2)} for r in svc.state.open_reviews()]
        done = request.query_params.get("done")
        return page(request, "queue.html", dict(base_ctx(s), rows=rows, done=done,
                                                applied=request.query_params.get("applied")))

    # ------------------------------------------------------------ a review
    def review_page(request: Request, error: str | None = None, status: int = 200, s: Session | None = None,
                    review_id: str | None = None) -> Response:
        if s is None:
            s = staff(request)
            if not isinstance(s, Session):
                return s
        rid = review_id or request.path_params["review_id"]
        r = svc.state.review(rid)
        if r is None:
            return page(request, "message.html", dict(base_ctx(s), title="No such review",
                                                      text=f"There is no review {rid!r} on this gateway."), 404)
        req = r.request
        frames = V.frames(svc.state, r.cart, list(req.get("frames", [])))
        w = req.get("weight") or {}
        trace = ""
        if w.get("epoch") and w.get("seq"):
            pts = svc.state.weight_trace(r.cart, int(w["epoch"]), int(w["seq"]))
            trace = Markup(weight_trace_svg(pts, int(w["seq"]), w.get("unsettled_seq")))
        basket = svc.state.retained_one(f"carts/{r.cart}/basket") or {"lines": [], "total_cents": 0}
        q = request.query_params.get("q", "").strip()[:64]
        now = time.time() * 1000
        done = request.query_params.get("done")
        ctx = dict(base_ctx(s), r=r, req=req, frames=frames, trace=trace, basket=basket,
                   candidates=V.candidates(svc.catalogue, req, 8), waiting=V.ago(now - r.created_ms),
                   delta=w.get("delta_g"), search=q, results=svc.search(q, w.get("delta_g")) if q else [],
                   rows=range(1, F.MULTI_ROWS + 1), error=error, done=done,
                   applied=request.query_params.get("applied"),
                   queue_left=len(svc.state.open_reviews()))
        return page(request, "review.html", ctx, status)

    async def verdict_post(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return s
        form = await form_with_csrf(request, s)
        if isinstance(form, Response):
            return form
        rid = request.path_params["review_id"]
        r = svc.state.review(rid)
        if r is None or r.status != "open":
            return _next_review(svc, rid, applied="closed")
        try:
            payload = F.verdict_payload(svc.catalogue, rid, form)
        except ValueError as e:
            return review_page(request, error=str(e), status=400, s=s, review_id=rid)
        t0 = time.monotonic()
        try:
            svc.broker.publish(svc.broker.verdict_topic(), payload)
        except NotSent as e:
            svc.accounts.audit(s.user, "verdict_not_sent", rid, {"verdict": payload, "error": str(e)}, client_of(request))
            return review_page(request, error=f"Verdict NOT sent: {e}. Try again.", status=503, s=s, review_id=rid)
        applied = _wait_closed(svc, rid, svc.web.verdict_wait_s)
        ms = round((time.monotonic() - t0) * 1000, 1)
        svc.accounts.audit(s.user, "verdict", rid, {"cart": r.cart, "verdict": payload, "applied": applied,
                                                    "applied_after_ms": ms,
                                                    "waited_s": round(time.time() - r.created_ms / 1000, 1)},
                           client_of(request))
        return _next_review(svc, rid, applied="1" if applied else "0")

    # ------------------------------------------------------------ frames (staff only)
    def frame(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return s
        fid = f"{request.path_params['cart']}/{request.path_params['epoch']}/{request.path_params['frame']}"
        path = svc.state.frame_file(fid)
        if path is None:
            return PlainTextResponse("no such frame (deleted after its retention, or never stored here)", 404)
        svc.accounts.audit(s.user, "frame_viewed", fid, {}, client_of(request))
        return FileResponse(path, media_type="image/jpeg",
                            headers={"Cache-Control": "no-store, private", "Pragma": "no-cache"})

    # ------------------------------------------------------------ store view
    def store(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return s
        carts = V.cart_cards(svc.state, svc.broker, svc.catalogue)
        today, week, days = svc.figures.compute()
        labels = [d.label for d in days]
        plots = [Markup(bars_svg("human reviews per 1,000 baskets", labels,
                                 [d.reviews_per_1000_baskets for d in days], goal=10)),
                 Markup(bars_svg("shopper prompts per 100 items", labels,
                                 [d.prompts_per_100_items for d in days], goal=2)),
                 Markup(bars_svg("median time to clear a review (s)", labels,
                                 [d.median_clear_s for d in days], unit=" s"))]
        return page(request, "store.html", dict(base_ctx(s), carts=carts, today=today, week=week, plots=plots,
                                                online=sum(c.online == "online" for c in carts)))

    def audit_page(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return s
        if s.role != Role.SUPERVISOR:
            svc.accounts.audit(s.user, "forbidden", "/audit", {"role": s.role.value}, client_of(request))
            return page(request, "message.html", dict(base_ctx(s), title="Supervisors only",
                                                      text="The audit log is for supervisors."), 403)
        act = request.query_params.get("action") or None
        return page(request, "audit.html", dict(base_ctx(s), records=svc.accounts.audit_log(300, act), action=act))

    # ------------------------------------------------------------ live-refresh versions (polled by live.js)
    def api_version(request: Request) -> Response:
        what = request.path_params["what"]
        if what == "screen":
            cart = request.query_params.get("cart", "")
            if not P.ID_RE.match(cart) or not svc.accounts.screen_key_ok(cart, request.query_params.get("key")):
                return PlainTextResponse("forbidden", 403)
            return JSONResponse({"v": V.screen_version(svc.state, cart)})
        s = staff(request, touch=False)      # polling is not use: an idle tablet's session still expires
        if not isinstance(s, Session):
            return s
        if what == "store":
            return JSONResponse({"v": V.store_version(svc.state, svc.broker)})
        return JSONResponse({"v": V.queue_version(svc.state)})

    # ------------------------------------------------------------ public: product pictures, script, health
    def product(request: Request) -> Response:
        sku = request.path_params["sku"]
        if sku == "_personal":
            svg = personal_svg()
        elif sku in svc.catalogue:
            svg = thumbnail_svg(svc.catalogue[sku])
        else:
            return PlainTextResponse("no such product", 404)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    def live_js(request: Request) -> Response:
        return FileResponse(HERE / "live.js", media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=3600"})

    def health(request: Request) -> Response:
        try:
            svc.state.db()
            gs = "ok"
        except GatewayStateMissing:
            gs = "missing"
        return JSONResponse({"gateway_db": gs, "broker": svc.broker.connected.is_set()})

    def root(request: Request) -> Response:
        return RedirectResponse("/queue", 303)

    async def on_missing_state(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"the gateway's state is not available: {exc}", 503)

    @asynccontextmanager
    async def lifespan(app):
        svc.broker.start()
        sd_notify("READY=1")
        try:
            yield
        finally:
            svc.broker.stop()
            svc.accounts.close()

    routes = [
        Route("/", root), *login.routes(site), Route("/queue", queue),
        Route("/review/{review_id}", review_page), Route("/review/{review_id}/verdict", verdict_post, methods=["POST"]),
        Route("/frames/{cart}/{epoch:int}/{frame:int}.jpg", frame), Route("/store", store),
        Route("/audit", audit_page), Route("/api/version/{what}", api_version),
        *screen.routes(site),
        Route("/product/{sku}.svg", product), Route("/static/live.js", live_js), Route("/healthz", health),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan,
                    exception_handlers={GatewayStateMissing: on_missing_state})
    app.state.svc = svc
    return app


# ====================================================================== page logic
def _wait_closed(svc: Services, rid: str, timeout_s: float) -> bool:
    return wait_until(lambda: svc.state.review_status(rid) != "open", timeout_s)


def _next_review(svc: Services, done: str, applied: str) -> Response:
    nxt = next((r for r in svc.state.open_reviews() if r.review_id != done), None)
    q = urlencode({"done": done, "applied": applied})
    return RedirectResponse(f"/review/{quote(nxt.review_id)}?{q}" if nxt else f"/queue?{q}", 303)
