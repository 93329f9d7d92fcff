"""What a benchmark run found: outcome categories, ``summary.json``, ``report.md`` and a chart.

Every function here reads verdict records (the lines of ``results.jsonl``) and task metadata; it
never runs code and never changes the run's samples or results.

Categories refine the Verifier's outcomes for reading a report: an ``error`` whose exception is an
``ImportError`` of a name from a Qiskit package (``from qiskit import execute``), a
``ModuleNotFoundError`` of a module inside one (``qiskit.providers.aer``; a whole package that is
not installed is a missing dependency, not an API change), or an ``AttributeError`` on a Qiskit
object or module or of a removed Qiskit method name (``.c_if``, ``.cnot``), is counted as
``deprecated-api``: the failure mode of models trained on old Qiskit. ``failed`` (an
``AssertionError``) reads as ``assertion``.
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.bench.passk import mean_pass_at_k, reportable_ks

__all__ = [
    "CATEGORIES",
    "build_summary",
    "categorize",
    "compare_table",
    "deprecated_name",
    "difficulty_order",
    "library_versions",
    "render_markdown",
]

# Report order; every result falls in exactly one.
CATEGORIES: tuple[str, ...] = (
    "passed",
    "syntax",
    "deprecated-api",
    "assertion",
    "error",
    "timeout",
    "memory",
    "exited",
    "killed",
    "tampered",
    "not_isa",
    "budget",
    "sandbox",
)
_BY_OUTCOME = {"failed": "assertion"}
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})
# Qiskit types whose missing attributes mean an API that moved or was removed.
_QISKIT_TYPES = frozenset(
    {
        "QuantumCircuit",
        "InstructionSet",
        "Instruction",
        "Gate",
        "ControlledGate",
        "QuantumRegister",
        "ClassicalRegister",
        "Parameter",
        "ParameterVector",
        "Statevector",
        "DensityMatrix",
        "Operator",
        "SparsePauliOp",
        "Pauli",
        "Clifford",
        "DAGCircuit",
        "Result",
        "PrimitiveResult",
        "PubResult",
        "SamplerPubResult",
        "DataBin",
        "BitArray",
        "AerSimulator",
        "Target",
        "CouplingMap",
        "Layout",
        "PassManager",
        "StagedPassManager",
        "GenericBackendV2",
        "SamplerV2",
        "EstimatorV2",
        "StatevectorSampler",
        "StatevectorEstimator",
        "PrimitiveJob",
        "RuntimeJobV2",
        "QiskitRuntimeService",
    }
)
# Methods and attributes Qiskit removed (1.0, 2.0) that old code still calls.
_REMOVED_NAMES = frozenset(
    {
        "cnot",
        "toffoli",
        "fredkin",
        "mct",
        "iden",
        "u1",
        "u2",
        "u3",
        "cu1",
        "cu3",
        "c_if",
        "condition",
        "bind_parameters",
        "qasm",
        "snapshot",
        "get_backend",
        "quasi_dists",
        "execute",
    }
)
_LAST_LINE = re.compile(r"^(?P<type>[\w.]+): (?P<message>.*)$")
_CANNOT_IMPORT = re.compile(r"cannot import name '(?P<name>[\w.]+)' from '(?P<module>[\w.]+)'")
_NO_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
_NO_ATTRIBUTE = re.compile(
    r"^(?:module '(?P<module>[\w.]+)'|'(?P<type>\w+)' object) has no attribute '(?P<name>\w+)'"
)


def categorize(record: Mapping[str, Any]) -> str:
    """The report category of one verdict record (``outcome``, ``error_type``, ``detail``).

    Example:
        >>> categorize({"outcome": "error", "error_type": "ModuleNotFoundError",
        ...             "detail": "ModuleNotFoundError: No module named 'qiskit.opflow'"})
        'deprecated-api'
        >>> categorize({"outcome": "failed"})
        'assertion'
    """
    outcome = str(record.get("outcome", ""))
    if outcome == "error" and deprecated_name(record):
        return "deprecated-api"
    # An outcome this module does not know yet is its own category, not hidden in another.
    return _BY_OUTCOME.get(outcome, outcome) or "error"


def deprecated_name(record: Mapping[str, Any]) -> str:
    """The removed Qiskit name an error record ran into (``"qiskit.providers.aer"``,
    ``"qiskit.execute"``, ``"QuantumCircuit.cnot"``), or ``""`` when it is not such an error."""
    error_type = str(record.get("error_type", ""))
    if error_type not in _IMPORT_ERRORS and error_type != "AttributeError":
        return ""
    message = _error_message(str(record.get("detail", "")), error_type)
    if error_type in _IMPORT_ERRORS:
        if match := _CANNOT_IMPORT.search(message):
            module = match["module"]
            return f"{module}.{match['name']}" if module.startswith("qiskit") else ""
        if match := _NO_MODULE.search(message):
            # qiskit.opflow, qiskit_aer.noise.x: a module gone from an installed Qiskit package.
            # A missing top-level package (qiskit_ibm_transpiler) is a missing dependency.
            module = match["module"]
            return module if module.startswith("qiskit") and "." in module else ""
        return ""
    match = _NO_ATTRIBUTE.search(message)
    if not match:
        return ""
    owner = match["module"] or match["type"]
    qiskit_owner = owner.startswith("qiskit") or owner in _QISKIT_TYPES
    return f"{owner}.{match['name']}" if qiskit_owner or match["name"] in _REMOVED_NAMES else ""


def _error_message(detail: str, error_type: str) -> str:
    for line in reversed(detail.strip().splitlines()):
        match = _LAST_LINE.match(line.strip())
        if match and match["type"].rpartition(".")[2] == error_type:
            return match["message"]
    return detail


# -- summary ----------------------------------------------------------------------------------


def build_summary(
    results: Iterable[Mapping[str, Any]],
    difficulties: Mapping[str, str],
    n: int,
    ks: Sequence[int],
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Aggregate verdict records into the run's summary (what ``summary.json`` holds).

    Args:
        results: Verdict records with ``task_id`` and ``outcome`` (and ``error_type``/``detail``).
        difficulties: Every task id of the run → its difficulty label.
        n: Samples per task.
        ks: Requested budgets; those above ``n`` are listed under ``not_reported``.
        info: Run facts copied into the summary (agent, task source, timings).

    Example:
        >>> records = [{"task_id": "a", "outcome": "passed"}, {"task_id": "b", "outcome": "failed"}]
        >>> s = build_summary(records, {"a": "x", "b": "y"}, 1, [1, 5])
        >>> s["pass_at_k"], s["not_reported"], s["categories"]["assertion"]
        ({'1': 0.5}, {'5': 'needs n >= 5 samples per task, got n=1'}, 1)
    """
    records = list(results)
    passes = {task_id: 0 for task_id in difficulties}
    categories = collections.Counter({category: 0 for category in CATEGORIES})
    outcomes: collections.Counter[str] = collections.Counter()
    deprecated: collections.Counter[str] = collections.Counter()
    for record in records:
        passes[record["task_id"]] += record["outcome"] == "passed"
        categories[categorize(record)] += 1
        outcomes[str(record["outcome"])] += 1
        if name := deprecated_name(record):
            deprecated[name] += 1
    usable = reportable_ks(ks, n)
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for task_id, difficulty in difficulties.items():
        groups[difficulty].append(task_id)
    return {
        **dict(info or {}),
        "tasks": len(difficulties),
        "n": n,
        "samples": len(records),
        "passed_samples": outcomes["passed"],
        "pass_at_k": _pass_at_ks(passes, list(difficulties), n, usable),
        "not_reported": {
            str(k): f"needs n >= {k} samples per task, got n={n}" for k in sorted(set(ks)) if k > n
        },
        "by_difficulty": {
            difficulty: {"tasks": len(ids), "pass_at_k": _pass_at_ks(passes, ids, n, usable)}
            for difficulty, ids in sorted(groups.items(), key=difficulty_order)
        },
        "categories": dict(categories),
        "outcomes": dict(outcomes.most_common()),
        "deprecated_api": dict(deprecated.most_common()),
        "tasks_solved": sorted(task_id for task_id, count in passes.items() if count),
    }


