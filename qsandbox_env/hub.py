"""Tasks from the Hugging Face hub: ``load_tasks("Qiskit/qiskit_humaneval_hard")``.

`load_hub` fetches a dataset with the ``datasets`` library and turns its rows into a `TaskSet`
through the same per-record validation and format detection as task files
(:func:`qsandbox_env.taskfile.tasks_from_records`), so a hub copy and a downloaded JSON file of the
same data give the same tasks. `load_qiskit_humaneval` and `load_qiskit_humaneval_hard` back the
named sources ``"qiskit-humaneval"`` and ``"qiskit-humaneval-hard"``: a local file when given a
``path``, otherwise the hub.

``datasets`` is an optional dependency (the ``grpo`` extra), imported only when a hub dataset is
asked for. Without network access the loaders fail with a message that says how to use a
downloaded file instead.

What this module must never do: execute anything from a row (tasks are only described here, as in
`qsandbox_env.tasks`), or skip a malformed row silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from qsandbox_env.taskfile import load_file, tasks_from_records
from qsandbox_env.tasks import TaskSet

__all__ = [
    "QISKIT_HUMANEVAL",
    "QISKIT_HUMANEVAL_HARD",
    "load_hub",
    "load_qiskit_humaneval",
    "load_qiskit_humaneval_hard",
    "tasks_from_rows",
]

QISKIT_HUMANEVAL = "Qiskit/qiskit_humaneval"
QISKIT_HUMANEVAL_HARD = "Qiskit/qiskit_humaneval_hard"
INSTALL_HINT = 'pip install "qsandbox[grpo]" (or pip install datasets)'
# What `datasets.Dataset.save_to_disk` leaves in a directory; such a directory is read with
# `load_from_disk`, anything else with `load_dataset` (a hub id, or a folder of data files).
_SAVED_MARKERS = ("state.json", "dataset_dict.json")


def load_hub(
    repo_id: str, split: str | None = None, revision: str | None = None, **kw: Any
) -> TaskSet:
    """Load a HumanEval-schema dataset from the Hugging Face hub as tasks.

    Args:
        repo_id: A hub dataset id (``"Qiskit/qiskit_humaneval_hard"``), a local folder of data
            files, or a folder written by ``Dataset.save_to_disk``.
        split: The split to read; by default the dataset's only split.
        revision: A branch, tag or commit of the hub dataset; by default its main branch.
        **kw: Passed to ``datasets.load_dataset`` (``cache_dir``, ``token``, ...).

    Returns:
        The rows as tasks, in dataset order; each task's format (completion or program) is
        detected per row, as for task files.

    Raises:
        ImportError: ``datasets`` is not installed; the message has the ``pip install`` command.
        ConnectionError: The hub cannot be reached (offline, ``HF_HUB_OFFLINE=1``).
        ValueError: No such dataset, no such split, several splits and none chosen, or a
            malformed row (named by its split and row number).
    """
    if not isinstance(repo_id, str) or not repo_id:
        raise TypeError(f"repo_id: expected a dataset id such as {QISKIT_HUMANEVAL_HARD!r}")
    datasets = _import_datasets(repo_id)
    data = _fetch(datasets, repo_id, split, revision, kw)
    chosen, rows = _one_split(data, repo_id, split)
    source = f"{repo_id}[{chosen}]" if chosen else repo_id
    return tasks_from_rows(rows, source)


def tasks_from_rows(rows: Iterable[Mapping[str, Any]], source: str) -> TaskSet:
    """Turn dataset rows (a ``datasets.Dataset`` or any iterable of dicts) into tasks.

    Args:
        rows: Records with the HumanEval fields (``task_id``, ``prompt``, ``test``,
            ``entry_point``, optional ``canonical_solution``, ``difficulty_scale`` ...).
        source: Where the rows came from, for messages and `TaskSet.source`.

    Raises:
        ValueError: A row is malformed; the message names ``source`` and the 0-based row.

    Example:
        >>> row = {"task_id": "t/0", "prompt": "def f():\\n", "entry_point": "f",
        ...        "test": "def check(c):\\n    assert c() == 1\\n"}
        >>> tasks = tasks_from_rows([row], "example")
        >>> tasks["t/0"].format, tasks.source
        ('completion', 'example')
    """
    return tasks_from_records(_located(rows), source)


def load_qiskit_humaneval(path: str | os.PathLike[str] | None = None, **kw: Any) -> TaskSet:
    """Qiskit-HumanEval, the normal set (completion format): a local file or the hub.

    Args:
        path: A downloaded copy (JSON/JSONL, as `load_file` reads); without it, the hub dataset
            ``Qiskit/qiskit_humaneval``.
        **kw: Hub options for `load_hub` (``split``, ``revision``, ...); none with ``path``.
    """
    return _local_or_hub(QISKIT_HUMANEVAL, path, kw)


def load_qiskit_humaneval_hard(path: str | os.PathLike[str] | None = None, **kw: Any) -> TaskSet:
    """Qiskit-HumanEval-hard (program format): a local file or the hub.

    Args:
        path: A downloaded copy (JSON/JSONL, as `load_file` reads); without it, the hub dataset
            ``Qiskit/qiskit_humaneval_hard``.
        **kw: Hub options for `load_hub` (``split``, ``revision``, ...); none with ``path``.
    """
    return _local_or_hub(QISKIT_HUMANEVAL_HARD, path, kw)


def _local_or_hub(repo_id: str, path: str | os.PathLike[str] | None, kw: dict[str, Any]) -> TaskSet:
    if path is None:
        return load_hub(repo_id, **kw)
    if kw:
        raise ValueError(
            f"path={os.fspath(path)!r} is a local file, which takes no hub options; got "
            f"{', '.join(repr(name) for name in sorted(kw))}"
        )
    return load_file(path)


def _import_datasets(repo_id: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"loading {repo_id!r} from the Hugging Face hub needs the `datasets` library: "
            f"{INSTALL_HINT}; or download the dataset file and pass its path: "
            'load_tasks("path/to/file.json")'
        ) from None
    return datasets


def _fetch(
    datasets: Any, repo_id: str, split: str | None, revision: str | None, kw: dict[str, Any]
) -> Any:
    if os.path.isdir(repo_id) and any(
        os.path.exists(os.path.join(repo_id, marker)) for marker in _SAVED_MARKERS
    ):
        if revision is not None or kw:
            raise ValueError(
                f"{repo_id}: a dataset saved with save_to_disk takes only split=, got "
                "revision or other options"
            )
        return datasets.load_from_disk(repo_id)
    try:
        return datasets.load_dataset(repo_id, split=split, revision=revision, **kw)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise ValueError(
            f"dataset {repo_id!r} was not found on the Hugging Face hub ({_first_line(error)}); "
            f"check the id (e.g. {QISKIT_HUMANEVAL_HARD!r}) and revision, or download the "
            'dataset file and pass its path: load_tasks("path/to/file.json")'
        ) from None
    except ConnectionError as error:
        raise ConnectionError(
            f"cannot reach the Hugging Face hub to load {repo_id!r} ({_first_line(error)}); "
            f"download the dataset file (https://huggingface.co/datasets/{repo_id}) and pass "
            'its path instead: load_tasks("path/to/file.json")'
        ) from None
    except ValueError as error:
        # load_dataset reports an unknown split as a ValueError naming the splits there are.
        raise ValueError(f"{repo_id}: {_first_line(error)}") from None


def _one_split(data: Any, repo_id: str, split: str | None) -> tuple[str, Iterable[Any]]:
    """The rows to read: ``data`` itself when a split was loaded, else the only split there is."""
    if not isinstance(data, Mapping):
        return split or "", data
    names = list(data)
    if split is not None:
        if split not in data:
            raise ValueError(f"{repo_id}: no split {split!r}; the splits are {names}")
        return split, data[split]
    if len(names) != 1:
        raise ValueError(f"{repo_id}: has splits {names}; choose one with split=")
    return names[0], data[names[0]]


def _located(rows: Iterable[Any]) -> Iterator[tuple[str, object]]:
    for index, row in enumerate(rows):
        # A Dataset row is a plain dict already; anything else mapping-shaped is copied into one.
        yield f"row {index}", dict(row) if isinstance(row, Mapping) else row


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
