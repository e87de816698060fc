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
    if request.method not in SAFE_METHODS and not same_secret(request.headers.get("x-csrf-token"), session.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return Principal(session.account.name, session.account.is_lead, session.csrf_token)


def lead_only(who: Principal = Depends(authenticate)) -> Principal:
    if not who.is_lead:
        raise HTTPException(403, "only a lead may do this")
    return who


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static") and "/image" not in request.url.path:
        response.headers["Cache-Control"] = "no-store"
    return response
