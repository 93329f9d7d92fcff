"""Execution profiles: virtual environments with pinned packages that programs run in.

A task set written for one Qiskit version is best judged under that version. A profile is a
virtual environment under the profiles directory (``$QSANDBOX_PROFILES``, default
``~/.cache/qsandbox/profiles``) with a small JSON manifest of what was asked for and what pip
installed. ``Verifier(profile=NAME)`` runs its zygotes on that interpreter; the sandbox modules
reach it through ``PYTHONPATH``, so the profile needs only Qiskit and its friends, not qsandbox.

Command line: ``qsandbox profile create NAME --qiskit VERSION [--package SPEC ...]``,
``qsandbox profile list``, ``qsandbox profile remove NAME``.

This module creates and deletes directories only inside the profiles directory, and only ones
that carry its manifest (or that it is building). It never runs task code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "PROFILES_ENV",
    "Profile",
    "ProfileError",
    "create_profile",
    "list_profiles",
    "load_profile",
    "profile_python",
    "profiles_root",
    "remove_profile",
]

PROFILES_ENV = "QSANDBOX_PROFILES"
MANIFEST = "qsandbox-profile.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_OPERATOR = re.compile(r"^\s*(==|!=|<=|>=|<|>|~=|===)")


class ProfileError(RuntimeError):
    """Building a profile failed (pip could not install the pins); nothing was left behind."""


@dataclass(frozen=True)
class Profile:
    """A profile as its manifest records it.

    Attributes:
        name: the profile's name.
        path: its virtual environment.
        requirements: what was asked for (``qiskit==2.4.*``, ``qiskit-aer``, ...).
        installed: what pip installed, ``{distribution: version}``.
        python_version: the interpreter's version.
        created: when it was built (UTC, ISO 8601).
        seconds: how long building it took.
    """

    name: str
    path: Path
    requirements: tuple[str, ...]
    installed: dict[str, str] = field(default_factory=dict)
    python_version: str = ""
    created: str = ""
    seconds: float = 0.0

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def qiskit_version(self) -> str:
        return self.installed.get("qiskit", "")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        data["requirements"] = list(self.requirements)
        return data


def profiles_root() -> Path:
    """Where profiles live: ``$QSANDBOX_PROFILES`` or ``~/.cache/qsandbox/profiles``."""
    configured = os.environ.get(PROFILES_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "qsandbox" / "profiles"


def qiskit_requirement(version: str) -> str:
    """``2.4.*`` → ``qiskit==2.4.*``; ``<2.5`` → ``qiskit<2.5``.

    Example:
        >>> qiskit_requirement("2.4.*"), qiskit_requirement(">=2.3,<2.5")
        ('qiskit==2.4.*', 'qiskit>=2.3,<2.5')
    """
    if not isinstance(version, str) or not version.strip():
        raise ValueError(f"qiskit: expected a version such as '2.4.*' or '<2.5', got {version!r}")
    version = version.strip()
    return f"qiskit{version}" if _OPERATOR.match(version) else f"qiskit=={version}"


def create_profile(
    name: str,
    qiskit: str,
    packages: tuple[str, ...] | list[str] = (),
    *,
    root: Path | str | None = None,
    python: str | None = None,
) -> Profile:
    """Build profile ``name``: a virtual environment with ``qiskit`` and ``packages`` pinned.

    Args:
        name: letters, digits, ``.``, ``_`` and ``-``.
        qiskit: the Qiskit version (``"2.4.*"``, ``"2.4.2"``, ``"<2.5"``).
        packages: further pip requirement specifiers (``"qiskit-aer==0.17.*"``).
        root: the profiles directory (default :func:`profiles_root`).
        python: the base interpreter (default: this one).

    Raises:
        ValueError: a bad name, or a profile of that name already exists.
        ProfileError: pip failed; its output is in the message and no directory is left.
    """
    _check_name(name)
    requirements = (qiskit_requirement(qiskit), *_check_packages(packages))
    path = Path(root or profiles_root()) / name
    if (path / MANIFEST).is_file():
        raise ValueError(
            f"profile {name!r} already exists at {path}; remove it first with "
            f"`qsandbox profile remove {name}`"
        )
    if path.exists():
        shutil.rmtree(path)  # an interrupted build: it never got its manifest
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        _run([python or sys.executable, "-m", "venv", str(path)], "create the environment")
        venv_python = str(path / "bin" / "python")
        pip = [venv_python, "-m", "pip", "--disable-pip-version-check"]
        _run([*pip, "install", "--quiet", *requirements], "install " + " ".join(requirements))
        installed = _installed(pip)
        version = _run([venv_python, "-c", "import sys; print(sys.version.split()[0])"], "")
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    profile = Profile(
        name,
        path,
        requirements,
        installed,
        version.strip(),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        round(time.monotonic() - started, 1),
    )
    (path / MANIFEST).write_text(json.dumps(profile.to_dict(), indent=2) + "\n")
    return profile


def load_profile(name: str, root: Path | str | None = None) -> Profile:
    """The profile called ``name``.

    Raises:
        ValueError: there is none; the message names it and the command that creates it.
    """
    _check_name(name)
    base = Path(root or profiles_root())
    manifest = base / name / MANIFEST
    if not manifest.is_file():
        raise ValueError(
            f"profile {name!r} not found in {base}; create it with "
            f"`qsandbox profile create {name} --qiskit VERSION [--package SPEC ...]`"
        )
    return _read_manifest(manifest)


def profile_python(name: str, root: Path | str | None = None) -> str:
    """The interpreter of profile ``name`` (what ``Verifier(profile=name)`` runs)."""
    profile = load_profile(name, root)
    if not os.access(profile.python, os.X_OK):
        raise ValueError(
            f"profile {name!r} at {profile.path} has no interpreter; recreate it with "
            f"`qsandbox profile remove {name}` and `qsandbox profile create {name} ...`"
        )
    return profile.python


def list_profiles(root: Path | str | None = None) -> list[Profile]:
    """Every profile in the profiles directory, by name."""
    base = Path(root or profiles_root())
    if not base.is_dir():
        return []
    return [
        _read_manifest(entry / MANIFEST)
        for entry in sorted(base.iterdir())
        if (entry / MANIFEST).is_file()
    ]


def remove_profile(name: str, root: Path | str | None = None) -> Path:
    """Delete profile ``name``; returns the directory removed."""
    profile = load_profile(name, root)
    shutil.rmtree(profile.path)
    return profile.path


def _read_manifest(path: Path) -> Profile:
    data = json.loads(path.read_text())
    return Profile(
        data["name"],
        path.parent,
        tuple(data["requirements"]),
        dict(data.get("installed", {})),
        data.get("python_version", ""),
        data.get("created", ""),
        float(data.get("seconds", 0.0)),
    )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"profile name: expected letters, digits, '.', '_' or '-' (at most 64), got {name!r}"
        )


def _check_packages(packages: object) -> tuple[str, ...]:
    if isinstance(packages, str) or not all(
        isinstance(p, str) and p.strip()
        for p in packages  # type: ignore[attr-defined]
    ):
        raise TypeError(f"packages: expected a list of pip requirement strings, got {packages!r}")
    return tuple(p.strip() for p in packages)  # type: ignore[attr-defined]


def _installed(pip: list[str]) -> dict[str, str]:
    listing = json.loads(_run([*pip, "list", "--format", "json"], "list installed packages"))
    return {item["name"].lower(): item["version"] for item in listing}


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-3000:]
        raise ProfileError(f"could not {what or 'run ' + command[0]}:\n{tail}")
    return done.stdout
