"""The dashboard's guards: a strict Content-Security-Policy on every answer, a CSRF token on
every action, basic auth for the standalone server, and who may do what."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CSRF_COOKIE = "jobmaster_csrf"
CSRF_FIELD = "csrf"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'")

Authorize = Callable[[Request, str, str], bool | Awaitable[bool]]
"""``authorize(request, action, target) -> bool``: ``action`` is ``view`` for a page, else
the action's name (``retry``, ``cancel``, ``delete``, ``pause``...); ``target`` what it is
about (a job id, a schedule, a lane, ``bulk``)."""


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: the cookie's, or a new one the answer sets."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) != 43:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """Whether a form's token is this browser's (the double-submit cookie pattern)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie, submitted or "")


def finish(request: Request, response: Response) -> Response:
    """Set the security headers, and the CSRF cookie if this request made one."""
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")
    token = getattr(request.state, "new_csrf", None)
    if token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            path=request.scope.get("root_path") or "/",
                            secure=request.url.scheme == "https")
    return response


class BasicAuth:
    """Asks every request for ``user:password`` (HTTP basic auth); compared in constant
    time, never logged."""

    def __init__(self, app: ASGIApp, credentials: str) -> None:
        user, sep, password = credentials.partition(":")
        if not sep or not user or not password:
            raise ValueError("dashboard auth must be USER:PASSWORD, both non-empty")
        self.app = app
        self._expected = f"{user}:{password}".encode()

    def __repr__(self) -> str:
        return "BasicAuth(<credentials hidden>)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            answer = PlainTextResponse("authentication required", status_code=401,
                                       headers={"WWW-Authenticate":
                                                'Basic realm="jobmaster", charset="UTF-8"'})
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)


async def allowed(authorize: Authorize | None, request: Request, action: str,
                  target: str) -> bool:
    """What ``authorize`` says (everything, without one)."""
    if authorize is None:
        return True
    verdict: Any = authorize(request, action, target)
    if isinstance(verdict, Awaitable):
        verdict = await verdict
    return bool(verdict)


__all__ = ["CSP", "CSRF_COOKIE", "CSRF_FIELD", "Authorize", "BasicAuth", "allowed",
           "csrf_ok", "csrf_token", "finish"]
