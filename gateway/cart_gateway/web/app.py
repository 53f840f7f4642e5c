"""The web service's pages (Starlette + Jinja2 templates, no JavaScript build).

Staff pages (login required): the review queue, a review with its frames, its
weight trace and verdict buttons, the store view with the figures, the audit
log (supervisors). The cart screen page (a cart's tablet, by its per-cart key):
the basket and the open prompts, answered by a tap. Frames are served only to
a logged-in session, with `Cache-Control: no-store`; the screen pages never
name a frame. Every POST carries a CSRF token (the screen's is its cart key).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
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
from ..notify import sd_notify
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
SKU_MAX_RESULTS = 24
MULTI_ROWS = 4


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
        self._names = [(s.name.lower(), s.sku) for s in self.catalogue]


def build(web: WebConfig, gw: GatewayConfig, broker: Broker | None = None) -> Starlette:
    accounts = Accounts(web.state_dir / "web.sqlite3", web.session_idle_s, web.session_max_s,
                        web.login_max_failures, web.login_lockout_s)
    state = GatewayState(gw.state_dir)
    catalogue = Catalogue.load(gw.catalogue)
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


def _ago(ms: float) -> str:
    s = max(0, int(ms / 1000))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"


def _euros(cents: int | None) -> str:
    return "–" if cents is None else f"{cents / 100:.2f}"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def make_app(svc: Services) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(euros=_euros, ago=_ago, quote=quote)
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
        rows = [{"r": r, "waiting": _ago(now - r.created_ms),
                 "top": _top_candidates(svc, r.request, 2)} for r in svc.state.open_reviews()]
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
        present = svc.state.present_frames(list(req.get("frames", [])))
        frames = [{"id": f, "present": f in present, "label": lab}
                  for f, lab in _frame_labels(svc, r.cart, list(req.get("frames", [])))]
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
                   candidates=_top_candidates(svc, req, 8), waiting=_ago(now - r.created_ms),
                   delta=w.get("delta_g"), search=q, results=_search(svc, q, w.get("delta_g")) if q else [],
                   rows=range(1, MULTI_ROWS + 1), error=error, done=done,
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
            payload = _verdict_payload(svc, rid, form)
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
        carts = _store_carts(svc)
        today, week, days = svc.figures.compute()
        labels = [d.label for d in days]
        plots = [Markup(bars_svg("human reviews per 1,000 baskets", labels,
                                 [d.reviews_per_1000_baskets for d in days], goal=10)),
                 Markup(bars_svg("shopper prompts per 100 items", labels,
                                 [d.prompts_per_100_items for d in days], goal=2)),
                 Markup(bars_svg("median time to clear a review (s)", labels,
                                 [d.median_clear_s for d in days], unit=" s"))]
        return page(request, "store.html", dict(base_ctx(s), carts=carts, today=today, week=week, plots=plots,
                                                online=sum(c["online"] == "online" for c in carts)))

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
            return JSONResponse({"v": _screen_version(svc, cart)})
        s = staff(request, touch=False)      # polling is not use: an idle tablet's session still expires
        if not isinstance(s, Session):
            return s
        if what == "store":
            return JSONResponse({"v": _store_version(svc)})
        return JSONResponse({"v": _queue_version(svc)})

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
        lines = [dict(ln, known=ln.get("sku") in svc.catalogue) for ln in basket.get("lines", [])]
        paid = receipt if receipt and receipt.get("ok") and not lines else None
        return page(request, "screen.html", dict(cart=cart, key=key, basket=basket, lines=lines,
                                                 prompts=st.get("prompts", []), paid=paid,
                                                 sent=request.query_params.get("sent"),
                                                 version=_screen_version(svc, cart)))

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
            choice = _screen_choice(svc, prompt, form)
        except ValueError as e:
            return PlainTextResponse(f"bad answer: {e}", 400)
        ans = {"v": 1, "prompt_id": pid, "answer_id": f"scr-{uuid.uuid4().hex[:24]}", "choice": choice}
        P.decode_answer(json.dumps(ans).encode())      # exactly what the gateway accepts, or raise here
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


def _top_candidates(svc: Services, req: dict, n: int) -> list[dict]:
    out = []
    for c in sorted(req.get("candidates", []), key=lambda c: -float(c.get("score", 0)))[:n]:
        skus = c.get("skus") or ([c["sku"]] if c.get("sku") else [])
        names = [svc.catalogue[k].name if k in svc.catalogue else k for k in skus]
        out.append({"sku": c.get("sku"), "skus": skus, "kind": c.get("kind", ""), "score": float(c.get("score", 0)),
                    "name": " + ".join(names) or "?",
                    "price": svc.catalogue[c["sku"]].price_cents if c.get("sku") in svc.catalogue else None,
                    "by_weight": c.get("sku") in svc.catalogue and svc.catalogue[c["sku"]].sold_by_weight,
                    "known": all(k in svc.catalogue for k in skus)})
    return out


def _search(svc: Services, q: str, near_g: float | None = None) -> list:
    """Catalogue search: an exact SKU or EAN-13 first, then names containing every word, those
    whose weight is closest to the movement's first. A linear pass over the names (30,000
    SKUs: a few ms); the reviewer types a query, not a stream."""
    exact = []
    if q in svc.catalogue:
        exact.append(svc.catalogue[q])
    s = svc.catalogue.by_ean(q)
    if s is not None and s not in exact:
        exact.append(s)
    words = q.lower().split()
    hits = [svc.catalogue[sku] for name, sku in svc._names if all(w in name for w in words)]
    hits = [h for h in hits if h not in exact]
    if near_g is not None and not all(h.sold_by_weight for h in hits):
        hits.sort(key=lambda h: (h.sold_by_weight, abs(h.weight_mean_g - abs(near_g))))
    return (exact + hits)[:SKU_MAX_RESULTS]


def _frame_labels(svc: Services, cart: str, frame_ids: list[str]) -> list[tuple[str, str]]:
    """Each frame with what took it: the capture event (§6.3) that lists it, still or burst frame."""
    out = []
    caps = {}
    try:
        for (payload,) in svc.state.db().execute(
                "SELECT payload FROM events WHERE cart=? AND board='cam' AND type='capture' "
                "ORDER BY t_ms DESC LIMIT 50", (cart,)):
            d = json.loads(bytes(payload))
            for i, n in enumerate(d.get("frames", [])):
                caps.setdefault((d.get("epoch"), n), (d, i))
    except (ValueError, TypeError):
        pass
    for fid in frame_ids:
        try:
            _, ep, n = fid.split("/")
            d, i = caps.get((int(ep), int(n)), (None, 0))
        except ValueError:
            d = None
        if d is None:
            out.append((fid, "frame"))
            continue
        still = d.get("still")
        kind = "still" if still is not None and (still == int(n) or (isinstance(still, list) and int(n) in still)) \
            else f"burst {i + 1}/{len(d.get('frames', []))}"
        out.append((fid, f"{kind} ({d.get('trigger', '?')})"))
    return out


def _sku_of(svc: Services, text: str) -> str | None:
    t = text.strip()
    if not t:
        return None
    if t in svc.catalogue:
        return t
    s = svc.catalogue.by_ean(t)
    if s is not None:
        return s.sku
    raise ValueError(f"{t!r} is not a SKU or an EAN-13 of this store's catalogue (use the search)")


def _qty(text, what: str) -> int:
    try:
        q = int(str(text).strip() or "1")
    except ValueError:
        raise ValueError(f"{what}: the quantity {text!r} is not a whole number") from None
    if not 1 <= q <= 99:
        raise ValueError(f"{what}: the quantity must be 1 to 99")
    return q


def _verdict_payload(svc: Services, review_id: str, form: dict) -> dict:
    """The §13 verdict the form describes, checked by the gateway's own decoder."""
    kind = form.get("kind")
    base = {"v": 1, "review_id": review_id, "verdict_id": f"web-{uuid.uuid4().hex[:24]}"}
    if kind == "one":
        sku = _sku_of(svc, str(form.get("sku", "")))
        if sku is None:
            raise ValueError("choose a product")
        v = dict(base, sku=sku, qty=_qty(form.get("qty", "1"), sku))
    elif kind == "skus":     # a candidate naming several units (e.g. two packs, a swap as the shopper saw it)
        skus = [_sku_of(svc, x) for x in str(form.get("skus", "")).split(",") if x.strip()]
        if not skus or len(skus) > P.MAX_MULTI:
            raise ValueError(f"1 to {P.MAX_MULTI} products")
        counts: dict[str, int] = {}
        for k in skus:
            counts[k] = counts.get(k, 0) + 1
        adds = [{"sku": k, "qty": q} for k, q in counts.items()]
        v = dict(base, sku=adds[0]["sku"], qty=adds[0]["qty"], adds=adds, removes=[])
    elif kind == "several":
        lists = {}
        for side in ("add", "rem"):
            items = []
            for i in range(1, MULTI_ROWS + 1):
                raw = str(form.get(f"{side}_sku_{i}", "")).strip()
                if not raw:
                    continue
                sku = None if raw.lower() in ("personal", "own") else _sku_of(svc, raw)
                items.append({"sku": sku, "qty": _qty(form.get(f"{side}_qty_{i}", "1"), raw)})
            lists[side] = items
        if not lists["add"] and not lists["rem"]:
            raise ValueError("several products: name at least one product that went in or came out")
        first = (lists["add"] or lists["rem"])[0]
        v = dict(base, sku=first["sku"], qty=first["qty"], adds=lists["add"], removes=lists["rem"])
    elif kind == "personal":
        v = dict(base, sku=None, qty=1)
    elif kind == "nothing":
        v = dict(base, sku=None, qty=0)
    else:
        raise ValueError("unknown verdict kind")
    try:
        P.decode_verdict(json.dumps(v).encode())
    except P.ProtocolError as e:
        raise ValueError(f"the gateway would reject this verdict: {e}") from None
    return v


