"""The cart screen (a cart's tablet, by its per-cart key, no staff login): the basket and
the open prompts, answered by a tap. It never names a frame."""
from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import protocol as P
from . import forms as F
from . import views as V
from .broker import NotSent
from .site import Site, client_of, wait_until


def routes(site: Site) -> list[Route]:
    svc, page, base_ctx = site.svc, site.page, site.base_ctx

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
        svc.accounts.audit(f"screen-{cart}", "screen_answer", pid, {"cart": cart, "answer": ans}, client_of(request))
        wait_until(lambda: not any(p.get("prompt_id") == pid for p in
                              (svc.state.retained_one(f"carts/{cart}/screen/state") or {}).get("prompts", [])), 2.0)
        return RedirectResponse(back + "&sent=1", 303)

    return [Route("/screen/{cart}", screen), Route("/screen/{cart}/answer", screen_answer, methods=["POST"])]
