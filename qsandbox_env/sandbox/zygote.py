"""The zygote: a warm interpreter that forks one isolated child per program.

Usually forked from the pool's template (:mod:`qsandbox_env.sandbox.template`), which preloaded
Qiskit once for every zygote; otherwise started by :class:`~qsandbox_env.sandbox.pool.ZygotePool`
on its own (through :mod:`qsandbox_env.sandbox.boot`, which puts the caller's import path in place
first) and preloading by itself. Either way it enters new namespaces (becoming PID 1 of its own PID
namespace, so that one ``kill(-1)`` ends every process a program left behind), builds a read-only
view of the filesystem, has Qiskit loaded without a thread started, hides the sources, snapshots the
protected library surface, and then serves requests from its parent: one program at a time, each in
a fresh child with its own working directory, uid, rlimits and environment. It never runs program
code itself.

One module, though long: start-up, forking, confinement and clean-up are one sequence whose order
is what makes it safe (the sources hidden and the tamper snapshot taken after the last import,
descriptors closed before a child confines itself), and it reads best top to bottom in one place.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import select
import selectors
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Callable

from qsandbox_env.sandbox import child, guard, isolation, judge, protocol, relay, warmup

WORK_ROOT = "/tmp/qsandbox-work"
# The directory that holds the qsandbox_env package (a checkout, or site-packages).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKER_FD = 254  # where a child on an ibm: target finds its QPU broker channel
OUTPUT_CHUNK = 1 << 16

# Keep every numerical library single-threaded: threads must not exist at fork time, and one
# program per core is how the Verifier scales.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "QISKIT_PARALLEL": "FALSE",
    "QISKIT_NUM_PROCS": "1",
    "MPLBACKEND": "Agg",
    "QISKIT_IBM_RUNTIME_LOG_LEVEL": "ERROR",
}


class Zygote:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.iso = isolation.Isolation()
        self.pid_namespace = False
        self.uid = int(config.get("uid", 0))
        self.snapshot: guard.Snapshot | None = None
        self.as_root = os.geteuid() == 0  # before any user namespace makes us "root" inside it
        self.preload_errors: dict[str, str] = {}
        self.threads = 1
        self.huge_pages = 0  # bytes of the heap moved to 2 MiB pages (see warmup.huge_pages)
        # Where programs' working directories and homes go: a template's private directory
        # (see template), or the fixed default for a zygote booted on its own.
        self.work_root = str(config.get("work_root") or WORK_ROOT)
        self.home = self.work_root
        self.template_pid: int | None = None  # the template this zygote was forked from
        # "candidate": runs the model's programs; "judge": runs the tasks' tests against them.
        self.role = config.get("role", "candidate")
        self.pair: socket.socket | None = None  # to the other zygote of the pair (descriptors)

    # -- start-up -------------------------------------------------------------------------
    def start(self, in_fd: int, out_fd: int) -> None:
        """Boot on its own: contain this process, then preload, then seal (a standalone zygote)."""
        self.in_fd, self.out_fd = in_fd, out_fd
        self._contain()
        self._preload()
        self._install_runtime(child)
        self._warm_up()
        self._seal()
        if self.config.get("preload"):
            self.huge_pages = warmup.huge_pages()  # a large heap forks faster from 2 MiB pages
        self.threads = warmup.thread_count() or 1

    def start_template(self) -> None:
        """Preload in the template, which contains nothing and forks the zygotes (see template).

        The same environment a zygote would have when it imports (thread limits, a home and a
        matplotlib directory under the work root, which only this template's own private
        directory holds on the host), so that paths libraries fix at import are right in every
        zygote forked from here.
        """
        self._environment(os.path.join(self.work_root, "home"))
        self._preload()
        self._install_runtime(child)
        self._warm_up()
        # The tamper snapshot too, once for all: taken in each zygote, its reads and reference
        # counts would write across the heap the zygote shares with this template, splitting the
        # huge pages below into 4 KiB ones (each program's fork would then copy several times
        # more page-table entries). A judge's zygote keeps its copy unused.
        self.snapshot = guard.Snapshot()
        self._seal_runtime(self.snapshot)
        gc.collect()
        gc.freeze()
        if self.config.get("preload"):
            self.huge_pages = warmup.huge_pages()
        self.threads = warmup.thread_count() or 1

    def start_forked(self, in_fd: int, out_fd: int, template_pid: int) -> None:
        """Become a zygote in a process just forked from the template: contain it, then seal.

        Everything the template imported and warmed is already here; what remains is what is
        this zygote's own: its namespaces and filesystem, the hidden sources, the tamper snapshot.
        """
        self.in_fd, self.out_fd = in_fd, out_fd
        self.template_pid = template_pid
        self._contain()
        # The template's matplotlib directory is a path in this zygote's own work root now,
        # which starts empty: children may write their font cache there, as before.
        os.makedirs(os.environ["MPLCONFIGDIR"], mode=0o755, exist_ok=True)
        self._seal()
        self.threads = warmup.thread_count() or 1

    def _contain(self) -> None:
        """Namespaces, the filesystem view, the record of layers, and the environment."""
        isolate = self.config.get("isolate", True)
        if isolate:
            self._isolate()
        if not self.as_root:
            self.iso.lack(
                "unprivileged-uid",
                "not started as root: programs run as the caller's "
                "uid (with every capability dropped inside the user namespace)",
            )
        self.iso.add("rlimits")
        self.iso.add("scrubbed-environment")
        self.iso.add("no-new-privileges")
        if isolate and "mount-namespace" in self.iso.active:
            self.iso.add("ipc-namespace-per-program")
        for layer in isolation.LAYERS:
            if layer not in self.iso.active and layer not in self.iso.missing:
                self.iso.lack(
                    layer,
                    "isolation was turned off (isolate=False)"
                    if not isolate
                    else "not available on this machine",
                )
        os.makedirs(self.work_root, mode=0o711, exist_ok=True)
        # In a private work root the home needs no name of its own; in a shared one (no mount
        # namespace) each zygote's is apart.
        name = "home" if "private-tmp" in self.iso.active else f"home-{os.getpid()}"
        self._environment(os.path.join(self.work_root, name))

    def _environment(self, home: str) -> None:
        os.environ.update(THREAD_ENV)
        os.environ["MPLCONFIGDIR"] = os.path.join(self.work_root, ".matplotlib")
        # Libraries fix paths under ~ when imported (qiskit-ibm-runtime's account file): the
        # home they see is a fresh, writable, empty directory for every program.
        os.environ["HOME"] = self.home = home
        os.environ["TMPDIR"] = self.work_root

    def _seal(self) -> None:
        """After the last import: hide the sources, snapshot the library surface, freeze gc."""
        if "mount-namespace" in self.iso.active:
            isolation.hide_sources(self.iso, PACKAGE_ROOT)
        else:
            self.iso.lack("hidden-sources", "no mount namespace")
        if self.role == "candidate" and self.snapshot is None:  # (a template took it already)
            self.snapshot = guard.Snapshot()
            self._seal_runtime(self.snapshot)
        # Everything so far moves to gc's permanent generation: children neither scan it (no
        # copy-on-write faults from collections) nor mistake it for something a program created.
        gc.collect()
        gc.freeze()

    def _isolate(self) -> None:
        pending_pid = isolation.enter_namespaces(self.iso)
        if pending_pid:
            pid = os.fork()
            if pid:
                _wait_and_exit(pid)
            isolation.die_with_parent()
            self.pid_namespace = True
            self.iso.add("pid-namespace")
        if "mount-namespace" in self.iso.active:
            isolation.build_filesystem(
                self.iso, self.config.get("tmp_size", "256m"), self.pid_namespace, self.work_root
            )
        else:
            for layer in ("read-only-filesystem", "private-tmp", "hidden-home"):
                self.iso.lack(layer, "no mount namespace")
        if self.as_root and self.uid:
            self.iso.add("unprivileged-uid")

    def _preload(self) -> None:
        """Import what programs will need; failures are reported to the Verifier, not fatal."""
        warnings.simplefilter("ignore")
        for name in self.config.get("preload", []):
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - a missing optional module is not fatal
                self.preload_errors[name] = f"{type(exc).__name__}: {exc}"
        warnings.resetwarnings()

    def _warm_up(self) -> None:
        """Fill the caches every child would fill again; after the last import (see warmup)."""
        if self.config.get("preload"):
            warnings.simplefilter("ignore")
            warmup.run(self.preload_errors)
            warnings.resetwarnings()

    def _install_runtime(self, harness: types.ModuleType) -> None:
        """Serve the target's devices from ``QiskitRuntimeService()``, before the snapshot.

        On ``aer`` and ``fake:`` targets that is the offline runtime, whose devices (calibrations,
        targets, noise models) are built here once instead of in every child. On ``ibm:``
        targets the QPU broker's proxy serves the runtime instead.
        """
        target = self.config.get("target") or {"kind": "aer", "device": ""}
        if target.get("kind") == "ibm":  # the QPU broker's credential-free proxy
            from qsandbox_env.sandbox import qpu_proxy

            harness.ISA_ERRORS = qpu_proxy.install()  # type: ignore[attr-defined]
            return
        if target.get("kind") not in ("aer", "fake"):
            return
        warnings.simplefilter("ignore")
        try:
            from qsandbox_env.sandbox import offline_runtime

            harness.ISA_ERRORS = offline_runtime.install(  # type: ignore[attr-defined]
                target, preload=bool(self.config.get("preload"))
            )
        except ImportError as exc:
            if target.get("kind") == "fake" or exc.name != "qiskit_ibm_runtime":
                self.preload_errors["offline runtime"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported to the Verifier, programs still run
            self.preload_errors["offline runtime"] = f"{type(exc).__name__}: {exc}"
        finally:
            warnings.resetwarnings()

    def _seal_runtime(self, snapshot: guard.Snapshot) -> None:
        """Watch what every child shares with its test: prebuilt devices, the QPU broker link."""
        seals = []
        offline = sys.modules.get("qsandbox_env.sandbox.offline_runtime")
        # Devices built lazily in each child share nothing yet (and building them changes them).
        if offline is not None and self.config.get("preload") and offline._FLEET:
            seals += offline.seals()
        if (self.config.get("target") or {}).get("kind") == "ibm":
            from qsandbox_env.sandbox import qpu_proxy

            seals += qpu_proxy.seals()
        for label, probe in seals:
            snapshot.seal(label, probe)
        if offline is not None and self.config.get("preload") and offline._FLEET:
            for label, root in offline.content_seals():
                snapshot.seal_contents(label, root)

    # -- serving --------------------------------------------------------------------------
    def serve(self) -> None:
        self.pair = socket.socket(fileno=int(self.config["pair_fd"]))
        protocol.write_message(
            self.out_fd,
            {
                "ready": True,
                "pid": os.getpid(),
                "isolation": {"active": self.iso.active, "missing": self.iso.missing},
                "preload_errors": self.preload_errors,
                "threads": self.threads,
                "huge_pages": self.huge_pages,
                "template": self.template_pid,
            },
        )
        handle = self.handle if self.role == "candidate" else self.handle_judging
        while True:
            request = protocol.read_message(self.in_fd)
            if request is None:
                return
            workdir = os.path.join(self.work_root, f"run-{os.getpid()}-{request['id']}")
            try:
                try:
                    reply = handle(request, workdir)
                except Exception as exc:  # noqa: BLE001 - our own failure, reported, not fatal
                    reply = {
                        "id": request["id"],
                        "sandbox": f"the sandbox failed: {type(exc).__name__}: {exc}",
                    }
                protocol.write_message(self.out_fd, reply)
            finally:
                self._clean(workdir)  # after the reply: the caller need not wait for it

    def handle(self, request: dict, workdir: str) -> dict:
        """Run the candidate's program in a fresh child; its status and output, not a verdict.

        The child's end of a new socket pair goes to the child; the other end, and a descriptor
        of the working directory (which the judge reads the program's files through), go to the
        judge zygote, which forks the process that runs the test.
        """
        for path in (workdir, self.home):
            remove_tree(path)
            os.mkdir(path, 0o755 if path == workdir else 0o700)
            if "unprivileged-uid" in self.iso.active:
                os.chown(path, self.uid, self.uid)
        ours, theirs = socket.socketpair()
        # The judge sees this zygote's filesystem (the program's files among it) by taking its
        # root as the judge's own root: this descriptor of "/".
        root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert self.pair is not None
            note = json.dumps({"id": request["id"], "workdir": workdir}).encode()
            socket.send_fds(self.pair, [note], [theirs.fileno(), root])
        finally:
            theirs.close()
            os.close(root)
        out_r, out_w = os.pipe()
        result = self._fork(
            request,
            out_r,
            lambda broker_fd: _child(request, ours.detach(), out_w, workdir, self, broker_fd),
            lambda: (ours.close(), os.close(out_w)),
            lambda pid, started, broker: _collect(pid, out_r, request, started, broker),
        )
        result["timeout"] = request["timeout"]
        return result

    def handle_judging(self, request: dict, workdir: str) -> dict:
        """Run the task's test against the candidate the other zygote started for this request."""
        sock, directory, workdir = self._receive_channel(request)
        if sock is None:
            return {"id": request["id"], "sandbox": "the candidate's channel never arrived"}
        report_r, report_w = os.pipe()
        return self._fork(
            request,
            report_r,
            lambda broker_fd: _judge_child(
                request, sock.detach(), directory, workdir, report_w, self, broker_fd
            ),
            lambda: (sock.close(), os.close(directory), os.close(report_w)),
            lambda pid, started, broker: _collect_verdict(pid, report_r, request, started, broker),
        )

    def _fork(
        self,
        request: dict,
        read_end: int,
        run: Callable[[int], None],
        after_fork: Callable[[], object],
        collect: Callable[[int, float, relay.BrokerRelay | None], dict],
    ) -> dict:
        """Fork a child or a judge (``run``, which never returns), then ``collect`` its result.

        On ``ibm:`` targets the process gets a channel to the parent's QPU broker (a test may use
        the QPU as well as a program). ``read_end`` is the pipe the result is read from;
        ``after_fork`` closes, in this process, what only the forked one keeps.
        """
        broker = None
        if request.get("broker"):
            broker = relay.BrokerRelay(request["id"], self.in_fd, self.out_fd)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # never returns
            os.close(read_end)
            run(broker.child_fd if broker else -1)
        after_fork()
        try:
            if broker:
                broker.close_child_end()
            result = collect(pid, started, broker)
        finally:
            os.close(read_end)
            if broker:
                broker.close()
        result["seconds"] = time.monotonic() - started
        result["id"] = request["id"]
        return result

    def _receive_channel(self, request: dict) -> tuple[socket.socket | None, int, str]:
        """The judge's end of this request's socket pair, the candidate zygote's root directory
        (a descriptor) and the program's working directory there.

        Notes for earlier requests (whose judging never started) are dropped.
        """
        assert self.pair is not None
        deadline = time.monotonic() + float(request["timeout"]) + 10.0
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([self.pair], [], [], max(0.0, remaining))[0]
            if not ready:
                return None, -1, ""
            note, fds, _, _ = socket.recv_fds(self.pair, 4096, 2)
            if not note:
                return None, -1, ""
            try:
                told = json.loads(note)
                number, workdir = told["id"], str(told["workdir"])
            except (ValueError, KeyError, TypeError):
                number, workdir = None, ""
            if number == request["id"] and len(fds) == 2:
                return socket.socket(fileno=fds[0]), fds[1], workdir
            for fd in fds:
                os.close(fd)

    def _clean(self, workdir: str) -> None:
        if self.pid_namespace:
            isolation.kill_namespace()
        reap_ended()
        remove_tree(workdir)
        remove_tree(self.home)
        if "private-tmp" not in self.iso.active:
            return
        # Our own /dev/shm and work root: whatever a program left there goes before the next one.
        # (As an unprivileged uid a program can only write its own directory, but as the caller's
        # uid inside a user namespace it can write the whole work root.)
        for root, spare in (("/dev/shm", ()), (self.work_root, (".matplotlib",))):
            for name in os.listdir(root):
                if name not in spare:
                    _remove(os.path.join(root, name))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(path)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def remove_tree(path: str, max_depth: int = 10_000) -> None:
    """Remove a directory tree; never raises (what cannot go is left).

    Works through directory descriptors with an explicit stack instead of ``shutil.rmtree``,
    which recurses once per level and builds full paths: a program may leave a tree thousands of
    levels deep, past both the recursion limit and ``PATH_MAX``, and the zygote must survive
    cleaning it. (With a private tmpfs the zygote renews the whole mount instead.)
    """
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        _failed(os.unlink, path)
        return
    stack = [top]
    names = [""]  # the name of each stacked directory in the one below it
    try:
        while stack:
            fd = stack[-1]
            child = None
            for entry in os.scandir(fd):
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if not is_dir:
                    _failed(os.unlink, entry.name, dir_fd=fd)
                elif child is None and len(stack) < max_depth:
                    child = entry.name
            if child is not None:
                try:
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                    sub = os.open(child, flags, dir_fd=fd)
                except OSError:
                    sub = -1
                if sub >= 0:
                    stack.append(sub)
                    names.append(child)
                    continue
            # Nothing (more) to descend into: this directory's subdirectories are gone.
            os.close(stack.pop())
            name = names.pop()
            if stack:
                parent = stack[-1]
                if _failed(os.rmdir, name, dir_fd=parent):
                    break  # it could not be emptied (a directory past max_depth): leave it
    except OSError:
        pass
    finally:
        for fd in stack:
            _failed(os.close, fd)
    _failed(os.rmdir, path)


def _failed(action: Callable[..., object], *args: object, **kwargs: object) -> bool:
    """Run one file-system call; whether it failed (it never raises)."""
    try:
        action(*args, **kwargs)
        return False
    except OSError:
        return True


def _child(
    request: dict,
    sock_fd: int,
    out_fd: int,
    workdir: str,
    zygote: Zygote,
    broker_fd: int = -1,
) -> None:
    """Set the candidate's child up and run its program. Never returns."""
    code = 70
    try:
        os.setsid()
        wanted = {3: sock_fd, 1: out_fd}
        if broker_fd >= 0:
            wanted[BROKER_FD] = broker_fd
            broker_fd = BROKER_FD
        _place(wanted)
        sock_fd = 3
        os.chdir(workdir)
        _confine(request, zygote, zygote.uid, workdir)
        sys.path[:] = [p for p in sys.path if p not in ("", ".", workdir)]
        tempfile.tempdir = workdir  # the zygote's choice was cached while preloading
        _reseed()
        if broker_fd >= 0:
            from qsandbox_env.sandbox import qpu_proxy  # installed at start-up (ibm: targets)

            qpu_proxy.attach(broker_fd, str(request["broker"].get("device", "")))
            assert zygote.snapshot is not None
            zygote.snapshot.seal(*qpu_proxy.descriptor_seal())  # this child's copy only
        channel = socket.socket(fileno=sock_fd)
        child.run(request["program"], channel, zygote.snapshot)
        channel.close()
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may escape into the zygote's loop
        code = 71
    finally:
        child.flush_output()
        os._exit(code)


def _judge_child(
    request: dict,
    sock_fd: int,
    root: int,
    workdir: str,
    report_fd: int,
    zygote: Zygote,
    broker_fd: int = -1,
) -> None:
    """Set the judge's process up and run the task's test. Never returns."""
    code = 70
    try:
        os.setsid()
        wanted = {3: sock_fd, 4: report_fd, 5: root, 1: os.open(os.devnull, os.O_WRONLY)}
        if broker_fd >= 0:
            wanted[BROKER_FD] = broker_fd
        _place(wanted)
        sock_fd, report_fd = 3, 4
        # The candidate's filesystem becomes the judge's: the test reads the program's files at
        # the paths the program wrote them (its working directory, read-only to this uid). The
        # judge holds every module it needs already; nothing of this view is trusted.
        os.fchdir(5)
        os.chroot(".")
        os.close(5)
        try:
            os.chdir(workdir)
        except OSError:
            # The candidate's zygote already cleaned up: its child ended before the test began
            # (its program did not even load), which the judge reads from the channel.
            os.chdir("/")
        _confine(request, zygote, zygote.uid, workdir)
        _judge_reads_nothing_of_the_candidates()
        _reseed()  # a test's random inputs differ from one program to the next
        if broker_fd >= 0:
            from qsandbox_env.sandbox import qpu_proxy  # installed at start-up (ibm: targets)

            qpu_proxy.attach(BROKER_FD, str(request["broker"].get("device", "")))
        channel = socket.socket(fileno=sock_fd)
        judge.run(request["judge"], channel, report_fd)
        channel.close()
        code = 0
    except BaseException as exc:  # noqa: BLE001 - said in the verdict, never raised into ours
        code = 71
        _judge_failed(report_fd, exc)
    finally:
        os._exit(code)


# Where the judge's home is: a path that does not exist, under the read-only root, so that no
# program can create it.
JUDGE_HOME = "/nonexistent/qsandbox-judge-home"


def _judge_reads_nothing_of_the_candidates() -> None:
    """Point every settings file and cache the judge's libraries read at run time away from the
    candidate's home.

    The judge runs in the candidate's filesystem, where ``$HOME`` is the candidate's own,
    writable directory. A program that wrote ``~/.qiskit/settings.conf`` there (say
    ``transpile_optimization_level = 0``) and made it readable would set the defaults of the
    test's own ``transpile``, and so rig the reference its answer is compared with; stevedore's
    entry-point cache under ``~/.cache`` would let it swap the transpiler's stages. Paths the
    libraries fixed when the template imported them are reset here too.
    """
    settings = os.path.join(JUDGE_HOME, ".qiskit", "settings.conf")
    os.environ["HOME"] = JUDGE_HOME
    os.environ["QISKIT_SETTINGS"] = settings
    os.environ["XDG_CACHE_HOME"] = os.path.join(JUDGE_HOME, ".cache")
    user_config = sys.modules.get("qiskit.user_config")
    if user_config is not None:
        user_config.DEFAULT_FILENAME = settings
    cache = getattr(sys.modules.get("stevedore._cache"), "_c", None)
    if cache is not None:
        cache._dir = os.path.join(JUDGE_HOME, ".cache", "python-entrypoints")
        cache._disable_caching = True  # entry points are read afresh, never from a file


def _judge_failed(report_fd: int, exc: BaseException) -> None:
    """The judge's own failure, as a ``sandbox`` verdict that says where (never a pass)."""
    try:
        where = "".join(traceback.format_exception(exc))[-3000:]
        line = json.dumps({"outcome": "sandbox", "detail": f"the judge failed:\n{where}"})
        os.write(report_fd, line.encode("ascii", "backslashreplace") + b"\n")
    except BaseException:  # noqa: BLE001 - the status says the rest
        pass


def _place(wanted: dict[int, int]) -> None:
    """Put descriptors where they belong ``{target: fd}`` and close the rest; 1 also becomes 2,
    0 reads nothing.

    Every one is first lifted above the targets, so that placing one never clobbers another.
    """
    lifted = {}
    for target, fd in wanted.items():
        lifted[target] = fcntl.fcntl(fd, fcntl.F_DUPFD, 1 << 10)
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if devnull != 0:
        os.close(devnull)
    for target, fd in lifted.items():
        os.dup2(fd, target)
        if target == 1:
            os.dup2(fd, 2)
        os.close(fd)
    # Every other descriptor above stderr goes: the process keeps only what it was given.
    start = 3
    for target in sorted(t for t in wanted if t >= 3):
        os.closerange(start, target)
        start = target + 1
    os.closerange(start, 1 << 16)


def _confine(request: dict, zygote: Zygote, uid: int, workdir: str) -> None:
    """rlimits, an unprivileged uid (or no capabilities), no new privileges, a clean environment."""
    if "ipc-namespace-per-program" in zygote.iso.active:
        # SysV semaphores, queues and shared memory die with this program's processes.
        isolation.unshare(isolation.CLONE_NEWIPC)
    limits = request["limits"]
    isolation.set_limits(
        limits["memory"],
        limits["processes"] + int(zygote.config.get("nproc_base", 0)),
        int(request["timeout"]) + 2,
        limits["file_size"],
    )
    if "unprivileged-uid" in zygote.iso.active:
        isolation.become(uid)
    elif zygote.pid_namespace and os.geteuid() == 0:
        isolation.drop_capabilities()  # uid 0 of our own user namespace
    isolation.no_new_privileges()
    isolation.die_with_parent()
    isolation.not_dumpable()
    os.environ.clear()
    os.environ.update(_program_env(workdir, zygote.home, zygote.work_root))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _reseed() -> None:
    """Give the child random streams of its own: a fork copies the zygote's.

    Python reseeds ``random`` in a forked child itself; numpy's global generator (what
    ``np.random.rand`` and SciPy's distributions draw from when given no seed) it does not, so
    every child would draw the same "random" numbers: a test's random input would be the same
    on every run, and a policy could learn the answer to that one input.
    """
    legacy = sys.modules.get("numpy.random")
    if legacy is not None:
        legacy.seed([int.from_bytes(os.urandom(4), "little") for _ in range(4)])


def _program_env(workdir: str, home: str, work_root: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "MPLCONFIGDIR": os.path.join(work_root, ".matplotlib"),
    }
    env.update(THREAD_ENV)
    return env


def _collect(
    pid: int,
    out_r: int,
    request: dict,
    started: float,
    broker: relay.BrokerRelay | None = None,
) -> dict:
    """Wait for the candidate's child with the wall-clock limit; gather its capped output.

    The child ends when the judge is done with it (or closes the channel). Time spent waiting on
    the QPU broker does not count toward the limit.
    """
    deadline = started + float(request["timeout"])
    limit = int(request["limits"]["output"])
    output, dropped = bytearray(), 0
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "output")
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    if broker is not None:
        broker.register(sel)
    status, timed_out = None, False
    try:
        while status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _kill_group(pid)
                break
            for key, mask in sel.select(remaining):
                if key.data == "exit":
                    status = _reap(pid)
                    break
                if key.data == "broker":
                    assert broker is not None
                    deadline += broker.on_event(sel, mask)
                    continue
                chunk = os.read(key.fd, OUTPUT_CHUNK)
                if not chunk:
                    sel.unregister(key.fd)
                else:
                    keep = max(0, limit - len(output))
                    output += chunk[:keep]
                    dropped += len(chunk) - min(len(chunk), keep)
        _kill_group(pid)
        if timed_out:
            status = _reap(pid)
        extra = _drain(out_r, 1 << 24)
        keep = max(0, limit - len(output))
        output += extra[:keep]
        dropped += len(extra) - min(len(extra), keep)
    finally:
        sel.close()
        os.close(pidfd)
    text = output.decode("utf-8", "replace")
    if dropped:
        text += f"\n… [{dropped} more bytes of output dropped]"
    return {"status": status, "timed_out": timed_out, "output": text}


