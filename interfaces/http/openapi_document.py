"""Finishing touches on the OpenAPI document, applied when Litestar first builds it.

Building the document is most of an app's construction (about 0.1 s of 0.125 s), and
most apps never serve it: a worker serves it once, a test app usually never. Litestar
builds it on first use (``OpenAPIPlugin.provide_openapi``) but offers no public hook
after the build, and every way the document is served (``/openapi.json`` here, the
Swagger page and ``/docs/openapi.json``) goes through its one plugin instance. So that
instance becomes a subclass whose build applies the touches: same slots, same state,
one method more.
"""

from collections.abc import Callable

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import OpenAPI, Parameter, Schema

Touch = Callable[[OpenAPI], None]


class _TouchedOpenAPIPlugin(OpenAPIPlugin):
    __slots__ = ()
    touches: tuple[Touch, ...] = ()

    def _build_openapi(self) -> OpenAPI:
        document = super()._build_openapi()
        for touch in self.touches:
            touch(document)
        return document


def touch_on_build(app: Litestar, *touches: Touch) -> None:
    """Apply ``touches`` to ``app``'s document each time Litestar builds it."""
    plugin = app.plugins.get(OpenAPIPlugin)
    namespace = {"__slots__": (), "touches": touches}
    touched = type("TouchedOpenAPIPlugin", (_TouchedOpenAPIPlugin,), namespace)
    plugin.__class__ = touched


def state_list_limit(maximum: int) -> Touch:
    """Document the ``limit`` maximum this instance enforces (``MAX_LIST_LIMIT``), which
    only the settings know; the handler's own schema is declared before them."""

    def touch(document: OpenAPI) -> None:
        operation = (document.paths or {})["/evaluations"].get
        for parameter in (operation.parameters or []) if operation else []:
            named = isinstance(parameter, Parameter) and parameter.name == "limit"
            if named and isinstance(schema := getattr(parameter, "schema", None), Schema):
                schema.maximum = maximum

    return touch
