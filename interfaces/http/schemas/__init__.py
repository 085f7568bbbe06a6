"""Request and response bodies of the REST API, one module per concern.

Re-exported here so that a controller imports its bodies from one place.
"""

from interfaces.http.schemas.lists import (
    EvaluationFieldsList,
    EvaluationList,
    RunningBody,
    RunningList,
)
from interfaces.http.schemas.records import (
    API_FIELDS,
    CeleryUpdateResult,
    EvaluationBody,
    EvaluationDeleted,
    EvaluationFieldsBody,
    PayloadUrlBody,
    StorageInfo,
)
from interfaces.http.schemas.requests import (
    AddEventBody,
    AppendLogBody,
    CeleryUpdateBody,
    CreateEvaluationBody,
    RecordBody,
    RequestBody,
    UpdateEvaluationBody,
)
from interfaces.http.schemas.storage import StatisticsBody, StorageInfoBody, StorageOverviewBody
from interfaces.http.schemas.storage_details import (
    CacheDetailsBody,
    DatabaseDetailsBody,
    FileDetailsBody,
)
from interfaces.http.schemas.timeline import (
    CompleteEvaluationBody,
    EventBody,
    LogAppended,
    LogBody,
    LogSourceName,
)

__all__ = [
    "API_FIELDS",
    "AddEventBody",
    "AppendLogBody",
    "CacheDetailsBody",
    "CeleryUpdateBody",
    "CeleryUpdateResult",
    "CompleteEvaluationBody",
    "CreateEvaluationBody",
    "DatabaseDetailsBody",
    "EvaluationBody",
    "EvaluationDeleted",
    "EvaluationFieldsBody",
    "EvaluationFieldsList",
    "EvaluationList",
    "EventBody",
    "FileDetailsBody",
    "LogAppended",
    "LogBody",
    "LogSourceName",
    "PayloadUrlBody",
    "RecordBody",
    "RequestBody",
    "RunningBody",
    "RunningList",
    "StatisticsBody",
    "StorageInfo",
    "StorageInfoBody",
    "StorageOverviewBody",
    "UpdateEvaluationBody",
]
