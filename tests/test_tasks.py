"""Tests for qsandbox_env.tasks: the Task record, TaskSet and the task-file loader."""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from qsandbox_env.sources import SOURCES, load_tasks
from qsandbox_env.tasks import Task, TaskSet

QISKIT_HUMANEVAL = (
    Path(__file__).resolve().parents[2]
    / "shared/datasets/qiskit_humaneval/dataset_qiskit_test_human_eval.json"
)

COMPLETION_RECORD = {
    "task_id": "demo/0",
    "prompt": 'from qiskit import QuantumCircuit\ndef bell():\n    """Return a Bell circuit."""\n',
    "canonical_solution": "\n    circuit = QuantumCircuit(2)\n    circuit.h(0)\n    return circuit",
    "test": "def check(candidate):\n    assert candidate().num_qubits == 2\n",
    "entry_point": "bell",
    "difficulty_scale": "basic",
}
PROGRAM_RECORD = {
    "task_id": "demo/1",
    "prompt": "Build a Bell circuit. You must implement this using a function named `bell`.",
    "test": (
        "from qiskit import QuantumCircuit\n\n"
        "def check(candidate):\n"
        "    assert isinstance(candidate(), QuantumCircuit)\n\n"
        "check(bell)\n"
    ),
    "entry_point": "bell",
    "difficulty_scale": "basic",
}


def make_task(**overrides: Any) -> Task:
    fields = {
        "task_id": "demo/0",
        "prompt": "def f():\n",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
        "entry_point": "f",
    }
    return Task(**{**fields, **overrides})


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def load_one(tmp_path: Path, **fields: Any) -> Task:
    record = {**COMPLETION_RECORD, **fields}
    return load_tasks(write_jsonl(tmp_path / "tasks.jsonl", [record]))["demo/0"]


def load_error(tmp_path: Path, record: object) -> str:
    path = write_jsonl(tmp_path / "tasks.jsonl", [COMPLETION_RECORD, record])
    with pytest.raises(ValueError) as error:
        load_tasks(path)
    return str(error.value).removeprefix(f"{path} ")


# --- Task -----------------------------------------------------------------------------------------


def test_task_defaults_to_completion_format_with_no_timeout() -> None:
    task = make_task()
    assert (task.format, task.difficulty, task.canonical_solution, task.timeout) == (
        "completion",
        "unknown",
        "",
        None,
    )


def test_task_rejects_a_non_string_text_field() -> None:
    with pytest.raises(TypeError, match=r"^Task\.prompt: expected str, got int$"):
        make_task(prompt=1)


def test_task_rejects_an_empty_task_id() -> None:
    with pytest.raises(ValueError, match=r"^Task\.task_id: must be a non-empty string$"):
        make_task(task_id="")


def test_task_rejects_an_empty_entry_point() -> None:
    with pytest.raises(
        ValueError, match=r"^Task 'demo/0': entry_point must be a non-empty string$"
    ):
        make_task(entry_point="")


