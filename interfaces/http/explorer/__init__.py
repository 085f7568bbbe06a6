"""The storage explorer: server-rendered pages under ``/explorer`` with local assets only."""

from pathlib import Path

from dishka.integrations.litestar import DishkaRouter
from litestar.datastructures import MutableScopeHeaders
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.http.explorer.charts import human_bytes
from interfaces.http.explorer.controller import ExplorerController
from interfaces.http.explorer.errors import EXCEPTION_HANDLERS
from interfaces.http.explorer.login import ExplorerLoginController
from interfaces.http.explorer.parts import ExplorerPartsController
from interfaces.http.explorer.views import metric_label, metric_value, when
from interfaces.http.security import PUBLIC

HERE = Path(__file__).parent
# No inline script or style anywhere: every asset is a file under /explorer/static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def security_headers(app: ASGIApp) -> ASGIApp:
    """Add ``SECURITY_HEADERS`` to every explorer response: pages, assets and error pages."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def _register_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(
        bytes=human_bytes, metric=metric_value, label=metric_label, when=when
    )


template_config = TemplateConfig(
    directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_register_filters
)

explorer_router = DishkaRouter(
    "/explorer",
    route_handlers=[
        ExplorerController,
        ExplorerPartsController,
        ExplorerLoginController,
        # The sign-in page needs its stylesheet before anyone has signed in.
        create_static_files_router(path="/static", directories=[HERE / "static"], opt=PUBLIC),
    ],
    middleware=[security_headers],
    exception_handlers=EXCEPTION_HANDLERS,
)

__all__ = ["explorer_router", "template_config"]
