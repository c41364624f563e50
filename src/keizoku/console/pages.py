"""The console's routes under ``/console``: server-rendered pages, forms, no script.

Who may see what is the server's rule (``keizoku.serving.security.Guard``):

* keys required (any key exists, or a non-loopback bind): every page needs a session
  (``keizoku.console.session``; a GET without one is sent to the sign-in page, a POST
  is refused with 401); any valid key may read (a ``predict`` key is a *viewer*), only an
  ``admin`` key may promote or roll back (an *operator*);
* a loopback server without keys: pages are open to local callers, and promote/rollback
  are off, as the admin routes of the API are.

Every POST carries the form's CSRF token, checked before anything else happens. Promote
and rollback call ``keizoku.lifecycle.experiments.promote`` / ``rollback`` (gates, the
model lock, the audit entry with ``actor = key:<name>``), then swap the served model in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from keizoku.auth import Principal
from keizoku.console import session as sess
from keizoku.console import views
from keizoku.errors import AuthError, ForbiddenError, KeizokuError, UserInputError
from keizoku.names import check_name
from keizoku.serving.boundary import error_headers, read_body
from keizoku.serving.ratelimit import RateLimitedError
from keizoku.serving.security import NO_ADMIN, Guard

__all__ = ["router"]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
FORM_LIMIT = 64 * 1024
CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}  # fmt: skip
ROLE_NAMES = {"predict": "viewer", "admin": "operator"}
SPANS = {"hour": (3600, 7 * 86400), "day": (86400, 366 * 86400)}


@dataclass(frozen=True)
class Visitor:
    """Who looks at a page: a signed-in key, or a local caller of a keyless server."""

    principal: Principal | None
    csrf: str
    keys: bool  # keys are required (so ``principal`` is set)

    @property
    def operator(self) -> bool:
        return self.principal is not None and self.principal.has_role("admin")

    @property
    def label(self) -> str:
        if self.principal is None:
            return "local (no API keys)"
        role = ROLE_NAMES.get(self.principal.role, self.principal.role)
        return f"{self.principal.key_name} ({role})"


class _SignIn(Exception):
    """No session where keys are required: a GET goes to the sign-in page."""


class ConsoleRoute(APIRoute):
    """Errors of a console route answer as an HTML page with the error's status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except _SignIn:
                target = quote(request.url.path + (f"?{request.url.query}" if
                               request.url.query else ""), safe="")  # fmt: skip
                return RedirectResponse(f"/console/login?next={target}", 303, headers=HEADERS)
            except KeizokuError as exc:
                return _page(request, "error.html.j2", {"error": exc.message, "title": "Error",
                             "code": exc.code}, None, exc.http_status)  # fmt: skip

        return route


router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)


# ----------------------------------------------------------------------------- plumbing


@cache
def _env() -> Environment:
    from keizoku.reporting import environment

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    shared = environment()
    env.filters.update(shared.filters, cite_links=_cite_links)
    env.globals.update(shared.globals)
    return env


def _cite_links(text: str) -> Markup:
    """An answer's text, escaped, with each ``[n]`` a link to its cited passage."""
    return Markup(_CITE.sub(r'<a href="#cite-\1">[\1]</a>', str(escape(text))))


_CITE = re.compile(r"\[(\d{1,3})\]")


def _guard(request: Request) -> Guard:
    state = getattr(request.app.state, "keizoku", None)
    guard = getattr(state, "guard", None)
    return guard if isinstance(guard, Guard) else Guard(loopback=True, ttl_s=0.0)


def _secure(request: Request) -> bool:
    return not _guard(request).loopback or request.url.scheme == "https"


