"""The zygote: a warm interpreter that forks one isolated child per program.

Started by :class:`~qsandbox_env.sandbox.pool.ZygotePool` as ``python -m qsandbox_env.sandbox.zygote
CONFIG_JSON``. It enters new namespaces (becoming PID 1 of its own PID namespace, so that one
``kill(-1)`` ends every process a program left behind), builds a read-only view of the filesystem,
preloads Qiskit without starting threads, snapshots the protected library surface, and then serves
requests from its parent: one program at a time, each in a fresh child with its own working
directory, uid, rlimits and environment. It never runs program code itself.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
import warnings

from qsandbox_env.sandbox import guard, isolation, protocol, relay, warmup

WORK_ROOT = "/tmp/qsandbox-work"
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
        self.home = WORK_ROOT

    # -- start-up -------------------------------------------------------------------------
    def start(self, in_fd: int, out_fd: int) -> None:
        self.in_fd, self.out_fd = in_fd, out_fd
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
        for layer in isolation.LAYERS:
            if layer not in self.iso.active and layer not in self.iso.missing:
                self.iso.lack(
                    layer,
                    "isolation was turned off (isolate=False)"
                    if not isolate
                    else "not available on this machine",
                )
        os.makedirs(WORK_ROOT, mode=0o711, exist_ok=True)
        os.environ.update(THREAD_ENV)
        os.environ["MPLCONFIGDIR"] = os.path.join(WORK_ROOT, ".matplotlib")
        # Libraries fix paths under ~ when imported (qiskit-ibm-runtime's account file): the
        # home they see is a fresh, writable, empty directory for every program.
        os.environ["HOME"] = self.home = os.path.join(WORK_ROOT, f"home-{os.getpid()}")
        os.environ["TMPDIR"] = WORK_ROOT
        self._preload()
        from qsandbox_env.sandbox import harness  # children start warm

        self._install_runtime(harness)
        self._warm_up()

        self.snapshot = guard.Snapshot()
        self._seal_runtime(self.snapshot)
        # Everything so far moves to gc's permanent generation: children neither scan it (no
        # copy-on-write faults from collections) nor mistake it for something a program created.
        gc.collect()
        gc.freeze()
        if self.config.get("preload"):
            self.huge_pages = warmup.huge_pages()  # a large heap forks faster from 2 MiB pages
        self.threads = warmup.thread_count() or 1

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
                self.iso, self.config.get("tmp_size", "256m"), self.pid_namespace, WORK_ROOT
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

    def _install_runtime(self, harness: object) -> None:
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
        protocol.write_message(
            self.out_fd,
            {
                "ready": True,
                "pid": os.getpid(),
                "isolation": {"active": self.iso.active, "missing": self.iso.missing},
                "preload_errors": self.preload_errors,
                "threads": self.threads,
                "huge_pages": self.huge_pages,
            },
        )
        while True:
            request = protocol.read_message(self.in_fd)
            if request is None:
                return
            workdir = os.path.join(WORK_ROOT, f"run-{os.getpid()}-{request['id']}")
            try:
                try:
                    reply = self.handle(request, workdir)
                except Exception as exc:  # noqa: BLE001 - our own failure, reported, not fatal
                    reply = {
                        "id": request["id"],
                        "outcome": "sandbox",
                        "error_type": "",
                        "detail": f"the sandbox failed: {type(exc).__name__}: {exc}",
                        "output": "",
                        "seconds": 0.0,
                    }
                protocol.write_message(self.out_fd, reply)
            finally:
                self._clean(workdir)  # after the reply: the caller need not wait for it

    def handle(self, request: dict, workdir: str) -> dict:
        for path in (workdir, self.home):
            shutil.rmtree(path, ignore_errors=True)
            os.mkdir(path, 0o700)
            if "unprivileged-uid" in self.iso.active:
                os.chown(path, self.uid, self.uid)
        token = os.urandom(16)
        box = [token]  # the child takes the token out of here: no frame of it may keep one
        report_r, report_w = os.pipe()
        out_r, out_w = os.pipe()
        broker = None
        if request.get("broker"):  # ibm: targets: the child's channel to the parent's QPU broker
            broker = relay.BrokerRelay(request["id"], self.in_fd, self.out_fd)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            del token
            os.close(report_r)
            os.close(out_r)
            _child(request, box, report_w, out_w, workdir, self, broker.child_fd if broker else -1)
        os.close(report_w)
        os.close(out_w)
        try:
            if broker:
                broker.close_child_end()
            result = _collect(pid, report_r, out_r, request, started, token, broker)
        finally:
            os.close(report_r)
            os.close(out_r)
            if broker:
                broker.close()
        result["seconds"] = time.monotonic() - started
        return _verdict(result, token, request["id"])

    def _clean(self, workdir: str) -> None:
        if self.pid_namespace:
            isolation.kill_namespace()
        _reap_all()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)
        if "private-tmp" not in self.iso.active:
            return
        # Our own /dev/shm and work root: whatever a program left there goes before the next one.
        # (As an unprivileged uid a program can only write its own directory, but as the caller's
        # uid inside a user namespace it can write the whole work root.)
        for root, spare in (("/dev/shm", ()), (WORK_ROOT, (".matplotlib",))):
            for name in os.listdir(root):
                if name not in spare:
                    _remove(os.path.join(root, name))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _child(
    request: dict,
    box: list[bytes],
    report_fd: int,
    out_fd: int,
    workdir: str,
    zygote: Zygote,
    broker_fd: int = -1,
) -> None:
    """Set the child up and run the program. Never returns."""
    code = 70
    try:
        os.setsid()
        if broker_fd >= 0:  # above every number the report descriptor may move to
            broker_fd = _move_fd(broker_fd, BROKER_FD)
        report_fd = _move_fd(report_fd, 3 + int.from_bytes(os.urandom(1), "big") % 200 + 50)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, BROKER_FD if broker_fd >= 0 else 1 << 16)
        if broker_fd >= 0:
            os.closerange(BROKER_FD + 1, 1 << 16)
        os.chdir(workdir)
        limits = request["limits"]
        isolation.set_limits(
            limits["memory"],
            limits["processes"] + int(zygote.config.get("nproc_base", 0)),
            int(request["timeout"]) + 2,
            limits["file_size"],
        )
        if "unprivileged-uid" in zygote.iso.active:
            isolation.become(zygote.uid)
        elif zygote.pid_namespace and os.geteuid() == 0:
            isolation.drop_capabilities()  # uid 0 of our own user namespace
        isolation.die_with_parent()
        isolation.not_dumpable()
        os.environ.clear()
        os.environ.update(_program_env(workdir, zygote.home))
        sys.path[:] = [p for p in sys.path if p not in ("", ".", workdir)]
        tempfile.tempdir = workdir  # the zygote's choice was cached while preloading
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _reseed()
        from qsandbox_env.sandbox import harness

        assert zygote.snapshot is not None  # taken at start-up, before any request
        if broker_fd >= 0:
            from qsandbox_env.sandbox import qpu_proxy  # installed at start-up (ibm: targets)

            qpu_proxy.attach(broker_fd, str(request["broker"].get("device", "")))
            zygote.snapshot.seal(*qpu_proxy.descriptor_seal())  # this child's copy only
        harness.run(request["program"], box, report_fd, zygote.snapshot)
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may escape into the zygote's loop
        code = 71
    finally:
        os._exit(code)


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


def _move_fd(fd: int, target: int) -> int:
    os.dup2(fd, target)
    os.close(fd)
    return target


def _program_env(workdir: str, home: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "MPLCONFIGDIR": os.path.join(WORK_ROOT, ".matplotlib"),
    }
    env.update(THREAD_ENV)
    return env


def _collect(
    pid: int,
    report_r: int,
    out_r: int,
    request: dict,
    started: float,
    token: bytes,
    broker: relay.BrokerRelay | None = None,
) -> dict:
    """Wait for the child with the wall-clock limit; gather its report and capped output.

    Time spent waiting on the QPU broker does not count toward the limit.
    """
    deadline = started + float(request["timeout"])
    limit = int(request["limits"]["output"])
    report, output, dropped = bytearray(), bytearray(), 0
    pidfd = os.pidfd_open(pid)
    sel = selectors.DefaultSelector()
    sel.register(report_r, selectors.EVENT_READ, "report")
    sel.register(out_r, selectors.EVENT_READ, "output")
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    if broker is not None:
        broker.register(sel)
    status, timed_out, reported = None, False, False
    try:
        while status is None and not reported:
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
                elif key.data == "report":
                    if len(report) < 1 << 20:
                        report += chunk
                    # The harness writes its verdict line last: the child has nothing more to
                    # say, and its exit (unmapping a large address space) need not be waited for.
                    reported = _has_verdict(report, token)
                else:
                    keep = max(0, limit - len(output))
                    output += chunk[:keep]
                    dropped += len(chunk) - min(len(chunk), keep)
        _kill_group(pid)
        if timed_out:
            status = _reap(pid)
        report += _drain(report_r, 1 << 20)
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
    return {
        "report": bytes(report),
        "status": status,
        "timed_out": timed_out,
        "output": text,
        "timeout": request["timeout"],
    }


def _has_verdict(report: bytearray, token: bytes) -> bool:
    """Whether a complete, well-formed verdict line has arrived (a forged pass is not one)."""
    return bool(_parse_report(bytes(report).rpartition(b"\n")[0], token)[0])


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


def _reap_all() -> None:
    """Reap every child that has ended; killed ones still exiting are reaped next time."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# Outcomes a child may report in an ordinary line; a pass needs the token line instead.