@pytest.mark.parametrize("entry_point", ["two words", "1st", "def"])
def test_task_rejects_an_entry_point_that_is_not_an_identifier(entry_point: str) -> None:
    expected = (
        f"Task 'demo/0': entry_point '{entry_point}' is not a valid Python identifier; "
        "use the name of the function the test checks"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        make_task(entry_point=entry_point)


def test_task_rejects_an_unknown_format() -> None:
    expected = "Task 'demo/0': format 'hard' is not valid; expected one of 'completion', 'program'"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        make_task(format="hard")


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan")])
def test_task_rejects_a_timeout_that_is_not_positive_and_finite(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^Task 'demo/0': timeout must be a positive, finite"):
        make_task(timeout=timeout)


@pytest.mark.parametrize("timeout", [True, "10"])
def test_task_rejects_a_timeout_that_is_not_a_number(timeout: object) -> None:
    with pytest.raises(
        TypeError, match=r"^Task\.timeout: expected a number of seconds or None, got"
    ):
        make_task(timeout=timeout)


def test_task_stores_an_integer_timeout_as_float() -> None:
    timeout = make_task(timeout=5).timeout
    assert (timeout, type(timeout)) == (5.0, float)


def test_task_metadata_is_read_only() -> None:
    task = make_task(metadata={"source": "demo"})
    with pytest.raises(TypeError):
        task.metadata["source"] = "changed"  # type: ignore[index]


def test_task_metadata_is_a_copy_of_the_given_mapping() -> None:
    given = {"source": "demo"}
    task = make_task(metadata=given)
    given["source"] = "changed"
    assert task.metadata["source"] == "demo"


def test_task_rejects_metadata_that_is_not_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"^Task\.metadata: expected a mapping, got list$"):
        make_task(metadata=[("source", "demo")])


def test_tasks_are_hashable_by_task_id() -> None:
    tasks = {make_task(metadata={"a": 1}), make_task(metadata={"a": 1})}
    assert len(tasks) == 1


def test_tasks_with_equal_fields_are_equal_and_differing_metadata_makes_them_differ() -> None:
    assert make_task(metadata={"a": 1}) == make_task(metadata={"a": 1})
    assert make_task(metadata={"a": 1}) != make_task(metadata={"a": 2})


# --- the real Qiskit-HumanEval normal set ---------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval() -> TaskSet:
    if not QISKIT_HUMANEVAL.is_file():
        pytest.skip(f"Qiskit-HumanEval not found at {QISKIT_HUMANEVAL}")
    return load_tasks(QISKIT_HUMANEVAL)


@pytest.mark.dataset
def test_qiskit_humaneval_has_151_tasks_in_file_order(humaneval: TaskSet) -> None:
    assert list(humaneval) == [f"qiskitHumanEval/{index}" for index in range(151)]


@pytest.mark.dataset
def test_qiskit_humaneval_tasks_are_all_completion_format(humaneval: TaskSet) -> None:
    assert {task.format for task in humaneval.values()} == {"completion"}


@pytest.mark.dataset
def test_qiskit_humaneval_difficulty_counts(humaneval: TaskSet) -> None:
    counts = collections.Counter(task.difficulty for task in humaneval.values())
    assert counts == {"basic": 79, "intermediate": 67, "difficult": 5}


@pytest.mark.dataset
def test_qiskit_humaneval_first_task_fields(humaneval: TaskSet) -> None:
    task = humaneval["qiskitHumanEval/0"]
    assert task.entry_point == "create_quantum_circuit"
    assert task.canonical_solution.strip() == "return QuantumCircuit(n_qubits)"
    assert dict(task.metadata) == {}
    assert humaneval.source == str(QISKIT_HUMANEVAL)


# --- format detection -----------------------------------------------------------------------------


def test_a_record_whose_test_calls_check_is_a_program_task(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "hard.jsonl", [PROGRAM_RECORD])
    assert load_tasks(path)["demo/1"].format == "program"


def test_a_record_whose_test_only_defines_check_is_a_completion_task(tmp_path: Path) -> None:
    assert load_one(tmp_path).format == "completion"


def test_an_explicit_format_field_overrides_detection(tmp_path: Path) -> None:
    record = {**PROGRAM_RECORD, "format": "completion"}
    path = write_jsonl(tmp_path / "tasks.jsonl", [record])
    assert load_tasks(path)["demo/1"].format == "completion"


def test_a_check_call_inside_a_function_does_not_make_a_program_task(tmp_path: Path) -> None:
    test = "def check(candidate):\n    pass\n\ndef run():\n    check(bell)\n"
    assert load_one(tmp_path, test=test).format == "completion"


def test_a_check_call_under_main_with_no_def_in_the_prompt_is_a_program_task(
    tmp_path: Path,
) -> None:
    test = "def check(candidate):\n    pass\n\nif __name__ == '__main__':\n    check(bell)\n"
    assert load_one(tmp_path, prompt="Write bell().", test=test).format == "program"


def test_an_unparsable_test_with_a_check_line_is_a_program_task(tmp_path: Path) -> None:
    test = "def check(candidate):\n    assert candidate() ==\n\ncheck(bell)\n"
    assert load_one(tmp_path, test=test).format == "program"


# --- file layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["tasks.json", "tasks.jsonl", "tasks.json.gz", "tasks.jsonl.gz", "tasks.object.json"],
)
def test_every_file_layout_loads_the_same_tasks(tmp_path: Path, name: str) -> None:
    records = [COMPLETION_RECORD, PROGRAM_RECORD]
    if name.startswith("tasks.object"):
        text = json.dumps({"tasks": records})
    elif ".jsonl" in name:
        text = "".join(json.dumps(record) + "\n" for record in records)
    else:
        text = json.dumps(records, indent=2)
    data = text.encode("utf-8")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    expected = TaskSet.from_tasks(load_tasks(write_json(tmp_path / "ref.json", records)).values())
    assert list(load_tasks(path).values()) == list(expected.values())


