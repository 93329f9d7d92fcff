"""Parent side of the sandbox: starting, feeding, watching and replacing zygote processes.

A :class:`ZygoteHandle` owns one zygote and talks to it over pipes; a :class:`ZygotePool` hands
handles to callers one at a time. A zygote that dies or stops answering is killed and replaced,
and the program it was running is tried once more before it is reported as a sandbox failure, so a
``verify`` call never hangs and never loses a program.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qsandbox_env.sandbox import protocol
from qsandbox_env.sandbox.template import WORK_PREFIX
from qsandbox_env.sandbox.zygote import THREAD_ENV, from_status

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Environment variables a zygote may inherit; everything else (tokens, keys, proxies) stays out.
PASSED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)
STARTUP_TIMEOUT = 300.0
# How long past a program's own limit the parent waits before it declares the zygote stuck.
GRACE_SECONDS = 20.0


# Answers one message a program sent to the QPU broker (see qsandbox_env.broker).
BrokerCallback = Callable[[Any], dict]


def _answer(broker: BrokerCallback | None, message: Any) -> dict:
    if broker is None:
        return {"error": "this Verifier's target has no QPU broker", "kind": "invalid"}
    try:
        return broker(message)
    except Exception as exc:  # noqa: BLE001 - a broker failure is the program's error, not ours
        return {"error": f"the QPU broker failed: {type(exc).__name__}: {exc}", "kind": "job"}


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): a zygote could not start or keeps dying."""


@dataclass(frozen=True)
class ZygoteConfig:
    python: str
    preload: tuple[str, ...]
    isolate: bool
    tmp_size: str
    target: tuple[str, str] = ("aer", "")  # (kind, device) of a qsandbox_env.targets.Target
    path: tuple[str, ...] = ()  # the caller's import path (see qsandbox_env.sandbox.boot)

    def as_json(
        self, uid: int, role: str = "candidate", pair_fd: int = -1, work_root: str = ""
    ) -> str:
        return json.dumps(
            {
                "role": role,
                "pair_fd": pair_fd,
                "nproc_base": nproc_base(),
                "work_root": work_root,
                "preload": list(self.preload),
                "isolate": self.isolate,
                "tmp_size": self.tmp_size,
                "uid": uid,
                "target": {"kind": self.target[0], "device": self.target[1]},
                "path": list(self.path),
            }
        )


def caller_import_path(python: str) -> tuple[str, ...]:
    """This process's import path, for a zygote on the same interpreter (empty for another).

    Directories only, absolute, and never one that would show programs what they must not see:

    - this package's root, one above it or one inside it (a checkout's ``tests/``): the project's
      files (its tasks' solutions, its tests' data);
    - the caller's own directories that Python put first on the path, the running script's and
      the working directory (unless ``PYTHONPATH`` names them): where a user keeps the data set
      being benchmarked, whose reference solutions a program could read and run;
    - ``/tmp`` or a directory above it: bound back, it would undo the sandbox's private ``/tmp``.
    """
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        # Another interpreter has its own libraries. Compared by path, not by what it links to:
        # a virtual environment's python (an execution profile's) links to this very binary.
        return ()
    root = os.path.realpath(PACKAGE_ROOT)
    named = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    local = _caller_directories() - named
    kept = []
    for entry in sys.path:
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if _related(real, root) or real in local or _at_or_above(real, "/tmp"):
            continue
        kept.append(entry)
    return tuple(dict.fromkeys(kept))


def _caller_directories() -> set[str]:
    """The working directory and the running script's directory, resolved."""
    found = {os.path.realpath(os.getcwd())}
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script:
        found.add(os.path.realpath(os.path.dirname(os.path.abspath(script))))
    return found


def _at_or_above(path: str, other: str) -> bool:
    """Whether ``path`` is ``other`` or a directory above it."""
    return path == other or other.startswith(path.rstrip(os.sep) + os.sep)


def _related(path: str, root: str) -> bool:
    """Whether ``path`` is ``root``, a directory above it or one inside it."""
    inside = path if path.endswith(os.sep) else path + os.sep
    return path == root or root.startswith(inside) or path.startswith(root + os.sep)


