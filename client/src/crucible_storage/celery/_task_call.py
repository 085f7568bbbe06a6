"""A task as Celery's signals carry it, and the evaluation it reports to."""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_ID_PARAMETERS = ("eval_id", "evaluation_id")


@dataclass(frozen=True)
class TaskCall:
    """A task as the signals describe it, for ``evaluation_id`` to map.

    ``task`` is ``None`` where the process does not register the task (a publisher
    that sends it by name).
    """

    name: str
    id: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    task: Any = None


EvaluationIdOf = Callable[[TaskCall], str | None]


def default_evaluation_id(call: TaskCall) -> str | None:
    """The ``eval_id`` or ``evaluation_id`` keyword, else the first positional argument
    when the task's signature names it so; ``None`` (the task is not reported) otherwise.
    """
    for name in _ID_PARAMETERS:
        value = call.kwargs.get(name)
        if isinstance(value, str) and value:
            return value
    if call.args and _first_parameter(call.task) in _ID_PARAMETERS:
        first = call.args[0]
        if isinstance(first, str) and first:
            return first
    return None


def _first_parameter(task: Any) -> str | None:
    # ``task.run`` is bound for ``bind=True`` tasks, so ``self`` is already gone.
    run = getattr(task, "run", None)
    if run is None:
        return None
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if parameters and parameters[0].kind in positional:
        return parameters[0].name
    return None


# -- what the signals carry -------------------------------------------------------------


def call_of_published(sender: Any, body: Any, headers: Any) -> TaskCall | None:
    """The task of a published message, task protocol 2 (headers + tuple body) or 1."""
    if isinstance(headers, Mapping) and "task" in headers and "id" in headers:
        args, kwargs = ((), {})
        if isinstance(body, tuple | list) and len(body) >= 2:
            args, kwargs = body[0], body[1]
        name, task_id = str(headers["task"]), str(headers["id"])
    elif isinstance(body, Mapping) and "task" in body and "id" in body:
        args, kwargs = body.get("args") or (), body.get("kwargs") or {}
        name, task_id = str(body["task"]), str(body["id"])
    else:
        return None
    name = sender if isinstance(sender, str) else name
    return TaskCall(
        name=name,
        id=task_id,
        args=tuple(args) if isinstance(args, list | tuple) else (),
        kwargs=kwargs if isinstance(kwargs, Mapping) else {},
        task=None,
    )


def call_of_task(task: Any, task_id: Any, args: Any, kwargs: Any) -> TaskCall | None:
    if not task_id:
        return None
    return TaskCall(
        name=str(getattr(task, "name", "") or ""),
        id=str(task_id),
        args=tuple(args) if isinstance(args, list | tuple) else (),
        kwargs=kwargs if isinstance(kwargs, Mapping) else {},
        task=task,
    )


def call_of_worker_request(request: Any) -> TaskCall | None:
    task = getattr(request, "task", None)
    return call_of_task(task, getattr(request, "id", None), request.args, request.kwargs)


def request_dict(request: Any) -> Mapping[str, Any]:
    value = getattr(request, "request_dict", None)
    return value if isinstance(value, Mapping) else {}


def redelivered(delivery_info: Any) -> bool:
    return isinstance(delivery_info, Mapping) and bool(delivery_info.get("redelivered"))


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