def test_a_data_key_holds_the_records_too(tmp_path: Path) -> None:
    path = write_json(tmp_path / "tasks.json", {"data": [COMPLETION_RECORD]})
    assert list(load_tasks(path)) == ["demo/0"]


def test_the_layout_is_detected_from_content_not_extension(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "tasks.json", [COMPLETION_RECORD, PROGRAM_RECORD])
    assert list(load_tasks(path)) == ["demo/0", "demo/1"]


def test_gzip_is_detected_from_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "tasks.data"
    path.write_bytes(gzip.compress(json.dumps([COMPLETION_RECORD]).encode("utf-8")))
    assert list(load_tasks(path)) == ["demo/0"]


def test_blank_lines_in_jsonl_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(f"\n{json.dumps(COMPLETION_RECORD)}\n\n{json.dumps(PROGRAM_RECORD)}\n\n")
    assert list(load_tasks(path)) == ["demo/0", "demo/1"]


def test_a_single_record_jsonl_file_loads(tmp_path: Path) -> None:
    assert load_one(tmp_path).task_id == "demo/0"


def test_a_path_string_is_accepted_and_kept_as_the_source(tmp_path: Path) -> None:
    path = str(write_json(tmp_path / "tasks.json", [COMPLETION_RECORD]))
    assert load_tasks(path).source == path


# --- record fields --------------------------------------------------------------------------------


def test_extra_fields_land_in_metadata(tmp_path: Path) -> None:
    task = load_one(tmp_path, source="handwritten", tags=["bell"])
    assert dict(task.metadata) == {"source": "handwritten", "tags": ["bell"]}


def test_difficulty_scale_becomes_the_difficulty(tmp_path: Path) -> None:
    assert load_one(tmp_path).difficulty == "basic"


def test_a_difficulty_field_becomes_the_difficulty(tmp_path: Path) -> None:
    record = {key: value for key, value in COMPLETION_RECORD.items() if key != "difficulty_scale"}
    path = write_jsonl(tmp_path / "tasks.jsonl", [{**record, "difficulty": "hard"}])
    assert load_tasks(path)["demo/0"].difficulty == "hard"


def test_the_canonical_solution_is_loaded(tmp_path: Path) -> None:
    assert load_one(tmp_path).canonical_solution == COMPLETION_RECORD["canonical_solution"]


def test_a_timeout_field_becomes_the_task_timeout(tmp_path: Path) -> None:
    assert load_one(tmp_path, timeout=30).timeout == 30.0


# --- malformed files ------------------------------------------------------------------------------


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    expected = (
        f"task file not found: {path}; pass the path of a .json or .jsonl task file, "
        f"a named task set ({', '.join(sorted(SOURCES))}) or a Hugging Face dataset id "
        "(owner/name)"
    )
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_the_old_import_path_of_load_tasks_warns_and_gives_the_same_function() -> None:
    import qsandbox_env.tasks

    with pytest.warns(DeprecationWarning, match=r"import load_tasks from qsandbox_env\.sources$"):
        old = qsandbox_env.tasks.load_tasks
    assert old is load_tasks


