"""Signing in to the explorer: a key is checked once, then only its name rides in a cookie.

The session cookie (see ``interfaces.http.security``) grants ``read`` whatever the
key's scope, and the key itself never appears in a URL, a page or a log line.
"""

from typing import Annotated, Any

import msgspec
from dishka.integrations.litestar import FromDishka
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_401_UNAUTHORIZED

from application.services.api_keys import ApiKeyVerifier
from interfaces.http.security import PUBLIC, SESSION_KEY

HOME = "/explorer"


class LoginForm(msgspec.Struct):
    key: Annotated[str, msgspec.Meta(max_length=1024)]
    next: Annotated[str, msgspec.Meta(max_length=2048)] = HOME


def safe_next(target: str | None) -> str:
    """Only a path inside the explorer: never another host (an open redirect)."""
    if target and target.startswith(f"{HOME}/") and "//" not in target and "\\" not in target:
        return target
    return HOME


class ExplorerLoginController(Controller):
    path = "/"
    include_in_schema = False
    opt = PUBLIC

    @get("/login", name="explorer:login")
    async def form(
        self,
        verifier: FromDishka[ApiKeyVerifier],
        next_page: Annotated[str | None, QueryParameter(name="next", max_length=2048)] = None,
    ) -> Template | Redirect:
        if not verifier.enabled:
            return Redirect(HOME)
        return Template("login.html", context={"next": safe_next(next_page), "page": "login"})

    @post("/login", status_code=HTTP_303_SEE_OTHER)
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        verifier: FromDishka[ApiKeyVerifier],
    ) -> Template | Redirect:
        caller = verifier.verify(data.key.strip()) if verifier.enabled else None
        if caller is None:
            return Template(
                "login.html",
                context={"next": safe_next(data.next), "page": "login", "failed": True},
                status_code=HTTP_401_UNAUTHORIZED,
            )
        request.set_session({SESSION_KEY: caller.name})
        return Redirect(safe_next(data.next), status_code=HTTP_303_SEE_OTHER)

    @post("/logout", status_code=HTTP_303_SEE_OTHER)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        if "session" in request.scope:
            request.clear_session()
        return Redirect(f"{HOME}/login", status_code=HTTP_303_SEE_OTHER)