def _collect_verdict(
    pid: int,
    report_r: int,
    request: dict,
    started: float,
    broker: relay.BrokerRelay | None = None,
) -> dict:
    """Wait for the judge's verdict line (or its end) within the program's wall-clock limit."""
    deadline = started + float(request["timeout"])
    report = bytearray()
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    sel.register(report_r, selectors.EVENT_READ, "report")
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    if broker is not None:
        broker.register(sel)
    status, timed_out = None, False
    try:
        while status is None and b"\n" not in report:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, mask in sel.select(remaining):
                if key.data == "exit":
                    status = _reap(pid)
                    break
                if key.data == "broker":
                    assert broker is not None
                    deadline += broker.on_event(sel, mask)
                    continue
                chunk = os.read(report_r, OUTPUT_CHUNK)
                if not chunk:
                    sel.unregister(report_r)
                elif len(report) < 1 << 20:
                    report += chunk
        _kill_group(pid)
        if status is None:
            status = _reap(pid)
        report += _drain(report_r, 1 << 20)
    finally:
        sel.close()
        os.close(pidfd)
    verdict = None
    line = bytes(report).partition(b"\n")[0]
    if line:
        try:
            verdict = json.loads(line)
        except ValueError:
            verdict = None
    return {"verdict": verdict, "status": status, "timed_out": timed_out}