def test_a_named_source_loads_the_packaged_file() -> None:
    tasks = load_tasks("bundled")
    assert tasks.source.endswith("bundled.jsonl")
    assert len(tasks) > 0


def test_invalid_json_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text('[\n  {"task_id": "demo/0",\n   "prompt" "x"}\n]\n')
    expected = f"{path}: invalid JSON at line 3, column 13: Expecting ':' delimiter"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_invalid_jsonl_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(COMPLETION_RECORD) + "\n\n{not json}\n")
    expected = (
        f"{path}: invalid JSON at line 3, column 2: "
        "Expecting property name enclosed in double quotes"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n  \n")
    expected = f"{path}: file is empty; expected a JSON list of task records or JSONL"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_a_json_document_that_is_not_a_list_of_records_is_rejected(tmp_path: Path) -> None:
    path = write_json(tmp_path / "tasks.json", {"items": []})
    expected = (
        f"{path}: expected a JSON list of task records, an object with a 'tasks' or 'data' list, "
        "or JSONL; got an object with keys 'items'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_a_tasks_key_that_is_not_a_list_is_rejected(tmp_path: Path) -> None:
    path = write_json(tmp_path / "tasks.json", {"tasks": {"demo/0": COMPLETION_RECORD}})
    expected = f"{path}: 'tasks' must be a list of task records, got object"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_a_record_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, ["demo/1"])
    assert message == "line 2: expected a JSON object (one task record), got array"


def test_a_record_in_a_json_list_is_named_by_its_index(tmp_path: Path) -> None:
    path = write_json(tmp_path / "tasks.json", [COMPLETION_RECORD, "demo/1"])
    expected = f"{path} record at index 1: expected a JSON object (one task record), got string"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


def test_a_missing_field_is_named_with_the_record_and_the_fix(tmp_path: Path) -> None:
    record = {key: value for key, value in PROGRAM_RECORD.items() if key != "entry_point"}
    assert load_error(tmp_path, record) == (
        "line 2 (task 'demo/1'): field 'entry_point' is missing; "
        "every record needs task_id, prompt, test and entry_point"
    )


def test_a_missing_task_id_is_named_by_line_alone(tmp_path: Path) -> None:
    record = {key: value for key, value in PROGRAM_RECORD.items() if key != "task_id"}
    assert load_error(tmp_path, record) == (
        "line 2: field 'task_id' is missing; "
        "every record needs task_id, prompt, test and entry_point"
    )


def test_an_empty_field_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "test": "  \n"})
    assert message == "line 2 (task 'demo/1'): field 'test' is empty; give it a non-empty string"


def test_a_required_field_of_the_wrong_type_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "prompt": ["Build", "a circuit"]})
    assert message == (
        "line 2 (task 'demo/1'): field 'prompt' must be a string, got array; "
        "store it as a JSON string"
    )


def test_an_optional_field_of_the_wrong_type_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "difficulty_scale": 3})
    assert message == (
        "line 2 (task 'demo/1'): field 'difficulty_scale' must be a string, got number; "
        "store it as a JSON string or leave the field out"
    )


def test_a_duplicate_task_id_names_both_records(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "task_id": "demo/0"})
    assert message == (
        "line 2 (task 'demo/0'): duplicate task_id 'demo/0', first seen at line 1; "
        "task ids must be unique"
    )


def test_a_bad_format_value_is_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "format": "hard"})
    assert message == (
        "line 2: Task 'demo/1': format 'hard' is not valid; expected one of 'completion', 'program'"
    )


def test_a_bad_entry_point_in_a_file_is_a_value_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "entry_point": "bell circuit"})
    assert message == (
        "line 2: Task 'demo/1': entry_point 'bell circuit' is not a valid Python identifier; "
        "use the name of the function the test checks"
    )


def test_a_timeout_of_the_wrong_type_in_a_file_is_a_value_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, {**PROGRAM_RECORD, "timeout": "30"})
    assert message == "line 2: Task.timeout: expected a number of seconds or None, got str"


def test_a_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b'{"task_id": "\xff"}\n')
    expected = f"{path}: not UTF-8 text (bad byte at offset 13); save it as UTF-8"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        load_tasks(path)


