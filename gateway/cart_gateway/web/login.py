"""Staff login and logout: a session cookie after a name and password, a CSRF token on
the login form (a cookie scoped to /login), no redirect off this site."""
from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .accounts import Session, csrf_ok
from .site import COOKIE, LOGIN_CSRF, Site, client_of


def _safe_next(nxt) -> str:
    """Only a path on this site (no scheme, no host, no //): an open redirect would be a phishing aid."""
    if isinstance(nxt, str) and re.fullmatch(r"/[A-Za-z0-9/_\-.?=&%]*", nxt) and not nxt.startswith("//"):
        return nxt
    return "/queue"


def routes(site: Site) -> list[Route]:
    svc, page, staff, base_ctx, form_with_csrf = site.svc, site.page, site.staff, site.base_ctx, site.form_with_csrf

    async def login_get(request: Request) -> Response:
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
        res = svc.accounts.login(name, pw, client_of(request))
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
        svc.accounts.logout(request.cookies.get(COOKIE, ""), s.user, client_of(request))
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    return [Route("/login", login_get, methods=["GET"]), Route("/login", login_post, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