def _drain(fd: int, cap: int) -> bytes:
    os.set_blocking(fd, False)
    data = bytearray()
    try:
        while len(data) < cap:
            chunk = os.read(fd, OUTPUT_CHUNK)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    return bytes(data)


def _kill_group(pid: int) -> None:
    for target in (-pid, pid):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass


def _reap(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except ChildProcessError:
            return -1
        except InterruptedError:
            continue


def reap_ended() -> None:
    """Reap every child that has ended; killed ones still exiting are reaped next time."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def from_status(status: int | None) -> tuple[str, str]:
    if status is None:  # reported early, then its report turned out unreadable
        return "exited", "the program ended the process before the test finished"
    if status >= 0 and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return "timeout", "the program used up its CPU-time limit (SIGXCPU)"
        return "killed", f"the program was killed by {name} before the test finished"
    code = os.WEXITSTATUS(status) if status >= 0 else -1
    return "exited", f"the program ended the process (exit status {code}) before the test finished"


def _wait_and_exit(pid: int) -> None:
    """The launcher left outside the PID namespace: wait for the zygote and mirror its end."""
    os.closerange(0, 1024)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def main() -> None:
    config = json.loads(sys.argv[1])
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # stray prints from imports must not corrupt the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # programs must not be able to interrupt us
    zygote = Zygote(config)
    if config.get("role") == "template":
        from qsandbox_env.sandbox import template

        template.main(zygote, in_fd, out_fd)
        return
    zygote.start(in_fd, out_fd)
    zygote.serve()


if __name__ == "__main__":
    main()
