"""Signing in with an API key, signing out, and checking the session on every request.

A key needs the `read` scope to sign in (the API's rule for everything the dashboard shows);
removing a suppression needs `send`, as in the API. Failed sign-ins are counted per client IP
with the SMTP AUTH limits (`[smtp] auth_failure_limit` within `auth_failure_window`), each
attempt from when it starts (see `web/throttle.py`): past the third, each failure waits a little
longer, and past the limit the IP is refused until its failures age out; a success does not
wipe them. Every POST must come from the dashboard's own origin (when the browser says where it
comes from), on top of the SameSite=Strict cookie and the CSRF token. Over HTTPS the cookie is
`__Host-` prefixed (Secure, Path=/, no Domain), so no sibling host and no plain-HTTP answer can
plant one.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from postroom.submission import checks
from postroom.submission.keys import hash_key
from postroom.web.context import Viewer, dashboard, run
from postroom.web.render import error_page, href, page
from postroom.web.session import COOKIE, SECURE_COOKIE, SESSION_SECONDS

#: Why a sign-in page is shown, by the `reason` in its URL.
REASONS = {
    "signed_out": "You are signed out.",
    "ended": "Your session ended (it expired, or its key was revoked or lost the read scope). "
             "Sign in again.",
}


class SignInRequired(Exception):
    """Raised by `signed_in`; answered with a redirect to the sign-in page."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def signed_in(request: Request) -> Viewer:
    """The viewer, after checking the cookie's signature and expiry, that its key is still
    active with the read scope, that this client IP is allowed for the account, and that the
    key is within the API's rate limit (`[http] rate_limit_per_second`, which it shares)."""
    dash = dashboard(request)
    cookie = request.cookies.get(_cookie(request)[0])
    session = dash.sessions.read(cookie)
    if session is None:
        raise SignInRequired("ended" if cookie else "")
    found = await run(request, None, dash.data.active_key, session.key_id)
    if found is None or "read" not in found[0].scopes:
        raise SignInRequired("ended")
    key, account = found
    if checks.ip_allowed(account, client_ip(request)) is not None:
        raise SignInRequired("ended")
    if not dash.allow(key.id):
        raise HTTPException(429)
    return Viewer(key, account, session, dash.sessions.csrf(session))


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    reason = exc.reason if isinstance(exc, SignInRequired) else ""
    response = RedirectResponse(href(request, "/login", reason=reason), status_code=303)
    if _cookie(request)[0] in request.cookies:
        _clear(request, response)
    return response


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site: `Sec-Fetch-Site`
    when it sends one (every current browser; a page cannot forge it), else `Origin`, which
    must name this host as the client saw it (`Host`, a proxy's `X-Forwarded-Host`, or the
    host of `[http] public_url`: a proxy may have rewritten `Host`)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    public = dashboard(request).settings.http.public_url or ""
    hosts = {request.headers.get("host", ""), urlsplit(public).netloc,
             request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
    return urlsplit(origin).netloc in hosts - {""}


def _secure(request: Request) -> bool:
    public = dashboard(request).settings.http.public_url or ""
    return request.url.scheme == "https" or public.startswith("https:")


def _cookie(request: Request) -> tuple[str, str]:
    """The session cookie's name and path: `__Host-…` on `/` over HTTPS (the prefix demands
    Secure and Path=/), else the plain name scoped to the dashboard's path."""
    if _secure(request):
        return SECURE_COOKIE, "/"
    return COOKIE, request.scope.get("root_path") or "/"


def _clear(request: Request, response: Response) -> None:
    name, path = _cookie(request)
    response.delete_cookie(name, path=path, secure=_secure(request), httponly=True,
                           samesite="strict")


async def login_form(request: Request) -> Response:
    try:
        await signed_in(request)
    except SignInRequired:
        reason = REASONS.get(request.query_params.get("reason", ""), "")
        return page(request, "login.html", notice=reason, error="")
    return RedirectResponse(href(request, "/"), status_code=303)


async def login(request: Request) -> Response:
    dash, ip = dashboard(request), client_ip(request)
    if not same_origin(request):
        return error_page(request, 403, "Cross-site form submissions are refused.")
    attempt = dash.throttle.begin(ip)  # before any await: parallel guesses count at once
    if attempt is None:
        await asyncio.sleep(1.0)
        return page(request, "login.html", http_status=429, notice="",
                    error="Too many failed sign-ins from your address: wait a few minutes.")
    try:
        form = await request.form()
        token = str(form.get("key") or "").strip()
        found = await run(request, None, dash.store.find_api_key, hash_key(token)) \
            if token else None
    except BaseException:  # no answer about the key reached the client: not a failure
        dash.throttle.withdraw(ip, attempt)
        raise
    status, problem = 401, "Unknown or revoked API key."
    if found is not None:
        key, account = found
        status = 403
        if "read" not in key.scopes:
            problem = "This key lacks the read scope the dashboard needs."
        elif checks.ip_allowed(account, ip) is not None:
            problem = "Your address is not allowed for this account."
        else:
            status, problem = 0, ""
    if problem:
        pause = dash.throttle.failed(ip)
        if pause:
            await asyncio.sleep(pause)
        return page(request, "login.html", http_status=status, notice="", error=problem)
    dash.throttle.succeeded(ip, attempt)
    assert found is not None
    _, cookie = dash.sessions.issue(found[0].id)
    response = RedirectResponse(href(request, "/"), status_code=303)
    name, path = _cookie(request)
    response.set_cookie(name, cookie, max_age=SESSION_SECONDS, path=path,
                        secure=_secure(request), httponly=True, samesite="strict")
    return response


async def checked_form(request: Request, viewer: Viewer) -> FormData | None:
    """The posted form if it comes from this site and carries this session's CSRF token."""
    form = await request.form()
    token = form.get("csrf")
    if not same_origin(request) or not isinstance(token, str) or \
            not dashboard(request).sessions.csrf_ok(viewer.session, token):
        return None
    return form


def stale_form(request: Request, viewer: Viewer) -> Response:
    return error_page(request, 403, "The form's security token is missing or stale: reload "
                      "the page and try again.", viewer)


async def logout(request: Request) -> Response:
    viewer = await signed_in(request)
    if await checked_form(request, viewer) is None:
        return stale_form(request, viewer)
    response = RedirectResponse(href(request, "/login", reason="signed_out"), status_code=303)
    _clear(request, response)
    return response
