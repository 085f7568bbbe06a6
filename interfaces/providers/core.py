"""Settings, clock, services and use cases: the same whatever the adapters."""

from dishka import (
    AsyncContainer,
    Provider,
    Scope,
    from_context,
    provide,
    provide_all,
)

from application.failover.pinned_clock import PinnableClock
from application.ports.blob_store import BlobStore
from application.ports.clock import Clock
from application.ports.record_mirror import RecordMirror
from application.services.api_keys import ApiKeyVerifier
from application.services.audit_trail import AuditTrail
from application.services.payloads import PayloadStore
from application.services.publisher import RecordPublisher
from application.services.storage_audience import StorageAudience
from application.use_cases.activity import GetActivity
from application.use_cases.audit import ListAuditLog
from application.use_cases.browse_blobs import BrowseBlobs
from application.use_cases.celery_update import ApplyCeleryUpdate
from application.use_cases.changes import FeedRetention, ReadChanges
from application.use_cases.check_storage import CheckStorage
from application.use_cases.cleanup import CleanupEvaluations
from application.use_cases.create_evaluation import CreateEvaluation
from application.use_cases.delete_evaluation import DeleteEvaluation
from application.use_cases.erase_subject import EraseSubject, ExportSubject, SubjectField
from application.use_cases.evaluation_content import (
    AttachPayload,
    GetCompleteEvaluation,
    ReadPayload,
    UploadPayload,
)
from application.use_cases.events import ListEvents, RecordEvent
from application.use_cases.export_evaluations import ExportEvaluations
from application.use_cases.get_evaluation import (
    GetEvaluation,
    GetEvaluationFields,
    LoadEvaluation,
)
from application.use_cases.import_evaluations import ImportEvaluation
from application.use_cases.list_evaluations import ListEvaluationFields, ListEvaluations
from application.use_cases.logs import AppendLog, GetEvaluationLogs, ReadLog
from application.use_cases.object_storage import GetPayloadUrl, TierPayloads
from application.use_cases.rebuild_cache import RebuildCache
from application.use_cases.rebuild_database import CopyToMirror
from application.use_cases.running_evaluations import (
    GetRunningEvaluation,
    ListRunningEvaluations,
    RebuildRunningRegistry,
)
from application.use_cases.search_evaluations import SearchEvaluations
from application.use_cases.statistics import GetStatistics
from application.use_cases.storage_report import (
    DescribeStorage,
    GetBackendDetails,
    GetDatabaseDetails,
    GetFileDetails,
    GetStorageOverview,
    StorageConfiguration,
)
from application.use_cases.update_evaluation import ChangeApplier, UpdateEvaluation
from application.use_cases.warehouse_export import ExportWarehouse
from application.use_cases.warm_cache import WarmCache
from domain.audit import AuditContext
from domain.limits import InputLimits
from domain.tenancy import TenantId
from infrastructure.clock import SystemClock
from infrastructure.files.mirror import FileRecordMirror
from infrastructure.memory.mirror import NoRecordMirror
from interfaces import acting
from interfaces.live import LiveFeed, TenantFeed
from interfaces.providers.blobs import BlobPlacement
from interfaces.providers.sealing import BlobSeal
from interfaces.settings import Settings
from interfaces.storage_configuration import storage_configuration


class CoreProvider(Provider):
    """Settings, clock, services and use cases: the same whatever the adapters."""

    settings = from_context(provides=Settings, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return PinnableClock(SystemClock())

    @provide(scope=Scope.APP)
    def payloads(
        self, blobs: BlobStore, settings: Settings, placement: BlobPlacement
    ) -> PayloadStore:
        return PayloadStore(
            blobs,
            settings.storage.thresholds,
            location=placement.location,
            others=placement.others,
            mirrored=settings.storage.file_mirror,
        )

    @provide(scope=Scope.APP)
    def mirror(self, settings: Settings, seal: BlobSeal) -> RecordMirror:
        if settings.storage.file_mirror:
            return FileRecordMirror(settings.storage.file_storage_path, seal.lines())
        return NoRecordMirror()

    @provide(scope=Scope.APP)
    def subject_field(self, settings: Settings) -> SubjectField:
        return SubjectField(settings.subjects.metadata_key)

    @provide(scope=Scope.APP)
    def configuration(self, settings: Settings) -> StorageConfiguration:
        return storage_configuration(settings)

    services = provide_all(RecordPublisher, ChangeApplier, scope=Scope.APP)

    @provide(scope=Scope.APP)
    def limits(self, settings: Settings) -> InputLimits:
        return settings.limits.inputs

    @provide(scope=Scope.APP)
    def api_keys(self, settings: Settings) -> ApiKeyVerifier:
        return ApiKeyVerifier(settings.access.api_keys)

    # Set by the HTTP guard per request and by the CLI per command; else "system".
    @provide(scope=Scope.REQUEST)
    def audit_context(self) -> AuditContext:
        return acting.current()

    @provide(scope=Scope.REQUEST)
    def tenant(self, context: AuditContext) -> TenantId:
        """The caller's tenant; work no caller started names its own (ADR 0032)."""
        if context.tenant is None:
            raise acting.MissingTenantError(context.actor)
        return context.tenant

    audit = provide(AuditTrail, scope=Scope.REQUEST)

    @provide(scope=Scope.APP)
    def feed_retention(self, settings: Settings) -> FeedRetention:
        return FeedRetention(settings.changes.retention_s)

    @provide(scope=Scope.APP)
    def live_feed(self, container: AsyncContainer, settings: Settings) -> LiveFeed:
        return LiveFeed(container, settings.changes)

    @provide(scope=Scope.REQUEST)
    def tenant_feed(self, live: LiveFeed, tenant: TenantId) -> TenantFeed:
        """The caller's tenant's feed: a stream sees no other tenant's changes."""
        return live.of(tenant)

    use_cases = provide_all(
        CopyToMirror,
        CreateEvaluation,
        ListAuditLog,
        ReadChanges,
        GetEvaluation,
        LoadEvaluation,
        GetEvaluationFields,
        UpdateEvaluation,
        DeleteEvaluation,
        ListEvaluations,
        ListEvaluationFields,
        SearchEvaluations,
        ListRunningEvaluations,
        GetRunningEvaluation,
        RebuildRunningRegistry,
        AppendLog,
        ReadLog,
        GetEvaluationLogs,
        RecordEvent,
        ListEvents,
        ApplyCeleryUpdate,
        GetCompleteEvaluation,
        ReadPayload,
        UploadPayload,
        AttachPayload,
        CheckStorage,
        GetStatistics,
        DescribeStorage,
        GetStorageOverview,
        StorageAudience,
        GetBackendDetails,
        GetDatabaseDetails,
        GetFileDetails,
        GetActivity,
        BrowseBlobs,
        CleanupEvaluations,
        EraseSubject,
        ExportSubject,
        WarmCache,
        RebuildCache,
        ExportEvaluations,
        ExportWarehouse,
        ImportEvaluation,
        GetPayloadUrl,
        TierPayloads,
        scope=Scope.REQUEST,
    )
