"""The template: one interpreter that preloads once and forks every zygote of a pool.

Importing Qiskit and warming its caches costs a few CPU-seconds, and each worker has two zygotes
(the candidate's and the judge's). Booted one by one, 16 workers on a 2-core machine import
Qiskit 32 times and start-up grows with the workers (5 s at one worker, 101 s at 16 here). So a
:class:`~qsandbox_env.sandbox.pool.ZygotePool` starts one template, which imports and warms
everything once, and asks it for each zygote: the template forks, and the fork becomes the zygote.
Start-up then costs one import plus one cheap fork and containment per zygote.

What a forked zygote shares with its template and its siblings, and what it does not:

- **Namespaces, filesystem, uid.** The template enters no namespace and never runs program code;
  it only imports. Each fork then does what a zygote booted on its own does first (its own user,
  mount, network, IPC, UTS and PID namespaces, the read-only view, the private ``/tmp``, hidden
  homes and sources), so every layer is per zygote exactly as before; only the imports happened
  earlier, outside. That is the trade-off: the imports run on the host's filesystem view, with
  the network. They are the same trusted imports, from the same files, and the environment they
  see is scrubbed the same way: ``HOME``, ``TMPDIR`` and ``MPLCONFIGDIR`` lie in a fresh
  directory of the template's own (``mkdtemp``, never a fixed name in the shared ``/tmp``,
  which another user could have prepared), which becomes each zygote's work root, so paths
  libraries fix at import point into the zygote's private tmpfs.
- **Memory.** A fork copies the address space: the zygotes share the template's pages only
  copy-on-write, so no zygote can write memory another sees. The template holds no test and no
  program, ever; the judge's tests arrive only in the judge's zygote, after the fork. The tamper
  snapshot of the library surface is taken here too, after the last import, so a fork starts
  with it and spends almost no CPU of its own (taken in each zygote, it cost 0.1 s there and
  wrote across the shared heap).
- **Huge pages.** The template backs its heap with 2 MiB pages; what a zygote then writes (the
  code it runs to contain itself) splits the shared ones it touches into 4 KiB pages, so a forked
  zygote has about 65 MiB of its heap in huge pages where a zygote booted on its own has about
  140 MiB, and each program's fork copies somewhat more page-table entries. Collapsing them again
  in each zygote would cost about 0.3 CPU-seconds a zygote, which is most of what forking saves
  on a machine with fewer cores than zygotes; it is not done.
- **Descriptors.** The pool sends each fork its three descriptors (its request pipe, its reply
  pipe, its end of the pair's socket) over the template's socket; the template closes them as
  soon as it has forked, so no zygote inherits another's, and each fork closes the template's
  socket before it does anything else: no zygote, and so no program, holds a channel to the
  template or to another worker's zygote.
- **Threads.** Forking a process that has threads leaves children that may deadlock, so the
  template starts none (the zygote's own rule) and serves from one thread. When its preload did
  leave a thread, the pool does not use it and boots each zygote on its own, as before.
- **Per-process state.** Each fork starts a new session, gets its pid namespace, its uid and
  its channel from the request; Python reseeds ``random`` after a fork, and every program's
  child reseeds NumPy. One thing is shared: the string-hash seed (``PYTHONHASHSEED``), fixed
  when the template's interpreter started. A candidate and its judge need the same one anyway
  (a set of names iterates in the same order on both sides); it is random per template.
- **Failure.** A zygote that dies is replaced by a new fork; if the template itself has died, by
  a zygote booted on its own. The pool holds each fork's pidfd (sent by the template, which made
  it before it could reap the pid), so it watches and kills exactly that process, never a reused
  pid.

The channel is a ``SOCK_SEQPACKET`` socket: one JSON request per packet, with its descriptors;
the reply is the fork's pid, with its pidfd.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import sys
import tempfile
import traceback

from qsandbox_env.sandbox.zygote import Zygote, reap_ended

MAX_PACKET = 1 << 16
REAP_INTERVAL = 1.0  # seconds between reaping ended forks while no request comes
WORK_PREFIX = "qsandbox-work-"


def make_work_root() -> str:
    """A fresh directory of this process's own for the pool's work root (see the module doc)."""
    root = tempfile.mkdtemp(prefix=WORK_PREFIX, dir="/tmp")
    os.chmod(root, 0o711)  # programs under another uid reach their own directories inside
    return root


def main(zygote: Zygote, in_fd: int, out_fd: int) -> None:
    """Preload, say so, then fork a zygote per request until the pool closes the socket."""
    channel = socket.socket(fileno=in_fd)
    os.close(out_fd)  # the same socket as in_fd
    _null_stdin()
    zygote.work_root = make_work_root()
    zygote.start_template()
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "work_root": zygote.work_root,
        "threads": zygote.threads,
        "preload_errors": zygote.preload_errors,
    }
    channel.send(json.dumps(ready).encode())
    try:
        serve(zygote, channel)
    finally:
        # Ours alone (made above): gone with the pool, even one that ended without closing us.
        shutil.rmtree(zygote.work_root, ignore_errors=True)


def serve(zygote: Zygote, channel: socket.socket) -> None:
    while True:
        reap_ended()
        if not select.select([channel], [], [], REAP_INTERVAL)[0]:
            continue
        note, fds, _, _ = socket.recv_fds(channel, MAX_PACKET, 3)
        if not note:
            reap_ended()  # the pool is gone; the zygotes it ended are not left as zombies
            return
        try:
            request = json.loads(note)
            if len(fds) != 3:
                raise ValueError(f"expected 3 descriptors, got {len(fds)}")
            pid = os.fork()
            if pid == 0:
                _become_zygote(zygote, channel, request, fds)  # never returns
            pidfd = os.pidfd_open(pid)
            try:
                socket.send_fds(channel, [json.dumps({"pid": pid}).encode()], [pidfd])
            finally:
                os.close(pidfd)
        except (OSError, ValueError, KeyError) as exc:
            channel.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            for fd in fds:
                os.close(fd)


def _become_zygote(zygote: Zygote, channel: socket.socket, request: dict, fds: list[int]) -> None:
    """In the fork: drop the template's socket, take this zygote's part, serve. Never returns."""
    code = 70
    try:
        template_pid = os.getppid()
        os.setsid()  # its own process group, as a zygote booted on its own
        channel.close()
        in_fd, out_fd, pair_fd = fds
        zygote.role = str(request["role"])
        zygote.uid = int(request["uid"])
        zygote.config = {
            **zygote.config,
            "role": zygote.role,
            "uid": zygote.uid,
            "pair_fd": pair_fd,
            "nproc_base": int(request["nproc_base"]),
        }
        zygote.start_forked(in_fd, out_fd, template_pid)
        zygote.serve()
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may return into the template's loop
        traceback.print_exc(file=sys.stderr)
    finally:
        os._exit(code)


def _null_stdin() -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
