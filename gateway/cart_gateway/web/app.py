"""The web service's pages (Starlette + Jinja2 templates, no JavaScript build).

Staff pages (login required): the review queue, a review with its frames, its
weight trace and verdict buttons, the store view with the figures, the audit
log (supervisors). The cart screen page (a cart's tablet, by its per-cart key):
the basket and the open prompts, answered by a tap. Frames are served only to
a logged-in session, with `Cache-Control: no-store`; the screen pages never
name a frame. Every POST carries a CSRF token (the screen's is its cart key).
"""
from __future__ import annotations

import logging
import re
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
from . import views as V
from .accounts import Accounts, Role, Session, csrf_ok
from .broker import Broker, NotSent
from .config import WebConfig
from .figures import Figures
from .gwstate import GatewayState, GatewayStateMissing
from .pictures import personal_svg, thumbnail_svg
from .plots import bars_svg, weight_trace_svg

log = logging.getLogger("cart_gateway.web")
HERE = Path(__file__).parent
COOKIE = "cart_staff"
LOGIN_CSRF = "cart_login_csrf"
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


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


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
            svc.accounts.audit(s.user, "csrf_rejected", request.url.path, {}, _client(request))
            return PlainTextResponse("forbidden: the form's CSRF token is missing or wrong (reload the page)", 403)
        return form

    def base_ctx(s: Session | None) -> dict:
        return {"session": s, "gateway": svc.gw.gateway_id, "gateway_state": svc.broker.gateway_state(),
                "broker_ok": svc.broker.connected.is_set(), "supervisor": bool(s and s.role == Role.SUPERVISOR)}

    # ------------------------------------------------------------ login
    async def login_get(request: Request) -> Response:
        import secrets
        tok = secrets.token_urlsafe(24)
        resp = page(request, "login.html", dict(base_ctx(None), csrf=tok, next=_safe_next(request.query_params.get("next")),
                                                 expired=request.query_params.get("expired") == "1", error=None))
        resp.set_cookie(LOGIN_CSRF, tok, httponly=True, secure=True, samesite="strict", path="/login")
        return resp

    async def login_post(request: Request) -> Response:
        form = dict(await request.form(max_files=0, max_fields=64))
        nxt = _safe_next(form.get("next"))
        if not csrf_ok(request.cookies.get(LOGIN_CSRF, ""), form.get("csrf")):
            return PlainTextResponse("forbidden: the login form's CSRF token is missing or wrong (reload the page)", 403)
        name, pw = str(form.get("user", ""))[:40], str(form.get("password", ""))[:200]
        res = svc.accounts.login(name, pw, _client(request))
        if isinstance(res, str):
            msg = ("Too many failed attempts: this account is locked for a while. Ask a supervisor."
                   if res == "locked" else "Wrong name or password.")
            ctx = dict(base_ctx(None), csrf=form.get("csrf"), next=nxt, expired=False, error=msg)
            return page(request, "login.html", ctx, 401)
        token, _ = res
        resp = RedirectResponse(nxt, 303)
        resp.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="strict", path="/",
                        max_age=svc.web.session_max_s)
        resp.delete_cookie(LOGIN_CSRF, path="/login")
        return resp

    async def logout(request: Request) -> Response:
        s = staff(request)
        if not isinstance(s, Session):
            return RedirectResponse("/login", 303)
        form = await form_with_csrf(request, s)
        if isinstance(form, Response):
            return form
        svc.accounts.logout(request.cookies.get(COOKIE, ""), s.user, _client(request))
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

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
            svc.accounts.audit(s.user, "verdict_not_sent", rid, {"verdict": payload, "error": str(e)}, _client(request))
            return review_page(request, error=f"Verdict NOT sent: {e}. Try again.", status=503, s=s, review_id=rid)
        applied = _wait_closed(svc, rid, svc.web.verdict_wait_s)
        ms = round((time.monotonic() - t0) * 1000, 1)
        svc.accounts.audit(s.user, "verdict", rid, {"cart": r.cart, "verdict": payload, "applied": applied,
                                                    "applied_after_ms": ms,
                                                    "waited_s": round(time.time() - r.created_ms / 1000, 1)},
                           _client(request))
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
        svc.accounts.audit(s.user, "frame_viewed", fid, {}, _client(request))
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
            svc.accounts.audit(s.user, "forbidden", "/audit", {"role": s.role.value}, _client(request))
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

    # ------------------------------------------------------------ cart screen
    def screen(request: Request) -> Response:
        cart = request.path_params["cart"]
        key = request.query_params.get("key")
        if not P.ID_RE.match(cart) or not svc.accounts.screen_key_ok(cart, key):
            return page(request, "message.html", dict(base_ctx(None), title="Not this screen",
                                                      text="This address needs the cart's screen key."), 403)
        basket = svc.state.retained_one(f"carts/{cart}/basket") or {"lines": [], "total_cents": 0, "version": 0}
        st = svc.state.retained_one(f"carts/{cart}/screen/state") or {"prompts": []}
        receipt = svc.state.retained_one(f"carts/{cart}/receipt")
        lines = V.with_pictures(svc.catalogue, basket.get("lines", []))
        paid = receipt if receipt and receipt.get("ok") and not lines else None
        return page(request, "screen.html", dict(cart=cart, key=key, basket=basket, lines=lines,
                                                 prompts=st.get("prompts", []), paid=paid,
                                                 sent=request.query_params.get("sent"),
                                                 version=V.screen_version(svc.state, cart)))

    async def screen_answer(request: Request) -> Response:
        cart = request.path_params["cart"]
        form = dict(await request.form(max_files=0, max_fields=64))
        key = form.get("key")
        if not P.ID_RE.match(cart) or not svc.accounts.screen_key_ok(cart, key):
            return PlainTextResponse("forbidden: this form needs the cart's screen key", 403)
        pid = str(form.get("prompt_id", ""))
        st = svc.state.retained_one(f"carts/{cart}/screen/state") or {"prompts": []}
        prompt = next((p for p in st.get("prompts", []) if p.get("prompt_id") == pid), None)
        back = f"/screen/{cart}?" + urlencode({"key": key})
        if prompt is None:
            return RedirectResponse(back + "&sent=closed", 303)
        try:
            ans = F.screen_answer(prompt, form)
        except ValueError as e:
            return PlainTextResponse(f"bad answer: {e}", 400)
        try:
            svc.broker.publish(f"carts/{cart}/screen/answer", ans)
        except NotSent:
            return RedirectResponse(back + "&sent=failed", 303)
        svc.accounts.audit(f"screen-{cart}", "screen_answer", pid, {"cart": cart, "answer": ans}, _client(request))
        _wait(lambda: not any(p.get("prompt_id") == pid for p in
                              (svc.state.retained_one(f"carts/{cart}/screen/state") or {}).get("prompts", [])), 2.0)
        return RedirectResponse(back + "&sent=1", 303)

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
        Route("/", root), Route("/login", login_get, methods=["GET"]), Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]), Route("/queue", queue),
        Route("/review/{review_id}", review_page), Route("/review/{review_id}/verdict", verdict_post, methods=["POST"]),
        Route("/frames/{cart}/{epoch:int}/{frame:int}.jpg", frame), Route("/store", store),
        Route("/audit", audit_page), Route("/api/version/{what}", api_version),
        Route("/screen/{cart}", screen), Route("/screen/{cart}/answer", screen_answer, methods=["POST"]),
        Route("/product/{sku}.svg", product), Route("/static/live.js", live_js), Route("/healthz", health),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan,
                    exception_handlers={GatewayStateMissing: on_missing_state})
    app.state.svc = svc
    return app


# ====================================================================== page logic
def _safe_next(nxt) -> str:
    """Only a path on this site (no scheme, no host, no //): an open redirect would be a phishing aid."""
    if isinstance(nxt, str) and re.fullmatch(r"/[A-Za-z0-9/_\-.?=&%]*", nxt) and not nxt.startswith("//"):
        return nxt
    return "/queue"


def _wait(cond, timeout_s: float, step_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)


def _wait_closed(svc: Services, rid: str, timeout_s: float) -> bool:
    return _wait(lambda: svc.state.review_status(rid) != "open", timeout_s)


def _next_review(svc: Services, done: str, applied: str) -> Response:
    nxt = next((r for r in svc.state.open_reviews() if r.review_id != done), None)
    q = urlencode({"done": done, "applied": applied})
    return RedirectResponse(f"/review/{quote(nxt.review_id)}?{q}" if nxt else f"/queue?{q}", 303)