_DIFFICULTIES = ("basic", "easy", "intermediate", "medium", "difficult", "hard")


def difficulty_order(item: tuple[str, Any]) -> tuple[int, str]:
    name = item[0]
    known = _DIFFICULTIES.index(name) if name in _DIFFICULTIES else len(_DIFFICULTIES)
    return known, name


def _pass_at_ks(
    passes: Mapping[str, int], task_ids: Sequence[str], n: int, ks: Sequence[int]
) -> dict[str, float]:
    if not task_ids:
        return {}
    return {str(k): mean_pass_at_k(((n, passes[t]) for t in task_ids), k) for k in ks}


# -- report.md --------------------------------------------------------------------------------


def render_markdown(summary: Mapping[str, Any]) -> str:
    """``report.md``: pass@k overall and per difficulty, outcome counts, removed APIs hit."""
    ks = list(summary["pass_at_k"])
    lines = [
        f"# Benchmark: {summary.get('agent', '?')} on {summary.get('task_source', '?')}",
        "",
        f"{summary['tasks']} tasks, n = {summary['n']} samples per task, "
        f"{summary['samples']} verdicts, {summary['passed_samples']} passed.",
        "",
        f"Answer fitting: {_FIT_TEXT.get(summary.get('fit', 'fitted'), summary.get('fit'))}.",
        "",
        *_run_facts(summary),
        "## pass@k",
        "",
        "| tasks | count | " + " | ".join(f"pass@{k}" for k in ks) + " |",
        "|---|---|" + "---|" * len(ks),
        _pass_row("all", summary["tasks"], summary["pass_at_k"], ks),
    ]
    for difficulty, group in summary["by_difficulty"].items():
        lines.append(_pass_row(difficulty, group["tasks"], group["pass_at_k"], ks))
    for k, why in summary.get("not_reported", {}).items():
        lines.append(f"\npass@{k} not reported: {why}.")
    lines += ["", "## Outcomes", "", "| category | samples | share |", "|---|---|---|"]
    total = max(1, summary["samples"])
    for category, count in summary["categories"].items():
        if count:
            lines.append(f"| {category} | {count} | {count / total:.1%} |")
    if summary.get("deprecated_api"):
        lines += ["", "## Removed Qiskit APIs hit", "", "| name | samples |", "|---|---|"]
        lines += [f"| `{name}` | {count} |" for name, count in summary["deprecated_api"].items()]
    lines += ["", "`deprecated-api`: an import or attribute error on a Qiskit name;"]
    lines += ["`assertion`: the test's assertion failed; `error`: any other exception.", ""]
    return "\n".join(lines)


