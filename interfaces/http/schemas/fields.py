"""Field types the bodies share: their bounds and examples reach the OpenAPI document."""

from typing import Annotated, Any

from msgspec import Meta

from domain.evaluation import INTEGER_MAX

Language = Annotated[str, Meta(min_length=1, max_length=50, examples=["python"])]
ShortText = Annotated[str, Meta(max_length=255)]
EventType = Annotated[str, Meta(min_length=1, max_length=100, examples=["container_started"])]
NonNegative = Annotated[int, Meta(ge=0, le=INTEGER_MAX)]  # an INTEGER column
Metadata = dict[str, Any]
ExitCode = Annotated[int, Meta(ge=-INTEGER_MAX - 1, le=INTEGER_MAX)]
