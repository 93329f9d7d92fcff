"""Tests for qsandbox_env.hub: hub datasets and the Qiskit-HumanEval named sources, offline.

No test reaches the network: datasets are built here with the real ``datasets`` library and read
back from local folders; the hub itself is only asked for with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qsandbox_env.hub import load_hub, tasks_from_rows
from qsandbox_env.sources import load_tasks
from tests.conftest import ROOT, humaneval_path

datasets = pytest.importorskip("datasets")

# Rows shaped like the two Qiskit-HumanEval sets (SOURCE.md beside the shared data set).
HARD_ROW = {
    "task_id": "qiskitHumanEval/0",
    "prompt": "Return a Bell circuit. You must implement this using a function named `bell` with "
    "no arguments.",
    "canonical_solution": "from qiskit import QuantumCircuit\n\ndef bell():\n"
    "    qc = QuantumCircuit(2)\n    qc.h(0)\n    qc.cx(0, 1)\n    return qc\n",
    "test": "from qiskit import QuantumCircuit\n\ndef check(candidate):\n"
    "    assert candidate().num_qubits == 2\n\ncheck(bell)\n",
    "entry_point": "bell",
    "difficulty_scale": "basic",
}
NORMAL_ROW = {
    "task_id": "qiskitHumanEval/1",
    "prompt": "from qiskit import QuantumCircuit\n\n"
    'def bell():\n    """Return a Bell circuit."""\n',
    "canonical_solution": "\n    qc = QuantumCircuit(2)\n    qc.h(0)\n    qc.cx(0, 1)\n"
    "    return qc\n",
    "test": "def check(candidate):\n    assert candidate().num_qubits == 2\n",
    "entry_point": "bell",
    "difficulty_scale": "intermediate",
}


def write_data_folder(folder, rows: list[dict], split: str = "test") -> str:
    """A folder of data files, as a hub dataset repository holds them."""
    datasets.Dataset.from_list(rows).to_json(str(folder / f"{split}.jsonl"))
    return str(folder)


def test_dataset_rows_become_tasks_with_their_format_detected_per_row() -> None:
    tasks = tasks_from_rows(datasets.Dataset.from_list([HARD_ROW, NORMAL_ROW]), "rows")
    assert [task.format for task in tasks.values()] == ["program", "completion"]
    assert tasks["qiskitHumanEval/0"].difficulty == "basic"
    assert tasks["qiskitHumanEval/1"].canonical_solution == NORMAL_ROW["canonical_solution"]


def test_columns_beyond_the_schema_go_into_metadata() -> None:
    row = {**NORMAL_ROW, "topic": "circuits"}
    tasks = tasks_from_rows(datasets.Dataset.from_list([row]), "rows")
    assert dict(tasks["qiskitHumanEval/1"].metadata) == {"topic": "circuits"}


def test_a_malformed_row_is_named_by_source_and_row() -> None:
    rows = [NORMAL_ROW, {**HARD_ROW, "entry_point": None}]
    message = (
        r"^rows row 1 \(task 'qiskitHumanEval/0'\): field 'entry_point' is missing; every record "
        r"needs task_id, prompt, test and entry_point$"
    )
    with pytest.raises(ValueError, match=message):
        tasks_from_rows(datasets.Dataset.from_list(rows), "rows")


def test_a_duplicate_task_id_in_a_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^rows row 1 .*duplicate task_id .*first seen at row 0"):
        tasks_from_rows([NORMAL_ROW, NORMAL_ROW], "rows")


def test_load_hub_reads_a_folder_of_data_files_through_load_dataset(tmp_path) -> None:
    folder = write_data_folder(tmp_path / "repo", [HARD_ROW])
    tasks = load_hub(folder, cache_dir=str(tmp_path / "cache"))
    assert tasks.source == f"{folder}[test]"
    assert tasks["qiskitHumanEval/0"].format == "program"
    assert tasks["qiskitHumanEval/0"].test == HARD_ROW["test"]


def test_load_hub_reads_a_dataset_saved_to_disk(tmp_path) -> None:
    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([NORMAL_ROW])}).save_to_disk(saved)
    tasks = load_hub(str(saved))
    assert list(tasks) == ["qiskitHumanEval/1"]
    assert tasks.source == f"{saved}[test]"


def test_load_hub_reads_the_chosen_split(tmp_path) -> None:
    saved = tmp_path / "saved"
    splits = {
        "train": datasets.Dataset.from_list([NORMAL_ROW]),
        "test": datasets.Dataset.from_list([HARD_ROW]),
    }
    datasets.DatasetDict(splits).save_to_disk(saved)
    assert list(load_hub(str(saved), split="test")) == ["qiskitHumanEval/0"]


def test_several_splits_without_a_choice_is_a_value_error(tmp_path) -> None:
    saved = tmp_path / "saved"
    splits = {"train": datasets.Dataset.from_list([NORMAL_ROW])}
    datasets.DatasetDict({**splits, "test": splits["train"]}).save_to_disk(saved)
    message = rf"^{saved}: has splits \['train', 'test'\]; choose one with split=$"
    with pytest.raises(ValueError, match=message):
        load_hub(str(saved))


def test_an_unknown_split_is_a_value_error_naming_the_splits(tmp_path) -> None:
    folder = write_data_folder(tmp_path / "repo", [HARD_ROW])
    with pytest.raises(ValueError, match=r"Unknown split \"dev\"\. Should be one of \['test'\]"):
        load_hub(folder, split="dev", cache_dir=str(tmp_path / "cache"))


def test_without_datasets_the_error_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an absent package looks like
    message = (
        r"^loading 'Qiskit/qiskit_humaneval_hard' from the Hugging Face hub needs the `datasets` "
        r"library: pip install \"qsandbox\[grpo\]\" \(or pip install datasets\); or download the "
        r"dataset file and pass its path: load_tasks\(\"path/to/file.json\"\)$"
    )
    with pytest.raises(ImportError, match=message):
        load_tasks("Qiskit/qiskit_humaneval_hard")


def test_offline_a_hub_id_fails_with_a_connection_error_saying_to_pass_a_file(tmp_path) -> None:
    script = (
        "from qsandbox_env import load_tasks\n"
        "try:\n"
        "    load_tasks('Qiskit/qiskit_humaneval_hard')\n"
        "except ConnectionError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "cannot reach the Hugging Face hub to load 'Qiskit/qiskit_humaneval_hard' ("
    )
    assert result.stdout.rstrip().endswith(
        "download the dataset file (https://huggingface.co/datasets/Qiskit/qiskit_humaneval_hard) "
        'and pass its path instead: load_tasks("path/to/file.json")'
    )


# --- named sources --------------------------------------------------------------------------------


@pytest.mark.dataset
def test_the_qiskit_humaneval_source_reads_a_local_copy() -> None:
    tasks = load_tasks("qiskit-humaneval", path=humaneval_path())
    assert len(tasks) == 151
    assert {task.format for task in tasks.values()} == {"completion"}


def test_the_hard_source_reads_a_local_copy_as_program_tasks(tmp_path) -> None:
    path = tmp_path / "hard.json"
    path.write_text(json.dumps([HARD_ROW]), encoding="utf-8")
    tasks = load_tasks("qiskit-humaneval-hard", path=path)
    assert tasks["qiskitHumanEval/0"].format == "program"


def test_a_local_copy_takes_no_hub_options(tmp_path) -> None:
    message = r"^path='x.json' is a local file, which takes no hub options; got 'split'$"
    with pytest.raises(ValueError, match=message):
        load_tasks("qiskit-humaneval-hard", path="x.json", split="test")
