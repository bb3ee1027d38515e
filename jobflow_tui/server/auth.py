"""The server's token: where it lives, and the middleware that lets only its holders in.

A request proves itself with `Authorization: Bearer TOKEN` or, from a browser, with the
cookie that `/?token=TOKEN` sets once. Without it the answer is a bare 401. Tokens are
compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

COOKIE = "jobflow_token"
TOKEN_KEY = web.AppKey("token", str)


class TokenError(Exception):
    """The token file cannot be read or made."""


def default_token_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "jobflow-tui", "token")


def load_token(path: str | None) -> tuple[str, bool]:
    """The token in `path` (or the default file, made on first use, mode 0600); and whether
    it was made now."""
    made = False
    if path is None:
        path = default_token_file()
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another server made it first: read theirs
            except OSError as e:
                raise TokenError(f"cannot make the token file {path}: {e.strerror}") from None
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(32) + "\n")
                made = True
    try:
        with open(path) as f:
            token = f.read().strip()
    except OSError as e:
        raise TokenError(f"cannot read the token file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise TokenError(f"{path}: not a token (not text)") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise TokenError(f"{path}: a token must be at least 16 characters with no spaces")
    return token, made


def _matches(given: str | None, token: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def authorised(request: web.Request) -> bool:
    token = request.app[TOKEN_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and _matches(given.strip(), token):
        return True
    return _matches(request.cookies.get(COOKIE), token)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/" and "token" in request.query:
        # A browser's first visit: the token becomes a cookie, and leaves the address bar.
        if not _matches(request.query.get("token"), request.app[TOKEN_KEY]):
            return unauthorised()
        query = {k: v for k, v in request.query.items() if k != "token"}
        location = str(request.rel_url.with_query(query))
        resp = web.HTTPSeeOther(location=location)
        # Secure whenever the browser came over TLS, a proxy's included (a stricter cookie
        # is all that header can obtain).
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        resp.set_cookie(COOKIE, request.app[TOKEN_KEY], httponly=True, samesite="Strict", path="/", secure=secure)
        return resp
    if not authorised(request):
        return unauthorised()
    return await handler(request)


def unauthorised() -> web.Response:
    return web.json_response({"error": "unauthorised"}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="jobflow-tui"'})
