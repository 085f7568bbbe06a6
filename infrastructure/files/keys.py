"""Blob keys: relative POSIX paths, checked before any of them touches storage.

Every blob store checks keys the same way, so a key the memory store accepts is
one the file store accepts too (the contract tests hold both to it).
"""

from pathlib import Path, PurePosixPath

COMPRESSED_SUFFIX = ".zst"


def check_blob_key(key: str) -> PurePosixPath:
    """The key as a relative path of plain parts; ``ValueError`` for anything that could escape."""
    if not key or "\x00" in key or "\\" in key:
        raise ValueError(f"invalid blob key {key!r}")
    path = PurePosixPath(key)
    if path.is_absolute() or key.startswith("/"):
        raise ValueError(f"blob key {key!r} must be relative")
    if any(part in {"", ".", ".."} for part in key.split("/")):
        raise ValueError(f"blob key {key!r} must not contain empty, '.' or '..' parts")
    return path


def resolve_inside(root: Path, key: str) -> Path:
    """``root/key`` with symlinks resolved, refused when it lands outside the resolved root.

    Resolving follows any symlink already inside the root, so a link that
    points elsewhere is caught here rather than written through.
    """
    relative = check_blob_key(key)
    base = root.resolve()
    target = base.joinpath(*relative.parts).resolve()
    if target == base or not target.is_relative_to(base):
        raise ValueError(f"blob key {key!r} resolves outside the storage root")
    return target


def is_compressed_key(key: str) -> bool:
    return key.endswith(COMPRESSED_SUFFIX)
