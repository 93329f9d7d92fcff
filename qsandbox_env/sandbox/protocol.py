"""Framing between the Verifier and its zygotes: 4-byte big-endian length, then a JSON object.

JSON is written with ``ensure_ascii`` so NUL bytes and lone surrogates in programs travel intact.
"""

from __future__ import annotations

import json
import os
import struct

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 30


def encode(message: dict) -> bytes:
    body = json.dumps(message, ensure_ascii=True).encode("ascii")
    return _HEADER.pack(len(body)) + body


def write_message(fd: int, message: dict) -> None:
    data = memoryview(encode(message))
    while data:
        sent = os.write(fd, data)
        data = data[sent:]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> dict | None:
    """The next message, or None at end of stream."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"protocol message of {size} bytes exceeds {MAX_MESSAGE}")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)
