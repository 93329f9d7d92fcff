"""Tamper detection in-process: the snapshot sees replaced entries, ignores legitimate growth."""

from __future__ import annotations

import sys
import types

import pytest

from qsandbox_env.sandbox import guard

qiskit_quantum_info = pytest.importorskip("qiskit.quantum_info")


@pytest.fixture(scope="module")
def snapshot():
    return guard.Snapshot()


def test_fast_paths_are_active_on_cpython(snapshot):
    assert snapshot.memory is not None  # dict version tags are readable
    assert snapshot.raw_modules  # sys.modules entries can be read without touching modules


def test_gathered_tags_and_raw_reads_agree_with_the_word_by_word_reads(snapshot, monkeypatch):
    assert snapshot.words is not None and not snapshot.words.flags.writeable
    expected = {id(k): id(v) for k, v in sys.modules.items()}
    assert guard._raw_items(snapshot.memory, sys.modules, snapshot.words) == expected
    assert guard._raw_items(snapshot.memory, sys.modules) == expected
    monkeypatch.setattr(qiskit_quantum_info.Statevector, "equiv", lambda *a, **k: True)
    gathered = snapshot._moved()
    monkeypatch.setattr(snapshot, "words", None)  # the fallback: one read per tag
    assert gathered == snapshot._moved()
    assert len(gathered) >= 1


def test_differing_words_finds_each_changed_word_across_blocks():
    import array

    before = array.array("Q", range(1000))
    now = array.array("Q", before)
    now[3], now[300], now[999] = 7, 7, 7
    assert guard._differing_words(now.tobytes(), before.tobytes()) == {3, 300, 999}
    assert guard._differing_words(before.tobytes(), before.tobytes()) == set()


@pytest.mark.parametrize("gathered", [True, False], ids=["gathered", "described"])
@pytest.mark.parametrize(
    "edit",
    [
        lambda data: data["errors"][1]["probabilities"].__setitem__(0, 1.0),
        lambda data: data["errors"][0]["rows"][1].__setitem__(1, 0.5),
        lambda data: data["errors"][0].__setitem__("type", "none"),
        lambda data: data["errors"].append({}),
        lambda data: data["errors"][1]["probabilities"].pop(),
        lambda data: data.clear(),
    ],
    ids=["float-in-list", "nested-row", "dict-value", "append", "pop", "clear"],
)
def test_sealed_contents_see_an_edit_at_any_depth(edit, gathered):
    data = {
        "errors": [
            {"type": "roerror", "rows": [[0.9, 0.1], [0.2, 0.8]]},
            {"type": "qerror", "probabilities": [0.99, 0.01], "names": ["id", "x"]},
        ]
    }
    snapshot = guard.Snapshot.__new__(guard.Snapshot)  # only what seal_contents needs
    snapshot.memory = guard._dict_versions()
    snapshot.words = guard._word_view(snapshot.memory) if gathered else None
    snapshot.contents = ()
    snapshot.seal_contents("data", data)
    ((_, contents),) = snapshot.contents
    assert not contents.changed()
    edit(data)
    assert contents.changed()


def test_an_untouched_library_shows_no_changes(snapshot):
    assert snapshot.changes() == []


def test_a_replaced_class_method_is_reported(snapshot, monkeypatch):
    monkeypatch.setattr(qiskit_quantum_info.Statevector, "equiv", lambda *a, **k: True)
    assert any("Statevector.equiv was replaced" in c for c in snapshot.changes())


def test_an_added_comparison_method_is_reported(snapshot, monkeypatch):
    monkeypatch.setattr(qiskit_quantum_info.Operator, "__ne__", lambda *a: False, raising=False)
    changes = snapshot.changes()
    assert any("Operator.__ne__ was" in c for c in changes), changes


def test_a_replaced_module_is_reported_even_when_modules_were_added(snapshot, monkeypatch):
    monkeypatch.setitem(sys.modules, "qsandbox_test_new_module", types.ModuleType("x"))
    assert snapshot.changes() == []
    monkeypatch.setitem(sys.modules, "qiskit.quantum_info", types.ModuleType("fake"))
    assert snapshot.changes() == ["sys.modules['qiskit.quantum_info'] was replaced"]


def test_a_replaced_builtin_is_reported(snapshot, monkeypatch):
    real = isinstance
    monkeypatch.setattr("builtins.isinstance", lambda obj, cls: real(obj, cls))
    assert snapshot.changes() == ["builtins.isinstance was replaced"]


def _program_class(source: str, filename: str) -> type:
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["Thing"]
