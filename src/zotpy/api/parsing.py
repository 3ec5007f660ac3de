"""Parsing of request parts: bodies streamed in chunks, ranges, pagination parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import request

from zotpy.api.headers import CHUNK_SIZE
from zotpy.errors import BlobUploadInvalid, Invalid, ManifestTooLarge, RangeInvalid
from zotpy.oci.manifest import MAX_MANIFEST_BYTES

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def body_chunks() -> Iterator[bytes]:
    """The request body in fixed-size reads; never held whole."""
    stream = request.stream
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def has_body() -> bool:
    """True when the request carries a body (a length above zero, or chunked transfer)."""
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def read_manifest_body() -> bytes:
    """The manifest body, refused with 413 above the 4 MiB limit."""
    if (request.content_length or 0) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge("manifest exceeds the 4 MiB limit")
    data = bytearray()
    for chunk in body_chunks():
        data += chunk
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestTooLarge("manifest exceeds the 4 MiB limit")
    return bytes(data)


def chunk_start() -> int | None:
    """The start offset a chunked PATCH states in Content-Range (None for a streamed PATCH)."""
    value = request.headers.get("Content-Range")
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        raise RangeInvalid("malformed Content-Range", detail={"Content-Range": value[:100]})
    start, end = int(match.group(1)), int(match.group(2))
    length = request.content_length
    if end < start or (length is not None and end - start + 1 != length):
        raise RangeInvalid("Content-Range does not match the body length")
    return start


def byte_range(size: int) -> tuple[int, int] | None:
    """The single byte range a GET asks for, as (start, end inclusive); None for the whole blob.

    Malformed or multiple ranges are ignored (the whole blob is sent), as HTTP allows;
    a well-formed range that cannot be satisfied is 416.
    """
    value = request.headers.get("Range")
    if not value:
        return None
    match = _RANGE.match(value.strip().replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            raise _unsatisfiable(size)
    else:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        start, end = max(size - suffix, 0), size - 1
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeInvalid:
    return RangeInvalid("requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})


def pagination() -> tuple[int | None, str | None]:
    """``n`` and ``last`` of tags/list and _catalog; bad or repeated values are 400."""
    args = request.args
    if len(args.getlist("n")) > 1 or len(args.getlist("last")) > 1:
        raise Invalid("n and last may be given once")
    raw_n = args.get("n")
    n: int | None = None
    if raw_n is not None and raw_n != "":
        try:
            n = int(raw_n)
        except ValueError:
            raise Invalid("n must be an integer") from None
        if n < 0:
            raise Invalid("n must not be negative")
    last = args.get("last")
    return n, last or None


def single_arg(name: str) -> str | None:
    """A query parameter that may appear at most once."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise BlobUploadInvalid(f"{name} may be given once")
    return values[0] if values else None
