"""How a field is read from the environment: ``Env`` and the parsers its fields name.

A parser turns the variable's text into the field's value or raises ``ValueError`` with
the reason; the loader prefixes the variable and its value.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from application.ports.warehouse import Table
from application.services.api_keys import ApiKey, digest_of
from domain.access import AccessScope
from domain.tenancy import DEFAULT_TENANT, TenantId, parse_tenant
from infrastructure.sql.engine import async_database_url


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Env:
    """The environment variable behind a field, kept next to it in ``Annotated``.

    The variable's name follows the rule (the group's ``PREFIX`` and the field's name
    upper-cased) unless ``name`` gives one the spec fixed otherwise. ``read`` replaces
    ``parse`` for a field fed by several variables (the rule's one and ``also``).
    """

    parse: Callable[[str], Any] = str
    name: str | None = None
    keep_empty: bool = False  # "" is a value, not "unset"
    read: Callable[[Mapping[str, str]], Any] | None = None
    also: tuple[str, ...] = ()


def normalize_database_url(url: str) -> str:
    """Accept the spec's ``postgresql://`` and ``sqlite:///`` forms; pick the async drivers."""
    normalized = async_database_url(url)
    if not normalized.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise ValueError("must be a postgresql:// or sqlite:/// URL")
    return normalized


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a port number between 1 and 65535")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


# ``redis+cluster://host:port`` (or ``rediss+cluster://``) is a Redis Cluster seed node,
# the same as ``REDIS_CLUSTER=true`` with ``redis://host:port``.
CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def tenant(raw: str) -> TenantId:
    return parse_tenant(raw.strip())


def redis_url(raw: str) -> str | None:
    if not raw.strip():
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)):
        raise ValueError("must be a redis://, rediss://, unix:// or redis+cluster:// URL")
    return raw


def nats_urls(raw: str) -> str | None:
    """One NATS server or several, comma-separated (``nats://``, ``tls://``, ``ws://``)."""
    urls = [url.strip() for url in raw.split(",") if url.strip()]
    for url in urls:
        if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ValueError("must be nats://, tls://, ws:// or wss:// URLs, comma-separated")
    return ",".join(urls) or None


def export_destination(raw: str) -> str | None:
    """A directory, or ``s3://bucket[/prefix]``; empty: no scheduled export."""
    value = raw.strip()
    if not value:
        return None
    if value.startswith("s3://") and len(value) <= len("s3://"):
        raise ValueError("must name a bucket: s3://bucket/prefix")
    if "://" in value and not value.startswith("s3://"):
        raise ValueError("must be a directory or an s3://bucket/prefix")
    return value


def export_tables(raw: str) -> tuple[Table, ...]:
    """Comma-separated tables of the warehouse export: evaluations, events, logs."""
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    known = [table.value for table in Table]
    if not names or not set(names) <= set(known):
        raise ValueError(f"must name some of {', '.join(known)}, comma-separated")
    return tuple(table for table in Table if table.value in names)


def http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def bucket(raw: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", raw):
        raise ValueError("must be an S3 bucket name (3-63 of a-z 0-9 . -)")
    return raw


def s3_prefix(raw: str) -> str:
    prefix = raw.strip("/")
    return f"{prefix}/" if prefix else ""


MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600


def presign_expiry(raw: str) -> int:
    value = positive_int(raw)
    if value > MAX_PRESIGN_EXPIRY_S:
        raise ValueError(f"must be at most {MAX_PRESIGN_EXPIRY_S} (7 days, the SigV4 limit)")
    return value


def origins(raw: str) -> tuple[str, ...]:
    parsed = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in parsed:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} must be an http:// or https:// origin")
    return parsed


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of names (blanks dropped, each once, in order)."""
    return tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))


_METADATA_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def metadata_key(raw: str) -> str:
    """A top-level metadata key: 1 to 64 of letters, digits, ``_ . : -``."""
    if not _METADATA_KEY.fullmatch(raw):
        raise ValueError("must be 1 to 64 letters, digits, '_', '.', ':' or '-'")
    return raw


def choice(kind: type[StrEnum]) -> Callable[[str], StrEnum]:
    def parse(raw: str) -> StrEnum:
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = "|".join(member.value for member in kind)
            raise ValueError(f"must be one of {allowed}") from None

    return parse


_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
MIN_SECRET_LENGTH = 16


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """``name:secret:scope[:tenant]`` entries separated by commas or new lines; without a
    tenant a key belongs to the default tenant.

    Errors name the entry by position and the key by name, never the secret.
    """
    keys: list[ApiKey] = []
    entries = [entry.strip() for entry in re.split(r"[,\n]", raw)]
    for position, entry in enumerate((e for e in entries if e and not e.startswith("#")), 1):
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) not in (3, 4):
            raise ValueError(f"entry {position} must look like name:secret:scope[:tenant]")
        name, secret, scope = parts[:3]
        if not _KEY_NAME.fullmatch(name):
            raise ValueError(f"entry {position}: the name may hold only letters, digits and . _ -")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"key {name!r}: the secret must be at least {MIN_SECRET_LENGTH} chars")
        try:
            access = AccessScope(scope.lower())
        except ValueError:
            raise ValueError(f"key {name!r}: the scope must be read, write or admin") from None
        try:
            tenant = parse_tenant(parts[3]) if len(parts) == 4 else DEFAULT_TENANT
        except ValueError as exc:
            raise ValueError(f"key {name!r}: {exc}") from None
        if any(key.name == name for key in keys):
            raise ValueError(f"key {name!r} is defined twice")
        keys.append(ApiKey(name=name, scope=access, digest=digest_of(secret), tenant=tenant))
    return tuple(keys)


def read_api_keys(env: Mapping[str, str]) -> tuple[ApiKey, ...]:
    """Keys from ``API_KEYS`` and the file ``API_KEYS_FILE`` names (kept out of ``ps``).

    Errors name the variable, never its value: it holds secrets.
    """
    keys: tuple[ApiKey, ...] = ()
    for variable in ("API_KEYS", "API_KEYS_FILE"):
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            if variable == "API_KEYS_FILE":
                try:
                    raw = Path(raw).read_text(encoding="utf-8")
                except OSError as exc:
                    raise ValueError(f"cannot read {raw}: {exc.strerror}") from None
            keys += parse_api_keys(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}: {exc}") from None
    names = [key.name for key in keys]
    if len(set(names)) != len(names):
        raise SettingsError("API_KEYS / API_KEYS_FILE: a key name is defined twice")
    return keys