def _screen_choice(svc: Services, prompt: dict, form: dict) -> dict:
    what = form.get("choice")
    if what == "personal":
        return {"personal": True}
    if what == "none":
        return {"none": True}
    if what == "barcode":
        code = str(form.get("barcode", "")).strip()
        if not code.isdigit() or not 8 <= len(code) <= 14:
            raise ValueError("a barcode is 8 to 14 digits")
        return {"barcode": code}
    if what == "option":
        i = int(form.get("option", -1))
        opts = prompt.get("options", [])
        if not 0 <= i < len(opts):
            raise ValueError("no such option")
        o = opts[i]
        return {"skus": list(o["skus"])} if o.get("skus") else {"sku": o["sku"]}
    raise ValueError("unknown choice")


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


def _checkout_state(basket: dict | None, receipt: dict | None) -> tuple[str, str]:
    lines = (basket or {}).get("lines", [])
    if receipt and receipt.get("ok") and not lines:
        return "paid", f"paid: receipt {receipt.get('receipt_id')} ({_euros(receipt.get('total_cents'))})"
    if receipt and not receipt.get("ok") and lines:
        return "refused", f"checkout refused: {receipt.get('reason')}"
    return ("shopping", "shopping") if lines else ("idle", "empty")


def _store_carts(svc: Services) -> list[dict]:
    ret = svc.state.retained("carts/")
    names = set(svc.state.carts()) | {t.split("/")[1] for t in ret} | svc.broker.known_carts()
    last = svc.state.last_event_ms()
    now = time.time() * 1000
    reviews: dict[str, list] = {}
    for r in svc.state.open_reviews():
        reviews.setdefault(r.cart, []).append(r)
    out = []
    for c in sorted(names):
        basket = ret.get(f"carts/{c}/basket")
        receipt = ret.get(f"carts/{c}/receipt")
        states = {b: svc.broker.board_state(c, b) for b in ("scale", "cam")}
        online = ("online" if all(v == "online" for v in states.values()) else
                  "offline" if any(v == "offline" for v in states.values()) else
                  "partial" if any(v == "online" for v in states.values()) else "unknown")
        ck, ck_text = _checkout_state(basket, receipt)
        lines = [dict(ln, known=ln.get("sku") in svc.catalogue) for ln in (basket or {}).get("lines", [])]
        out.append({"cart": c, "online": online, "boards": states, "lines": lines,
                    "total": (basket or {}).get("total_cents", 0), "version": (basket or {}).get("version", 0),
                    "prompts": (ret.get(f"carts/{c}/screen/state") or {}).get("prompts", []),
                    "reviews": reviews.get(c, []), "checkout": ck, "checkout_text": ck_text,
                    "last_seen": _ago(now - last[c]) + " ago" if c in last else "never"})
    return out


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _store_version(svc: Services) -> str:
    # retained rows are INSERT OR REPLACE'd: their highest rowid changes with every publish
    row = svc.state.db().execute("SELECT MAX(rowid), COUNT(*) FROM retained").fetchone()
    status = sorted((t, d.get("state")) for t, d in list(svc.broker.status.items()))
    return _digest(row, _queue_version(svc), status)


def _queue_version(svc: Services) -> str:
    return _digest([r.review_id for r in svc.state.open_reviews()])


def _screen_version(svc: Services, cart: str) -> str:
    return _digest([svc.state.retained_one(f"carts/{cart}/{t}") for t in ("basket", "screen/state", "receipt")])
