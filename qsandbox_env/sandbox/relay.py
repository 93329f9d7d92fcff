"""The zygote's side of the QPU broker channel: one child's requests out, the broker's replies in.

For a program on an ``ibm:`` target the zygote gives the child one end of a socket pair. Each
framed message the child writes is forwarded to the Verifier (``{"id", "broker": message}`` on
the zygote's protocol pipe), the zygote waits for ``{"id", "broker_reply": reply}``, and the reply
is queued back to the child. Reading and writing the child's end never block: a program that
stalls mid-message or stops reading cannot hang the zygote. The time the broker says it spent
waiting on the service (a QPU queue, a job) is returned so the wall-clock limit can leave it out.

The relay never interprets a message beyond its framing; the broker judges every request.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import time

from qsandbox_env.sandbox import protocol

MAX_REQUEST = 64 << 20  # bytes; a larger frame closes the channel
_HEADER = struct.Struct(">I")


class BrokerRelay:
    """Carries one child's broker messages to the Verifier and back."""

    def __init__(self, request_id: int, in_fd: int, out_fd: int) -> None:
        self.request_id = request_id
        self.in_fd, self.out_fd = in_fd, out_fd
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.child_fd = theirs.detach()
        self.sock.setblocking(False)
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.open = True

    def close_child_end(self) -> None:
        """In the zygote, after the fork: only the child keeps its end."""
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1

    def register(self, sel: selectors.BaseSelector) -> None:
        sel.register(self.sock, selectors.EVENT_READ, "broker")

    def on_event(self, sel: selectors.BaseSelector, mask: int) -> float:
        """Serve one readiness event; returns seconds spent waiting for the broker."""
        waited = 0.0
        if mask & selectors.EVENT_READ:
            waited = self._read(sel)
        if self.open and mask & selectors.EVENT_WRITE and self.outbox:
            try:
                sent = self.sock.send(self.outbox)
                del self.outbox[:sent]
            except BlockingIOError:
                pass
            except OSError:
                self._shut(sel)
        if self.open:
            wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
            sel.modify(self.sock, wanted, "broker")
        return waited

    def _read(self, sel: selectors.BaseSelector) -> float:
        try:
            chunk = self.sock.recv(1 << 20)
        except BlockingIOError:
            return 0.0
        except OSError:
            chunk = b""
        if not chunk:
            self._shut(sel)
            return 0.0
        self.inbox += chunk
        waited = 0.0
        while len(self.inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.inbox)
            if size > MAX_REQUEST:
                self._shut(sel)
                return waited
            if len(self.inbox) < _HEADER.size + size:
                break
            body = bytes(self.inbox[_HEADER.size : _HEADER.size + size])
            del self.inbox[: _HEADER.size + size]
            waited += self._forward(body)
        return waited

    def _forward(self, body: bytes) -> float:
        try:
            message = json.loads(body)
        except ValueError:
            reply: dict = {"error": "invalid request: not JSON", "kind": "invalid"}
            self.outbox += protocol.encode(reply)
            return 0.0
        started = time.monotonic()
        protocol.write_message(self.out_fd, {"id": self.request_id, "broker": message})
        answer = protocol.read_message(self.in_fd)
        if answer is None or "broker_reply" not in answer:
            raise RuntimeError("the Verifier stopped answering broker requests")
        reply = answer["broker_reply"]
        self.outbox += protocol.encode(reply)
        # Only what the broker spent waiting on the service leaves the wall-clock limit: time it
        # spent decoding a request the program made costly (and resends forever) does not.
        waited = reply.get("waited") if isinstance(reply, dict) else None
        if not isinstance(waited, (int, float)) or not waited > 0:
            return 0.0
        return min(float(waited), time.monotonic() - started)

    def _shut(self, sel: selectors.BaseSelector) -> None:
        if self.open:
            self.open = False
            sel.unregister(self.sock)

    def close(self) -> None:
        self.close_child_end()
        self.sock.close()