# --- TaskSet --------------------------------------------------------------------------------------


def test_a_task_set_iterates_in_the_given_order() -> None:
    ids = ["b/2", "a/1", "c/0"]
    tasks = TaskSet.from_tasks(make_task(task_id=task_id) for task_id in ids)
    assert list(tasks) == ids


def test_a_task_set_supports_len_in_and_lookup() -> None:
    task = make_task()
    tasks = TaskSet.from_tasks([task])
    assert (len(tasks), "demo/0" in tasks, "demo/9" in tasks, tasks["demo/0"]) == (
        1,
        True,
        False,
        task,
    )


def test_a_task_set_is_read_only() -> None:
    tasks = TaskSet.from_tasks([make_task()])
    with pytest.raises(TypeError):
        tasks["demo/1"] = make_task(task_id="demo/1")  # type: ignore[index]


def test_an_unknown_task_id_raises_key_error_listing_close_matches() -> None:
    tasks = TaskSet.from_tasks(
        [make_task(task_id=f"qiskitHumanEval/{index}") for index in range(20)], source="demo.json"
    )
    expected = (
        "unknown task_id 'qiskitHumanEval/100' in demo.json (20 tasks); close matches: "
        "'qiskitHumanEval/10', 'qiskitHumanEval/1', 'qiskitHumanEval/0', 'qiskitHumanEval/19', "
        "'qiskitHumanEval/18'"
    )
    with pytest.raises(KeyError, match=re.escape(expected)):
        tasks["qiskitHumanEval/100"]


def test_an_unknown_task_id_with_no_close_match_says_so() -> None:
    tasks = TaskSet.from_tasks([make_task()], source="demo.json")
    expected = "unknown task_id 'zzz' in demo.json (1 task); no close matches"
    with pytest.raises(KeyError, match=re.escape(expected)):
        tasks["zzz"]


def test_get_task_raises_value_error_with_the_same_message() -> None:
    tasks = TaskSet.from_tasks([make_task()], source="demo.json")
    expected = "unknown task_id 'demo/1' in demo.json (1 task); close matches: 'demo/0'"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        tasks.get_task("demo/1")


def test_get_task_returns_a_known_task() -> None:
    task = make_task()
    assert TaskSet.from_tasks([task]).get_task("demo/0") is task


def test_mapping_get_returns_none_for_an_unknown_id() -> None:
    assert TaskSet.from_tasks([make_task()]).get("demo/1") is None


def test_from_tasks_rejects_a_duplicate_task_id() -> None:
    expected = "TaskSet 'demo.json': duplicate task_id 'demo/0'; task ids must be unique"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        TaskSet.from_tasks([make_task(), make_task()], source="demo.json")


def test_from_tasks_rejects_an_item_that_is_not_a_task() -> None:
    with pytest.raises(TypeError, match=r"^TaskSet: expected Task, got dict$"):
        TaskSet.from_tasks([{"task_id": "demo/0"}])  # type: ignore[list-item]


def test_a_task_set_repr_shows_source_and_count() -> None:
    tasks = TaskSet.from_tasks([make_task()], source="demo.json")
    assert repr(tasks) == "TaskSet(source='demo.json', tasks=1)"


def test_a_task_and_a_task_set_pickle_and_come_back_equal_and_read_only():
    import copy
    import pickle

    test = "def check(c):\n    pass\n"
    task = Task("m/0", "def f():\n", test, "f", metadata={"k": [1]}, timeout=5)
    back = pickle.loads(pickle.dumps(task))
    assert back == task and back.timeout == 5.0
    assert dict(back.metadata) == {"k": [1]}
    with pytest.raises(TypeError):
        back.metadata["k"] = 2  # type: ignore[index]
    assert copy.deepcopy(task) == task
    tasks = load_tasks("bundled")
    again = pickle.loads(pickle.dumps(tasks))
    assert list(again) == list(tasks) and again[next(iter(tasks))] == tasks[next(iter(tasks))]