def nproc_base() -> int:
    """What a program's process cap sits on top of (see ``_own_process_count``)."""
    return 0 if os.geteuid() == 0 else _own_process_count() + 256


def _own_process_count() -> int:
    """Processes of this user: RLIMIT_NPROC counts them all, so a program's cap sits on top."""
    uid, count = str(os.getuid()), 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        count += line.split()[1] == uid
                        break
        except OSError:
            continue
    return count


def zygote_env(hash_seed: int | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    if hash_seed is not None:
        # One string hash for a candidate's zygote and its judge's: a set of names iterates in
        # the same order on both sides, as it did when the test shared the program's process.
        env["PYTHONHASHSEED"] = str(hash_seed)
    # Thread pools are sized when their library loads, which can be before the zygote's own code
    # runs (importing the package imports numpy): set the limits before the interpreter starts.
    env.update(THREAD_ENV)
    env["PYTHONPATH"] = PACKAGE_ROOT
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


class _Forked:
    """A zygote the template forked, with the calls the pool makes on a ``subprocess.Popen``.

    It is the template's child, not ours: the pidfd the template sent tells when it has ended
    and signals exactly it, whatever pid numbers are reused meanwhile.
    """

    def __init__(self, pid: int, pidfd: int, stdin_fd: int, stdout_fd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.stdin = os.fdopen(stdin_fd, "wb", buffering=0)
        self.stdout = os.fdopen(stdout_fd, "rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while it runs; once it has ended, -9 (its status is its parent's to read)."""
        if self.returncode is None and (
            self.pidfd < 0 or select.select([self.pidfd], [], [], 0)[0]
        ):
            self.returncode = -9
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        if self.poll() is None and not select.select([self.pidfd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout or 0.0)
        return self.poll() or 0

    def release(self) -> None:
        if self.pidfd >= 0:
            self.poll()
            os.close(self.pidfd)
            self.pidfd = -1


class Template:
    """The pool's template: one interpreter that preloads once and forks the zygotes.

    See :mod:`qsandbox_env.sandbox.template` for what a forked zygote shares and does not.
    """

    def __init__(self, config: ZygoteConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.channel: socket.socket | None = None
        self.info: dict = {}
        self._lock = threading.Lock()  # one request on the socket at a time

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def work_root(self) -> str:
        return str(self.info.get("work_root", ""))

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [
                    self.config.python,
                    "-m",
                    "qsandbox_env.sandbox.boot",
                    self.config.as_json(0, "template"),
                ],
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=subprocess.DEVNULL if not os.environ.get("QSANDBOX_DEBUG") else None,
                env=zygote_env(int.from_bytes(os.urandom(4), "little")),
                cwd="/",
                close_fds=True,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.channel = ours
        ready, _ = self._receive(STARTUP_TIMEOUT)
        if not ready.get("ready"):
            self.close()
            raise SandboxError(
                f"the sandbox interpreter {self.config.python!r} did not start; run it with "
                "QSANDBOX_DEBUG=1 to see its errors (is qiskit installed for that interpreter?)"
            )
        self.info = ready

    def usable(self) -> bool:
        """Alive, and safe to fork from: a preload that left a thread behind is not."""
        return self.alive() and self.info.get("threads") == 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def fork(self, role: str, uid: int, pair_fd: int) -> _Forked:
        """A new zygote forked from the template, holding its own pipes and ``pair_fd``."""
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        reply: dict = {}
        fds: list[int] = []
        try:
            note = json.dumps({"role": role, "uid": uid, "nproc_base": nproc_base()}).encode()
            with self._lock:
                assert self.channel is not None
                socket.send_fds(self.channel, [note], [to_r, from_w, pair_fd])
                reply, fds = self._receive(STARTUP_TIMEOUT)
        except (OSError, AssertionError):
            pass
        finally:
            os.close(to_r)
            os.close(from_w)
        if "pid" not in reply or len(fds) != 1:
            for fd in (*fds, to_w, from_r):
                os.close(fd)
            raise SandboxError(f"the template did not fork a zygote: {reply.get('error', '')}")
        os.set_inheritable(fds[0], False)
        return _Forked(int(reply["pid"]), fds[0], to_w, from_r)

    def _receive(self, timeout: float) -> tuple[dict, list[int]]:
        """The next packet and the descriptors it carries; ``{}`` if none came in time."""
        assert self.channel is not None
        if not select.select([self.channel], [], [], timeout)[0]:
            return {}, []
        try:
            note, fds, _, _ = socket.recv_fds(self.channel, 1 << 20, 1)
            return (json.loads(note) if note else {}), fds
        except (OSError, ValueError):
            return {}, []

    def close(self) -> None:
        """End the template (never its zygotes: each is its handle's) and remove its work root.

        Closing its socket first lets it reap the zygotes already ended and exit by itself.
        """
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is None:  # once reaped, its pid may name another process
                try:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        root = self.work_root
        if os.path.basename(root).startswith(WORK_PREFIX) and os.path.dirname(root) == "/tmp":
            shutil.rmtree(root, ignore_errors=True)


class _Process:
    """One zygote process (a candidate's or a judge's) and the pipes to it."""

    def __init__(self, config: ZygoteConfig, uid: int, role: str) -> None:
        self.config = config
        self.uid = uid
        self.role = role
        self.proc: subprocess.Popen | _Forked | None = None
        self.info: dict = {}

    def spawn(self, template: Template, pair_fd: int) -> None:
        """Fork this zygote from the pool's template."""
        self.proc = template.fork(self.role, self.uid, pair_fd)

    def launch(self, pair_fd: int, hash_seed: int, work_root: str = "") -> None:
        """Boot this zygote on its own: a new interpreter that preloads by itself."""
        self.proc = subprocess.Popen(
            [
                self.config.python,
                "-m",
                "qsandbox_env.sandbox.boot",
                self.config.as_json(self.uid, self.role, pair_fd, work_root),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not os.environ.get("QSANDBOX_DEBUG") else None,
            env=zygote_env(hash_seed),
            cwd="/",
            close_fds=True,
            pass_fds=(pair_fd,),
            start_new_session=True,
        )

    def wait_ready(self) -> dict:
        message = self.receive(STARTUP_TIMEOUT)
        if not message or not message.get("ready"):
            self.kill()
            raise SandboxError(
                f"the sandbox interpreter {self.config.python!r} did not start; run it with "
                "QSANDBOX_DEBUG=1 to see its errors (is qiskit installed for that interpreter?)"
            )
        self.info = message
        return message

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, message: dict) -> bool:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            protocol.write_message(self.proc.stdin.fileno(), message)
            return True
        except OSError:
            return False

    def stdout_fd(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def read(self) -> dict | None:
        """The next message, which select() said is there; None when the zygote is gone."""
        try:
            return protocol.read_message(self.stdout_fd())
        except (OSError, ValueError):
            return None

    def receive(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        try:
            return protocol.read_message(fd)
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        if self.proc is None:
            return
        # Its process group (a zygote leads its own): the launcher and the zygote inside the
        # PID namespace. A fork's pid is only ours to name while the pidfd says it runs.
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        if isinstance(self.proc, _Forked):
            self.proc.release()
        self.proc = None


class ZygoteHandle:
    """A pair of zygotes: one forks the candidates' children, the other the judges of their tests.

    The two never share a process: the judge's zygote holds the tests, the candidate's zygote
    never sees one. Per program, the candidate's zygote hands the judge's zygote one end of a
    fresh socket pair (over a socket pair made here at start-up), and each forks its process.
    """

    def __init__(self, config: ZygoteConfig, uid: int, template: Template | None = None) -> None:
        self.config = config
        self.uid = uid
        self.template = template  # forks this pair's zygotes while it is alive
        self.candidate = _Process(config, uid, "candidate")
        self.judge = _Process(config, judge_uid(uid), "judge")
        self.info: dict = {}

    @property
    def proc(self) -> subprocess.Popen | _Forked | None:
        """The candidate's zygote process (what a program's child is forked from)."""
        return self.candidate.proc

    def start(self) -> dict:
        self.kill()
        ours, theirs = socket.socketpair()
        try:
            self._launch(ours.fileno(), theirs.fileno())
        finally:
            ours.close()
            theirs.close()
        try:
            self.info = self.candidate.wait_ready()
            self.judge.wait_ready()
        except SandboxError:
            self.kill()
            raise
        return self.info

    def _launch(self, ours: int, theirs: int) -> None:
        """Both zygotes from the template; booted on their own when it cannot fork them.

        A pair always comes from one place: the two need the same string-hash seed.
        """
        template = self.template
        if template is not None and template.usable():
            try:
                self.candidate.spawn(template, ours)
                self.judge.spawn(template, theirs)
                return
            except SandboxError:
                self.kill()
        hash_seed = int.from_bytes(os.urandom(4), "little")
        work_root = template.work_root if template is not None else ""
        self.candidate.launch(ours, hash_seed, work_root)
        self.judge.launch(theirs, hash_seed, work_root)

    def run(
        self, request: dict, timeout: float, broker: BrokerCallback | None = None
    ) -> dict | None:
        """Run one program and judge it; the verdict message, or None if a zygote died or hung.

        Messages the program sends its QPU broker (``ibm:`` targets) arrive first; each is
        answered through ``broker`` and the wait starts again.
        """
        if not (self.candidate.alive() and self.judge.alive()):
            self.start()
        judging = {
            "id": request["id"],
            "timeout": request["timeout"],
            "limits": request["limits"],
            "judge": request["judge"],
            **({"broker": request["broker"]} if "broker" in request else {}),
        }
        running = {key: value for key, value in request.items() if key != "judge"}
        if not (self.judge.send(judging) and self.candidate.send(running)):
            self.kill()
            return None
        replies = self._replies(request["id"], timeout, broker)
        if replies is None:
            self.kill()
            return None
        return verdict_message(request["id"], replies["candidate"], replies["judge"])

    def _replies(
        self, number: int, timeout: float, broker: BrokerCallback | None
    ) -> dict[str, dict] | None:
        """Both zygotes' replies; messages either sends the QPU broker are answered meanwhile.

        None when a zygote dies, says something out of turn, or is silent for longer than the
        program's limit and the grace (time the broker took does not count).
        """
        processes = {"candidate": self.candidate, "judge": self.judge}
        replies: dict[str, dict] = {}
        deadline = time.monotonic() + timeout + GRACE_SECONDS
        while len(replies) < 2:
            waiting = {
                process.stdout_fd(): role
                for role, process in processes.items()
                if role not in replies
            }
            remaining = deadline - time.monotonic()
            ready = select.select(list(waiting), [], [], max(0.0, remaining))[0]
            if not ready:
                return None
            for fd in ready:
                role = waiting[fd]
                message = processes[role].read()
                if message is None or message.get("id") != number:
                    return None
                if "broker" not in message:
                    replies[role] = message
                    continue
                answer = {"id": number, "broker_reply": _answer(broker, message["broker"])}
                if not processes[role].send(answer):
                    return None
                deadline = time.monotonic() + timeout + GRACE_SECONDS
        return replies

    def kill(self) -> None:
        self.candidate.kill()
        self.judge.kill()


# Outcomes the judge decides; "gone" means the candidate's process ended and its status tells.
JUDGED = frozenset(
    {"passed", "failed", "error", "syntax", "memory", "not_isa", "tampered", "sandbox"}
)


def verdict_message(number: int, ran: dict, judged: dict) -> dict:
    """The verdict of one program from what each zygote reported."""
    message = {
        "id": number,
        "error_type": "",
        "detail": "",
        "output": ran.get("output", ""),
        "seconds": float(ran.get("seconds", 0.0)),
    }
    failure = ran.get("sandbox") or judged.get("sandbox")
    if failure:
        return {**message, "outcome": "sandbox", "detail": str(failure)}
    verdict = judged.get("verdict")
    if isinstance(verdict, dict) and verdict.get("outcome") in JUDGED:
        return {
            **message,
            "outcome": verdict["outcome"],
            "detail": str(verdict.get("detail", "")),
            "error_type": str(verdict.get("error_type", "")),
        }
    if ran.get("timed_out"):
        detail = f"the program ran past its {float(ran['timeout']):g} s wall-clock limit"
        return {**message, "outcome": "timeout", "detail": detail}
    if verdict is None and judged.get("timed_out"):
        detail = (
            f"the test of the program's answer ran past the {float(ran['timeout']):g} s "
            "wall-clock limit"
        )
        return {**message, "outcome": "timeout", "detail": detail}
    if verdict is None:
        outcome, detail = from_status(judged.get("status"))
        return {
            **message,
            "outcome": "killed" if outcome == "killed" else "error",
            "detail": "the test's process ended while it examined the program's answer: "
            + detail.replace("the program", "it"),
        }
    outcome, detail = from_status(ran.get("status"))
    return {**message, "outcome": outcome, "detail": detail}


_POOLS = itertools.count()
UID_BASE = 1 << 24  # far above the uids of real accounts
JUDGE_UID_OFFSET = 1 << 31  # a judge's uid: its candidate's plus this, so never the same


def judge_uid(uid: int) -> int:
    """The uid a judge runs as: never a candidate's, so no candidate may signal or trace it."""
    return uid + JUDGE_UID_OFFSET


def slot_uids(size: int) -> list[int]:
    """Unprivileged uids for a pool's programs, distinct from every other pool's that is alive.

    The process cap (RLIMIT_NPROC) counts per uid, so two pools sharing a uid would share a cap:
    Ray actors on one machine each own a Verifier. A live pid is unique, so uids are derived from
    it (pid_max is at most 2**22, which keeps them below 2**32) and from a per-process count of
    pools; 8 pools of up to 64 workers per process get disjoint uids.
    """
    block = UID_BASE + os.getpid() * 512 + (next(_POOLS) % 8) * 64
    return [block + i % 64 for i in range(size)]


class ZygotePool:
    """A fixed set of zygotes, forked from one template, lent out one caller at a time.

    The template imports and warms once; each zygote is a fork of it (see
    :mod:`qsandbox_env.sandbox.template`), so start-up hardly grows with the workers. Where the
    template cannot be forked from (its preload left a thread running), each zygote boots on its
    own, in parallel, as does a replacement once the template has died.
    """

    def __init__(self, config: ZygoteConfig, size: int) -> None:
        self.template: Template | None = Template(config)
        self.template.start()
        if not self.template.usable():
            self.template.close()
            self.template = None
        self.handles = [ZygoteHandle(config, uid, self.template) for uid in slot_uids(size)]
        self.free: queue.Queue[ZygoteHandle] = queue.Queue()
        self._ids = iter(range(1, sys.maxsize))
        self._id_lock = threading.Lock()
        errors: list[BaseException] = []

        def boot(handle: ZygoteHandle) -> None:
            try:
                handle.start()
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(h,)) for h in self.handles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.close()
            raise errors[0]
        for handle in self.handles:
            self.free.put(handle)

    @property
    def info(self) -> dict:
        return self.handles[0].info

    def next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def run(self, request: dict, timeout: float, broker: BrokerCallback | None = None) -> dict:
        """Run one request on a free zygote; retry once on a fresh zygote if one dies."""
        handle = self.free.get()
        try:
            for attempt in range(2):
                request["id"] = self.next_id()
                started = time.monotonic()
                reply = handle.run(request, timeout, broker)
                if reply is not None:
                    return reply
                if attempt == 0:
                    try:
                        handle.start()
                    except SandboxError:
                        break
            return {
                "outcome": "sandbox",
                "error_type": "",
                "detail": "the sandbox process died or stopped answering twice while running "
                "this program",
                "output": "",
                "seconds": time.monotonic() - started,
            }
        finally:
            self.free.put(handle)

    def close(self) -> None:
        for handle in self.handles:
            handle.kill()
        if self.template is not None:
            self.template.close()
