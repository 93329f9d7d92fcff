"""Download the Qiskit-HumanEval task files from their official repository, checked.

The data sets live in the Qiskit community's repository ``qiskit-community/qiskit-human-eval``
(Apache-2.0), folder ``dataset/``. `fetch` downloads one file at a pinned commit over HTTPS with
the standard library, checks that every record loads as a task, writes it atomically beside any
file already there (never over a different one) and returns its SHA-256, which it compares with
the checksum of the version this project's results were measured on, when known.

This module reads and writes task files only; it runs nothing of what it downloads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

__all__ = ["DATASETS", "MEASURED_REF", "FetchError", "Fetched", "fetch"]

BASE_URL = "https://raw.githubusercontent.com/qiskit-community/qiskit-human-eval"
MEASURED_REF = "5327d8e"
"""The official repository's commit whose normal set this project's results were measured on."""


@dataclass(frozen=True)
class _Dataset:
    filename: str
    sha256: dict[str, str]  # ref -> checksum of the file at that ref, where measured


DATASETS = {
    "qiskit-humaneval": _Dataset(
        "dataset_qiskit_test_human_eval.json",
        {MEASURED_REF: "2d595cfec23e3d15e84a51bbce711d29501297d7418b966911f4111a1f62f042"},
    ),
    "qiskit-humaneval-hard": _Dataset("dataset_qiskit_test_human_eval_hard.json", {}),
}


class FetchError(RuntimeError):
    """The file could not be downloaded, did not load as tasks, or differs from the pinned one."""


@dataclass(frozen=True)
class Fetched:
    path: str
    sha256: str
    tasks: int
    expected_sha256: str | None  # None: no checksum is pinned for this file at this ref
    already_there: bool

    @property
    def verified(self) -> bool:
        return self.expected_sha256 is not None and self.sha256 == self.expected_sha256


def fetch(
    name: str,
    out: str | os.PathLike[str] | None = None,
    *,
    ref: str = MEASURED_REF,
    base_url: str = BASE_URL,
    timeout: float = 60.0,
) -> Fetched:
    """Download the data set ``name`` (``qiskit-humaneval`` or ``qiskit-humaneval-hard``).

    Args:
        name: Which set.
        out: Where to write it (default: its official file name in the working directory).
        ref: The repository commit, branch or tag to take it from.
        base_url: The raw-file server (another mirror, or a local one in tests).
        timeout: Seconds to wait for the server.

    Raises:
        FetchError: The server did not answer with the file; its records do not load as tasks;
            its checksum differs from the one pinned for ``ref``; or a different file is already
            at ``out`` (nothing is overwritten: move it away or name another ``out``).
    """
    if name not in DATASETS:
        raise FetchError(f"unknown data set {name!r}; expected one of {sorted(DATASETS)}")
    dataset = DATASETS[name]
    path = os.fspath(out) if out is not None else dataset.filename
    url = f"{base_url.rstrip('/')}/{ref}/dataset/{dataset.filename}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        raise FetchError(f"{url}: the server answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"{url}: cannot download ({reason}); check the network") from None
    digest = hashlib.sha256(data).hexdigest()
    expected = dataset.sha256.get(ref)
    if expected is not None and digest != expected:
        raise FetchError(
            f"{url}: SHA-256 {digest} is not the pinned {expected} of {name} at {ref}; the file "
            "was not written"
        )
    count = _count_tasks(data, url)
    if os.path.exists(path):
        with open(path, "rb") as file:
            present = hashlib.sha256(file.read()).hexdigest()
        if present != digest:
            raise FetchError(
                f"{path} already exists and differs from the downloaded {name} (SHA-256 "
                f"{present}); move it away or pass another output path"
            )
        return Fetched(path, digest, count, expected, already_there=True)
    directory = os.path.dirname(os.path.abspath(path))
    handle, partial = tempfile.mkstemp(prefix=".fetch-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    return Fetched(path, digest, count, expected, already_there=False)


def _count_tasks(data: bytes, url: str) -> int:
    from qsandbox_env.taskfile import load_file

    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(data)
        file.flush()
        try:
            return len(load_file(file.name))
        except ValueError as error:
            raise FetchError(f"{url}: not a task file: {error}") from None