REPORTABLE = frozenset({"failed", "error", "syntax", "memory", "not_isa"})


def _parse_report(report: bytes, token: bytes) -> tuple[str, str, str]:
    """(outcome, detail, error_type) from the child's report lines; ("", "", "") if none valid.

    The token's pass line wins; otherwise a tampering line; otherwise the last well-formed
    outcome line. Lines the program forged can only make its own verdict worse.
    """
    pass_line = b"P " + token.hex().encode()
    found = ("", "", "")
    for line in report.split(b"\n"):
        if line == pass_line:
            return "passed", "", ""
        if line.startswith(b"T "):
            found = ("tampered", line[2:].decode("utf-8", "replace"), "")
        elif line.startswith(b"R ") and found[0] != "tampered":
            try:
                message = json.loads(line[2:])
                if message["outcome"] in REPORTABLE:
                    found = (message["outcome"], str(message["detail"]), str(message["error_type"]))
            except (ValueError, KeyError, TypeError):
                continue
    return found


def _verdict(result: dict, token: bytes, request_id: int) -> dict:
    """Turn what the child left behind into a verdict message. Only the token line passes."""
    outcome, detail, error_type = _parse_report(result["report"], token)
    if result["timed_out"]:
        outcome = "timeout"
        detail = f"the program ran past its {result['timeout']:g} s wall-clock limit"
    elif not outcome:
        outcome, detail = _from_status(result["status"])
    return {
        "id": request_id,
        "outcome": outcome,
        "detail": detail,
        "error_type": error_type,
        "output": result["output"],
        "seconds": result["seconds"],
    }


def _from_status(status: int | None) -> tuple[str, str]:
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
    zygote.start(in_fd, out_fd)
    zygote.serve()


if __name__ == "__main__":
    main()
