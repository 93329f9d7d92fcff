"""Kernel-level isolation for the sandbox: namespaces, a read-only filesystem view, privileges,
limits.

Everything here is Linux-specific and talks to libc through ctypes, because Python 3.11 exposes
neither ``unshare`` nor ``mount``. Each layer is attempted independently and reported by name in an
:class:`Isolation` record, so a machine that refuses one layer still gets the others and the caller
can say loudly which layers are missing. Nothing here ever runs untrusted code.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import resource
import sys
from dataclasses import dataclass, field

PACKAGE = __name__.split(".", 1)[0]  # qsandbox_env

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added after syscall unification)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
# SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS_LOCKED and their *_LOCKED bits: uid 0
# inside a user namespace gets no capabilities back from execve.
SECUREBITS_NO_ROOT = 0x01 | 0x02 | 0x04 | 0x08 | 0x20

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# The layers, in the words used by Verifier.isolation and the warning.
LAYERS = (
    "pid-namespace",
    "network-namespace",
    "mount-namespace",
    "read-only-filesystem",
    "private-tmp",
    "hidden-home",
    "hidden-sources",
    "unprivileged-uid",
    "rlimits",
    "scrubbed-environment",
    "no-new-privileges",
    "ipc-namespace-per-program",
)

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Isolation:
    """Which isolation layers are active in a zygote, and why the others are not."""

    active: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)

    def add(self, layer: str) -> None:
        if layer not in self.active:
            self.active.append(layer)
        self.missing.pop(layer, None)

    def lack(self, layer: str, why: str) -> None:
        if layer not in self.active:
            self.missing[layer] = why


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    result = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(result, f"mount {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(os.fsencode(target), ctypes.c_int(flags)), f"umount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def make_read_only(path: str) -> None:
    """Make the mount tree at ``path`` read-only and set-uid-free, recursively (Linux ≥ 5.12)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    result = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        os.fsencode(path),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(0 if result == 0 else -1, f"mount_setattr {path}")


def prctl(option: int, arg: int) -> None:
    _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        f"prctl {option}",
    )


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies."""
    prctl(PR_SET_PDEATHSIG, 9)


def no_new_privileges() -> None:
    """No exec may gain privileges (set-uid binaries, file capabilities) from now on."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def not_dumpable() -> None:
    """No other process of the same uid may ptrace this one or read its memory."""
    prctl(PR_SET_DUMPABLE, 0)


def drop_capabilities() -> None:
    """Drop every capability for good (used where the process is uid 0 of a user namespace)."""
    prctl(PR_SET_SECUREBITS, SECUREBITS_NO_ROOT)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def enter_namespaces(iso: Isolation) -> bool:
    """Unshare into new namespaces; returns whether a new PID namespace is pending.

    As root, plain ``unshare``. Otherwise a new user namespace maps the caller to uid 0 inside,
    which is what gives an unprivileged user network and mount namespaces.
    """
    wanted = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    as_root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    try:
        unshare(wanted if as_root else wanted | CLONE_NEWUSER)
    except OSError as exc:
        why = f"unshare refused ({exc.strerror}); unprivileged user namespaces may be disabled"
        for layer in ("pid-namespace", "network-namespace", "mount-namespace"):
            iso.lack(layer, why)
        return False
    if not as_root:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1")
        _write("/proc/self/gid_map", f"0 {gid} 1")
    iso.add("network-namespace")
    iso.add("mount-namespace")
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _keep_paths() -> list[str]:
    """Directories programs must still read after home directories are hidden."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, os.path.dirname(sys.executable)}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths.add(here)
    return sorted(os.path.realpath(p) for p in paths)


def _hide_dirs() -> list[str]:
    dirs = {"/root", "/home", os.path.expanduser("~")}
    return sorted(d for d in (os.path.realpath(x) for x in dirs) if d != "/" and os.path.isdir(d))


def build_filesystem(iso: Isolation, tmp_size: str, proc: bool, work_root: str) -> None:
    """Inside a fresh mount namespace: read-only everything, private /tmp and /dev/shm, no homes.

    ``/tmp`` becomes an empty read-only tmpfs holding only ``work_root``, a writable, size-limited
    tmpfs for the programs' working directories. Home directories (where saved IBM Quantum
    accounts, SSH keys and tokens live) are covered by empty tmpfs mounts. Whatever the
    interpreter, its site-packages or this package need under a covered directory is bound back,
    read-only, so a project checked out under /tmp or a virtual environment in $HOME still works.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if proc:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
        except OSError as exc:
            iso.lack("pid-namespace", f"cannot mount a private /proc ({exc.strerror})")
    try:
        make_read_only("/")
        iso.add("read-only-filesystem")
    except OSError as exc:
        iso.lack("read-only-filesystem", f"mount_setattr refused ({exc.strerror}); kernel < 5.12?")
    flags = MS_NOSUID | MS_NODEV
    mount("tmpfs", "/dev/shm", "tmpfs", flags, f"size={tmp_size},mode=1777")
    keep = _keep_paths()
    stage = "/dev/shm/.qsandbox-stage"
    os.makedirs(stage)
    _cover("/tmp", keep, stage, "size=16m,mode=0755")
    os.makedirs(work_root, mode=0o711)
    mount("tmpfs", work_root, "tmpfs", flags, f"size={tmp_size},mode=0711")
    iso.add("private-tmp")
    try:
        for home in _hide_dirs():
            _cover(home, keep, stage, "size=1m,mode=0755")
        iso.add("hidden-home")
    except OSError as exc:
        iso.lack("hidden-home", f"could not cover home directories ({exc.strerror})")
    mount(None, "/tmp", None, MS_REMOUNT | MS_RDONLY | flags)
    os.rmdir(stage)


