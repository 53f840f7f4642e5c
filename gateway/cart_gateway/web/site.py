"""What every group of pages shares: the template renderer, the staff-session check, the
CSRF check of a staff form and the page frame's context (built once in app.make_app)."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from .accounts import Session

if TYPE_CHECKING:
    from .app import Services

COOKIE = "cart_staff"
LOGIN_CSRF = "cart_login_csrf"


@dataclass(frozen=True)
class Site:
    svc: "Services"
    page: Callable[..., Response]                                  # page(request, template, ctx, status=200)
    staff: Callable[..., "Session | Response"]                     # the session, or the redirect / 401 to return
    base_ctx: Callable[["Session | None"], dict]                   # the page frame's context
    form_with_csrf: Callable[[Request, Session], Awaitable["dict | Response"]]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def wait_until(cond, timeout_s: float, step_s: float = 0.01) -> bool:
    """Poll `cond` until it holds or `timeout_s` passes (the gateway applies a verdict or an
    answer within about a batch; the page then shows the result, not the state before it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)