def _visitor(request: Request) -> Visitor:
    """The visitor, or ``_SignIn`` when keys are required and there is no valid session."""
    if not _guard(request).keys_required():
        nonce, _ = sess.pre_nonce(request)
        return Visitor(None, sess.csrf_token(nonce), keys=False)
    found = sess.read_session(request)
    if found is None:
        raise _SignIn()
    return Visitor(found.principal, sess.csrf_token(found.nonce), keys=True)


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    visitor: Visitor | None,
    status: int = 200,
) -> Response:
    nonce, new = sess.pre_nonce(request)
    if visitor is None:
        visitor = Visitor(None, sess.csrf_token(nonce), keys=_guard(request).keys_required())
    html = (
        _env()
        .get_template(template)
        .render({**context, "visitor": visitor, "path": request.url.path})
    )
    response = HTMLResponse(html, status, headers=HEADERS)
    if new:
        sess.set_pre(response, nonce, secure=_secure(request))
    return response


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (bounded), one value per field."""
    body = await read_body(request, FORM_LIMIT)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


async def _post(request: Request, *, operator: bool = False) -> tuple[Visitor, dict[str, str]]:
    """The visitor and form of a POST: session (401), then CSRF (403), then role (403)."""
    keys = _guard(request).keys_required()
    found = sess.read_session(request) if keys else None
    if keys and found is None:
        raise AuthError("Sign in with an API key first (/console/login).")
    form = await _form(request)
    sess.check_csrf(request, form.get("csrf"), found)
    if found is None:
        nonce, _ = sess.pre_nonce(request)
        visitor = Visitor(None, sess.csrf_token(nonce), keys=False)
    else:
        visitor = Visitor(found.principal, sess.csrf_token(found.nonce), keys=True)
    if operator and not visitor.keys:
        raise ForbiddenError(NO_ADMIN)
    if operator and not visitor.operator:
        who = visitor.principal.key_name if visitor.principal else "?"
        raise ForbiddenError(
            f"Key {who!r} is a viewer (role 'predict'); promote and rollback need an operator "
            "key (created with --role admin)."
        )
    return visitor, form


def _next(raw: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if raw and raw.startswith("/console") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/console/models"


def _actor(visitor: Visitor) -> str | None:
    return f"key:{visitor.principal.key_name}" if visitor.principal is not None else None


async def _swap(request: Request, name: str) -> None:
    """Load the new champion now when this server serves the model."""
    state = getattr(request.app.state, "keizoku", None)
    if state is not None and name in state.models.models:
        await asyncio.to_thread(state.models.refresh, name, force=True)


# -------------------------------------------------------------------------------- pages


@router.get("/static/console.css")
async def stylesheet() -> Response:
    css = (STATIC / "console.css").read_text()
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("")
@router.get("/")
async def home_page(request: Request) -> Response:
    _visitor(request)
    return RedirectResponse("/console/models", 303)


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    return _page(request, "login.html.j2", {"next": _next(next), "error": ""}, None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    sess.check_csrf(request, form.get("csrf"), None)
    target = _next(form.get("next"))
    response = RedirectResponse(target, 303, headers=HEADERS)
    try:
        principal = _guard(request).check_key(request, form.get("key", "").strip())
    except (AuthError, RateLimitedError) as exc:
        context = {"next": target, "error": exc.message}
        page = _page(request, "login.html.j2", context, None, exc.http_status)
        page.headers.update({k: v for k, v in error_headers(exc).items() if k == "Retry-After"})
        return page
    sess.sign_in(principal, response, secure=_secure(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    sess.check_csrf(request, form.get("csrf"), sess.read_session(request))
    response = RedirectResponse("/console/login", 303, headers=HEADERS)
    sess.clear_session(response)
    return response


@router.get("/models")
async def models_page(request: Request) -> Response:
    visitor = _visitor(request)
    context = await asyncio.to_thread(views.models_context)
    return _page(request, "models.html.j2", {**context, "title": "Models"}, visitor)


@router.get("/models/{name}/{version}")
async def version_page(request: Request, name: str, version: int) -> Response:
    visitor = _visitor(request)
    check_name(name)
    context = await asyncio.to_thread(views.version_context, name, version)
    return _page(request, "version.html.j2", {**context, "title": f"{name} v{version}"}, visitor)


@router.get("/models/{name}/{version}/report")
async def report_page(request: Request, name: str, version: int) -> Response:
    """The version's evaluation report (``keizoku report``: metrics, curves, leaderboard,
    card), rendered from its recorded evidence."""
    from keizoku.evaluation.report import load_evidence, render_report

    _visitor(request)
    check_name(name)
    evidence = await asyncio.to_thread(load_evidence, f"{name}:{version}")
    html = await asyncio.to_thread(render_report, evidence)
    return HTMLResponse(html, headers=HEADERS)


@router.post("/models/{name}/promote")
async def promote_version(request: Request, name: str) -> Response:
    from keizoku.lifecycle.experiments import promote

    visitor, form = await _post(request, operator=True)
    check_name(name)
    raw = form.get("version", "")
    if not raw.isdigit():
        raise UserInputError(f"Field 'version' holds {raw!r}: give a version number, e.g. 2.")
    reason = form.get("reason", "").strip() or "promoted from the console"
    await asyncio.to_thread(promote, name, int(raw), actor=_actor(visitor), reason=reason)
    await _swap(request, name)
    return RedirectResponse(f"/console/audit?model={quote(name)}", 303, headers=HEADERS)


@router.post("/models/{name}/rollback")
async def rollback_model(request: Request, name: str) -> Response:
    from keizoku.lifecycle.experiments import rollback

    visitor, form = await _post(request, operator=True)
    check_name(name)
    reason = form.get("reason", "").strip() or "rolled back from the console"
    await asyncio.to_thread(rollback, name, actor=_actor(visitor), reason=reason)
    await _swap(request, name)
    return RedirectResponse(f"/console/audit?model={quote(name)}", 303, headers=HEADERS)


@router.get("/audit")
async def audit_page(
    request: Request, model: str = "", action: str = "", actor: str = ""
) -> Response:
    visitor = _visitor(request)
    if model:
        check_name(model)
    context = await asyncio.to_thread(views.audit_context, model or None, action, actor)
    return _page(request, "audit.html.j2", {**context, "title": "Audit"}, visitor)


@router.get("/experiments")
async def experiments_page(request: Request) -> Response:
    visitor = _visitor(request)
    context = await asyncio.to_thread(views.experiments_context)
    return _page(request, "experiments.html.j2", {**context, "title": "Experiments"}, visitor)


@router.get("/monitoring")
async def monitoring_page(
    request: Request, model: str = "", width: str = "hour", version: int | None = None
) -> Response:
    from keizoku.registry.models import list_models

    visitor = _visitor(request)
    if width not in SPANS:
        raise UserInputError(f"Parameter 'width' holds {width!r}: use width=hour or width=day.")
    names = await asyncio.to_thread(list_models)
    if not model:
        if not names:
            return _page(request, "monitoring.html.j2", {"title": "Monitoring", "name": "",
                         "models": []}, visitor)  # fmt: skip
        model = names[0]
    check_name(model)
    bucket, span = SPANS[width]
    conf = await asyncio.to_thread(views.settings)
    context = await asyncio.to_thread(views.monitoring_context, model, version, bucket, span, conf)
    return _page(request, "monitoring.html.j2", {**context, "title": "Monitoring"}, visitor)


@router.get("/assistant")
async def assistant_page(request: Request) -> Response:
    from keizoku.rag.store import list_collections

    visitor = _visitor(request)
    context = {"title": "Assistant", "collections": list_collections(), "collection": "",
               "question": "", "answer": None}  # fmt: skip
    return _page(request, "assistant.html.j2", context, visitor)


@router.post("/assistant")
async def ask_page(request: Request) -> Response:
    """Ask a collection: only documents the visitor's identity may read (``rag.ask``)."""
    from keizoku.rag.answer import ask
    from keizoku.rag.store import list_collections
    from keizoku.serving.rag_routes import identity_of

    visitor, form = await _post(request)
    collection, question = form.get("collection", ""), form.get("question", "").strip()
    check_name(collection, "Collection name")
    if not question or len(question) > 4000:
        raise UserInputError("Field 'question' must hold 1 to 4000 characters.")
    key = visitor.principal.key_name if visitor.principal else None
    answer = await asyncio.to_thread(
        ask, collection, question, identity_of(visitor.principal), key_name=key
    )
    context = {"title": "Assistant", "collections": list_collections(),
               "collection": collection, "question": question, "answer": answer}  # fmt: skip
    return _page(request, "assistant.html.j2", context, visitor)
