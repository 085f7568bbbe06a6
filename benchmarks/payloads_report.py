"""What the payload benchmark measured, and its Markdown tables."""

from collections.abc import Sequence
from dataclasses import dataclass

MB = 1_000_000


@dataclass
class Transfer:
    seconds: float
    peak_rss_growth: int
    wire_bytes: int
    sha256_ok: bool
    server_cpu: float


@dataclass
class RangeCheck:
    header: str
    status: int
    content_range: str
    length: int
    millis: float
    exact: bool


@dataclass
class Report:
    size: int
    configuration: str
    generate_seconds: float
    raw_write_seconds: float
    baseline_rss: int
    upload: Transfer
    download_identity: Transfer
    download_zstd: Transfer
    on_disk: int
    record_size: int
    record_location: str
    record_compressed: bool
    ranges: list[RangeCheck]


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _mb(value: float) -> str:
    return f"{value / MB:.1f}"


def _rate(size: int, seconds: float) -> str:
    return f"{size / MB / seconds:.0f}" if seconds > 0 else "n/a"


def render(report: Report) -> str:
    size = report.size
    transfers = (
        ("upload (PUT, streamed, Content-Length)", report.upload),
        ("download (GET, identity: server decompresses)", report.download_identity),
        ("download (GET, Accept-Encoding: zstd, passthrough)", report.download_zstd),
    )
    rows = [
        [
            name,
            f"{transfer.seconds:.2f}",
            _rate(size, transfer.seconds),
            _mb(transfer.wire_bytes),
            _mb(transfer.peak_rss_growth),
            f"{100 * transfer.server_cpu / transfer.seconds:.0f} %",
            "yes" if transfer.sha256_ok else "**NO**",
        ]
        for name, transfer in transfers
    ]
    rows.append(
        [
            "raw file write (1 MiB chunks + fsync)",
            f"{report.raw_write_seconds:.2f}",
            _rate(size, report.raw_write_seconds),
            _mb(size),
            "",
            "",
            "",
        ]
    )
    rows.append(
        [
            "generator (this script, for reference)",
            f"{report.generate_seconds:.2f}",
            _rate(size, report.generate_seconds),
            _mb(size),
            "",
            "",
            "",
        ]
    )
    ratio = f"{size / report.on_disk:.2f}" if report.on_disk else "n/a"
    summary = markdown(
        ("what", "value"),
        [
            ["payload", f"{_mb(size)} MB ({size} bytes), {report.configuration}"],
            [
                "record `_storage_info`",
                f"location {report.record_location}, size {report.record_size}, "
                f"compressed {str(report.record_compressed).lower()}",
            ],
            ["on disk (`output.<token>.txt.zst`)", f"{_mb(report.on_disk)} MB, ratio {ratio}"],
            ["server idle RSS (after a 1 MB warm-up)", f"{_mb(report.baseline_rss)} MB"],
        ],
    )
    transfers_table = markdown(
        (
            "transfer",
            "seconds",
            "MB/s (of payload)",
            "wire MB",
            "peak RSS growth MB",
            "server CPU",
            "sha256",
        ),
        rows,
    )
    range_rows = [
        [
            f"`{check.header}`",
            str(check.status),
            f"`{check.content_range}`",
            str(check.length),
            f"{check.millis:.1f}",
            "yes" if check.exact else "**NO**",
        ]
        for check in report.ranges
    ]
    ranges_table = markdown(
        ("Range", "status", "Content-Range", "bytes", "ms", "exact"), range_rows
    )
    return f"{summary}\n\n{transfers_table}\n\n{ranges_table}"
