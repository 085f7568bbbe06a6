"""``traceparent`` across the broker, so one trace runs from the publisher through the
task's reports to the service's SQL. Optional: without opentelemetry nothing happens.
"""

from collections.abc import Mapping, MutableMapping
from typing import Any


def inject_into(headers: Any) -> None:
    """Put the current trace context into a task message's headers; a value already
    there (a tracer instrumentation's own publish span) is kept.
    """
    if not isinstance(headers, MutableMapping):
        return
    try:
        from opentelemetry import propagate
    except ImportError:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    for name, value in carrier.items():
        headers.setdefault(name, value)


def attach_from(request: Any) -> Any:
    """Make the context a task's message carries the current one for the task's run;
    the token ``detach`` takes, or None when nothing was attached.

    Nothing is attached when a span is already current (eager mode runs in the caller's
    context; a tracer instrumentation starts its own span), so neither is overridden.
    """
    try:
        from opentelemetry import context, propagate, trace
    except ImportError:
        return None
    if trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    for name in propagate.get_global_textmap().fields:
        value = _header(request, name)
        if isinstance(value, str):
            carrier[name] = value
    if not carrier:
        return None
    extracted = propagate.extract(carrier)
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return context.attach(extracted)


def detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


def _header(request: Any, name: str) -> Any:
    # A worker's request has the message's headers as attributes; ``apply(headers=)``
    # keeps them in ``request.headers``.
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None)
        if isinstance(headers, Mapping):
            value = headers.get(name)
    return value
