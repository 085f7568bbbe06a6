"""The plans of an evaluation's output and error payloads: streamed upload, ranged read,
and a download that resumes where it broke off."""

import os
from typing import IO, Never

import httpx

from crucible_storage._build import decoder_for, new_key, new_request, resource_path
from crucible_storage._plan import Call, Plan, Reply, Sleep, one
from crucible_storage._upload import Upload, UploadSource
from crucible_storage.errors import TransportError
from crucible_storage.models import Evaluation

PayloadKind = str  # "output" or "error"


def _payload_path(id: str, kind: PayloadKind) -> str:
    if kind not in ("output", "error"):
        raise ValueError(f"kind must be 'output' or 'error', not {kind!r}")
    return resource_path("evaluations", id, kind)


def upload_payload(
    id: str,
    source: UploadSource,
    *,
    kind: PayloadKind = "output",
    idempotency_key: str | None = None,
) -> Plan[Never, Evaluation]:
    """Replace the output (or error) with ``source``, streamed.

    ``source``: the text itself (``str``), its UTF-8 ``bytes``, a file path
    (``os.PathLike``), a binary file object, or an iterable of byte chunks
    (an async iterable with the async client).
    """
    upload = Upload(source)
    headers = {
        "Content-Type": "application/octet-stream",
        "Idempotency-Key": idempotency_key or new_key(),
    }
    if upload.length is not None:
        headers["Content-Length"] = str(upload.length)
    request = new_request("PUT", _payload_path(id, kind), headers=headers, content=upload)
    return (yield from one(Call(request, decoder_for(Evaluation))))


def _identity(reply: Reply) -> Reply:
    return reply


def read_payload(
    id: str,
    *,
    kind: PayloadKind = "output",
    start: int | None = None,
    end: int | None = None,
) -> Plan[Never, bytes]:
    """Bytes ``[start:end]`` of the output (or error), as a slice would give them.

    A negative ``start`` counts from the end; a range past the end gives ``b""``.
    """
    headers = {"Accept-Encoding": "identity"}
    if start is not None and start < 0:
        if end is not None:
            raise ValueError("a negative start (the last bytes) takes no end")
        headers["Range"] = f"bytes={start}"
    elif start or end is not None:
        first = start or 0
        if end is not None and end <= first:
            return b""
        headers["Range"] = f"bytes={first}-{'' if end is None else end - 1}"
    request = new_request("GET", _payload_path(id, kind), headers=headers)
    reply: Reply = yield Call(request, _identity, ok=frozenset({416}))
    return b"" if reply.status == 416 else reply.body


MAX_STALLS = 5


def download_payload(
    id: str,
    dest: "os.PathLike[str] | IO[bytes]",
    *,
    kind: PayloadKind = "output",
    resume: bool = True,
) -> Plan[Never, int]:
    """Write the output (or error) to ``dest``; returns its size in bytes.

    A broken download continues where it stopped (a ``Range`` request with
    ``If-Range``, so a payload replaced meanwhile starts over whole). With
    ``resume`` and a path, a partial file left by an earlier call continues
    too: its ETag is kept beside it in ``<name>.etag`` until it is complete.
    """
    target = _Target(dest, resume)
    try:
        stalls = 0
        while True:
            headers = {"Accept-Encoding": "identity"}
            if target.position and target.etag:
                headers["Range"] = f"bytes={target.position}-"
                headers["If-Range"] = target.etag
            else:
                target.restart()
            request = new_request("GET", _payload_path(id, kind), headers=headers)
            reply: Reply = yield Call(request, _identity, ok=frozenset({416}), sink=target)
            if reply.status == 416:
                if _total_of(reply.headers.get("content-range")) == target.position:
                    break  # the partial file was whole already
                target.restart()
                continue
            if reply.interrupted is None:
                break
            stalls = 0 if reply.received else stalls + 1
            if stalls > MAX_STALLS:
                raise TransportError(f"download of {kind} of {id} stalls: {reply.interrupted}")
            if stalls:
                yield Sleep(min(0.25 * 2**stalls, 4.0))
        target.complete()
        return target.position
    finally:
        target.close()


def _total_of(content_range: str | None) -> int | None:
    """The full size from ``Content-Range: bytes a-b/size`` (or ``*/size``)."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else None


def _first_of(content_range: str | None) -> int | None:
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None


class _Target:
    """The download's destination: a path (with its ETag kept beside it) or a file object."""

    def __init__(self, dest: "os.PathLike[str] | IO[bytes]", resume: bool) -> None:
        self.etag: str | None = None
        self.position = 0
        if isinstance(dest, os.PathLike):
            self._tag_path: str | None = os.fspath(dest) + ".etag"
            exists = os.path.exists(dest)
            if resume and exists and os.path.exists(self._tag_path):
                with open(self._tag_path) as tag:
                    self.etag = tag.read().strip() or None
            self._file: IO[bytes] = open(dest, "r+b" if exists else "w+b")  # noqa: SIM115
            self._owned = True
            self._base = 0
            if self.etag:
                self.position = self._file.seek(0, os.SEEK_END)
        else:
            self._tag_path = None
            self._file = dest
            self._owned = False
            self._base = dest.tell() if dest.seekable() else 0

    def restart(self) -> None:
        self.position = 0
        self.etag = None
        if self._file.seekable():
            self._file.seek(self._base)
            self._file.truncate()

    def start(self, status: int, headers: httpx.Headers) -> None:
        """Called with each answer before its body: a 200 (or 204) is the whole content."""
        if status == 206 and _first_of(headers.get("content-range")) == self.position:
            return
        if self.position:
            if not self._file.seekable():
                raise TransportError("the payload changed mid-download and dest cannot rewind")
            self.restart()
        self.etag = headers.get("etag")
        if self._tag_path is not None:
            if self.etag:
                with open(self._tag_path, "w") as tag:
                    tag.write(self.etag)
            elif os.path.exists(self._tag_path):
                os.remove(self._tag_path)

    def write(self, chunk: bytes) -> int:
        written = self._file.write(chunk)
        self.position += len(chunk)
        return written

    def complete(self) -> None:
        self._file.flush()
        if self._tag_path is not None and os.path.exists(self._tag_path):
            os.remove(self._tag_path)

    def close(self) -> None:
        if self._owned:
            self._file.close()