def _run_facts(summary: Mapping[str, Any]) -> list[str]:
    facts = [f"Target: `{summary.get('target', 'default')}`."]
    if summary.get("timeout") is not None:
        facts.append(f"Timeout: {summary['timeout']:g} s per program.")
    versions = summary.get("versions") or {}
    if versions:
        facts.append("Versions: " + ", ".join(f"{n} {v}" for n, v in versions.items()) + ".")
    return [" ".join(facts), ""]


_FIT_TEXT = {
    "fitted": "`fitted` (code taken out of each reply and fitted to the prompt, whitespace only)",
    "strict": "`strict` (plain HumanEval: prompt + completion + test, nothing fitted)",
}


def _pass_row(label: str, count: int, values: Mapping[str, float], ks: Sequence[str]) -> str:
    cells = " | ".join(f"{100 * values[k]:.2f}%" if k in values else "-" for k in ks)
    return f"| {label} | {count} | {cells} |"


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries a verdict depends on (for the run's report)."""
    from importlib import metadata

    versions = {}
    for name in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# -- compare ----------------------------------------------------------------------------------


def compare_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """A side-by-side text table of several runs' summaries (column per run).

    Example:
        >>> s = build_summary([{"task_id": "a", "outcome": "passed"}], {"a": "basic"}, 1, [1])
        >>> print(compare_table({"run-a": {**s, "agent": "oracle"}}))
        metric            run-a
        agent             oracle
        tasks             1
        n                 1
        pass@1            100.00%
        pass@1 basic      100.00%
        passed            1
    """
    names = list(summaries)
    rows: list[tuple[str, list[str]]] = [
        ("agent", [str(s.get("agent", "?")) for s in summaries.values()]),
        ("tasks", [str(s["tasks"]) for s in summaries.values()]),
        ("n", [str(s["n"]) for s in summaries.values()]),
    ]
    ks = sorted({k for s in summaries.values() for k in s["pass_at_k"]}, key=int)
    names_seen = {d: None for s in summaries.values() for d in s["by_difficulty"]}
    difficulties = [d for d, _ in sorted(names_seen.items(), key=difficulty_order)]
    for k in ks:
        rows.append((f"pass@{k}", [_percent(s["pass_at_k"].get(k)) for s in summaries.values()]))
        for d in difficulties:
            cells = [
                _percent(s["by_difficulty"].get(d, {}).get("pass_at_k", {}).get(k))
                for s in summaries.values()
            ]
            rows.append((f"pass@{k} {d}", cells))
    for category in CATEGORIES:
        counts = [s["categories"].get(category, 0) for s in summaries.values()]
        if any(counts):
            rows.append((category, [str(c) for c in counts]))
    widths = [max(len("metric"), *(len(label) for label, _ in rows))]
    for i, name in enumerate(names):
        widths.append(max(len(name), *(len(cells[i]) for _, cells in rows)))
    lines = [_row(["metric", *names], widths)]
    lines += [_row([label, *cells], widths) for label, cells in rows]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def write_json(data: Mapping[str, Any], path: str) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, ensure_ascii=False)
        file.write("\n")
    os.replace(partial, path)
