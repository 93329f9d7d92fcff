"""Frames between the judge and the candidate's child: a JSON header and a binary payload.

A frame is ``>II`` (header length, payload length), the header (a JSON object, ASCII) and the
payload (bytes the codec wrote). The reader bounds both lengths before it allocates anything, so a
child that writes a forged length cannot make the judge allocate memory it does not have.

This module is shared by both sides of the boundary and imports nothing from the project.
"""

from __future__ import annotations

import json
import socket
import struct

_LENGTHS = struct.Struct(">II")
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 28  # 256 MiB: a 24-qubit complex state vector, with room to spare


class WireError(ConnectionError):
    """The other side closed the channel or sent something that is not a frame."""


def send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    head = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    sock.sendall(_LENGTHS.pack(len(head), len(payload)) + head + payload)


def receive(sock: socket.socket) -> tuple[dict, bytes]:
    """The next frame; :class:`WireError` when the channel ends or the frame is malformed."""
    sizes = _exactly(sock, _LENGTHS.size)
    head_size, payload_size = _LENGTHS.unpack(sizes)
    if head_size > MAX_HEADER or payload_size > MAX_PAYLOAD:
        raise WireError(
            f"a frame of {head_size} + {payload_size} bytes exceeds the limits "
            f"({MAX_HEADER} + {MAX_PAYLOAD})"
        )
    try:
        header = json.loads(_exactly(sock, head_size))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"a frame header is not JSON: {exc}") from None
    if type(header) is not dict:
        raise WireError("a frame header is not a JSON object")
    return header, _exactly(sock, payload_size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        try:
            count = sock.recv_into(view[got:], size - got)
        except OSError as exc:
            raise WireError(f"the channel failed: {exc}") from None
        if count == 0:
            raise WireError("the other side closed the channel")
        got += count
    return bytes(buffer)
