"""Who is asking: a Bearer token (scripts) or a session cookie plus a CSRF token (browsers).

Every route but sign-in and static files depends on :func:`authenticate`; lead routes on
:func:`lead_only`. A cookie-authenticated request that changes state must carry the session's
CSRF token in ``X-CSRF-Token`` (the page puts it in a meta tag for its script); the cookie
itself is HttpOnly and SameSite=Strict. Bearer requests carry no cookie, so need no CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from calkit.labeling.accounts import same_secret

COOKIE = "calkit_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Principal:
    name: str
    is_lead: bool
    csrf: str | None  #: None for Bearer requests


def authenticate(request: Request) -> Principal:
    accounts = request.app.state.accounts
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        account = accounts.by_token(token.strip()) if scheme.lower() == "bearer" else None
        if account is None:
            raise HTTPException(401, "the token is not valid (revoked, or mistyped)")
        return Principal(account.name, account.is_lead, None)
    session = accounts.session(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(401, "sign in first: open the sign-in link the lead gave you")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        # another site, or another port of this host (same "site" for SameSite cookies), even for
        # a GET: asking for the next item leases one
        raise HTTPException(403, "requests from other sites are refused")
    if request.method not in SAFE_METHODS and not same_secret(request.headers.get("x-csrf-token"), session.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return Principal(session.account.name, session.account.is_lead, session.csrf_token)


def lead_only(who: Principal = Depends(authenticate)) -> Principal:
    if not who.is_lead:
        raise HTTPException(403, "only a lead may do this")
    return who


#: Largest request body taken, in bytes (every route takes a small JSON object).
MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """Refuse request bodies over MAX_BODY_BYTES with 413 before reading them (ASGI middleware:
    it checks Content-Length, and counts the bytes of bodies sent without one)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, counted, send)


async def _too_large(send) -> None:
    body = b'{"error": "too_large", "message": "request body too large"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static") and "/image" not in request.url.path:
        response.headers["Cache-Control"] = "no-store"
    return response