# Top-level directories of the system itself: programs run on what is in them.
SYSTEM_DIRS = frozenset(
    {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "sys", "usr"}
)
# Already covered by build_filesystem (private /tmp, hidden homes) or holding nothing to read.
_COVERED = frozenset({"tmp", "root", "home", "lost+found"})


def hide_sources(iso: Isolation, package_root: str) -> None:
    """After preloading: cover everything but the interpreter, its libraries and the system.

    What a program could learn answers from goes out of sight: this project's own files (its
    bundled tasks with their solutions, its task generators, a checkout's tests), data-set files
    and checkouts anywhere outside the system's directories, mounted volumes. The processes
    started from here already hold every module of the project they use; the interpreter and the
    site-packages of the scientific stack are bound back, read-only.
    """
    stage = "/dev/shm/.qsandbox-stage"
    os.makedirs(stage, exist_ok=True)
    root = os.path.realpath(package_root)
    library = _is_library_dir(root)
    keep = [p for p in _keep_paths() if library or p != root]
    try:
        if library:  # an installed package: cover its own directories only
            for name in project_packages(root):
                if os.path.isdir(os.path.join(root, name)):
                    _cover(os.path.join(root, name), [], stage, "size=1m,mode=0755")
        elif root != "/":
            _cover(root, keep, stage, "size=1m,mode=0755")
        for name in sorted(os.listdir("/")):
            path = "/" + name
            if name in SYSTEM_DIRS or name in _COVERED or not os.path.isdir(path):
                continue
            if os.path.islink(path) or path == root:
                continue
            _cover(path, keep, stage, "size=1m,mode=0755")
        iso.add("hidden-sources")
    except OSError as exc:
        iso.lack("hidden-sources", f"could not cover the project and data directories ({exc})")
    finally:
        try:
            os.rmdir(stage)
        except OSError:
            pass


def project_packages(root: str) -> list[str]:
    """The top-level names this project installed into ``root``, a site-packages directory.

    ``qsandbox_env`` and whatever else the distribution that holds it installed beside it (its
    ``top_level.txt``, else the first parts of the paths in its ``RECORD``), read from its
    ``*.dist-info`` so that this package never has to name the others.
    """
    names = {PACKAGE}
    for info in sorted(glob.glob(os.path.join(glob.escape(root), "*.dist-info"))):
        tops = _dist_top_levels(info)
        if PACKAGE in tops:
            names |= tops
    return sorted(names)


def _dist_top_levels(info: str) -> set[str]:
    try:
        with open(os.path.join(info, "top_level.txt"), encoding="utf-8") as file:
            return {line.strip() for line in file if line.strip()}
    except OSError:
        pass
    try:
        with open(os.path.join(info, "RECORD"), encoding="utf-8") as file:
            paths = [line.split(",", 1)[0] for line in file]
    except OSError:
        return set()
    tops = {path.split("/", 1)[0] for path in paths if "/" in path}
    return {top for top in tops if top != ".." and not top.endswith((".dist-info", ".data"))}


def _is_library_dir(path: str) -> bool:
    return os.path.basename(path) in ("site-packages", "dist-packages")


def _cover(target: str, keep: list[str], stage: str, options: str) -> None:
    """Mount an empty tmpfs over ``target``, binding back the ``keep`` paths that lie inside it."""
    inside = [p for p in keep if p.startswith(target.rstrip("/") + os.sep)]
    if target in keep:
        return  # the interpreter *is* this directory; hiding it would break every program
    inside = [p for p in inside if not any(p.startswith(q + os.sep) for q in inside)]
    staged = []
    for path in inside:
        spot = os.path.join(stage, str(len(os.listdir(stage))))
        os.makedirs(spot)
        mount(path, spot, None, MS_BIND | MS_REC)
        staged.append((spot, path))
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for spot, path in staged:
        os.makedirs(path, exist_ok=True)
        mount(spot, path, None, MS_BIND | MS_REC)
        umount(spot)
        os.rmdir(spot)
        try:
            make_read_only(path)
        except OSError:
            pass
    if target != "/tmp":
        mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def set_limits(memory_bytes: int, nproc: int, cpu_seconds: int, file_bytes: int) -> None:
    """rlimits for a program: address space, processes, CPU time, file size, no core dumps."""
    for which, value in (
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_FSIZE, file_bytes),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
    ):
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            resource.setrlimit(which, (value, hard))


def become(uid: int) -> None:
    """Switch to an unprivileged uid/gid (root mode), dropping supplementary groups."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def kill_namespace() -> None:
    """From PID 1 of a PID namespace: SIGKILL every other process in it, setsid daemons included."""
    try:
        os.kill(-1, 9)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
