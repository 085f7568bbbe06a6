"""The HTTP ceiling: a minimal Litestar app, served exactly like the service.

``uvicorn --factory benchmarks.ceiling_app:create_app`` with the same workers, loop
and HTTP parser as the service; ``GET /`` answers a small JSON object. What the
service gets relative to this is what its own work costs per request.
"""

from litestar import Litestar, get


@get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello])
