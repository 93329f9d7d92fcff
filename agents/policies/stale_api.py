"""The ``stale-api`` policy: canonical solutions rewritten the way a 2023-era model writes Qiskit.

Models trained on pre-1.0 Qiskit code answer with idioms that current Qiskit removed. This policy
produces exactly that failure mode, on purpose, so that a benchmark can show the environment
rejects it (the paper's motivation): every completion it returns uses at least one removed API.

How a completion is made, per task:

1. Take the canonical solution as a whole program (for ``completion`` tasks: the prompt followed
   by the canonical body, so the answer is the whole function, as a chat model writes it).
2. Apply, in order, every rule of `RULES` whose pattern matches. Each rule is a small text rewrite
   producing code a model trained on 2022–2023 Qiskit wrote (docs in each rule's ``why``). A rule
   whose rewrite would not parse is skipped, so answers fail for their API, never for syntax.
3. If no *removed-API* rule applied (none matched, or only ``transpile-without-target``, whose
   code may still run), add one legacy import line, chosen by the task id among `LEGACY_IMPORTS`:
   the header such a model puts on top of every program. So every sample is stale.
4. Return the program in a ``python`` fence, like a chat model's answer.

`stale_rewrite` returns the program and the names of the rules that made it; the policy itself
returns text only, as every policy does. This module never runs the code it writes; the Verifier
does.
"""

from __future__ import annotations

import ast
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.policy import Policy, Query, SamplingParams, check_request
from qsandbox_env.tasks import Task

__all__ = ["LEGACY_IMPORTS", "RULES", "Rule", "StaleApiPolicy", "make", "stale_rewrite"]


@dataclass(frozen=True)
class Rule:
    """One rewrite from a current Qiskit idiom to its removed predecessor.

    Attributes:
        name: Short id, shown by `stale_rewrite`.
        why: What the old idiom was and when Qiskit removed it.
        pattern: Where the rule applies; ``rewrite`` is called only when it matches.
        rewrite: Source → rewritten source.
        removed: True when the result uses an API that no longer exists (it cannot pass);
            False for idioms that are outdated but may still run.
        imports: Legacy import lines the rewritten code needs, added on top of the program.
    """

    name: str
    why: str
    pattern: re.Pattern[str]
    rewrite: Callable[[str], str]
    removed: bool = True
    imports: tuple[str, ...] = ()


def _sub(pattern: str, replacement: str) -> Callable[[str], str]:
    compiled = re.compile(pattern, re.MULTILINE)
    return lambda source: compiled.sub(replacement, source)


def _transpile_without_target(source: str) -> str:
    """``pm = generate_preset_pass_manager(..., backend=b)`` + ``pm.run(c)`` → ``transpile(c, ...)``
    with the backend dropped (a 2023 habit: transpile for nothing in particular)."""
    pattern = re.compile(r"^[ \t]*(\w+) = generate_preset_pass_manager\((.*)\)[ \t]*$", re.M)
    for match in list(pattern.finditer(source)):
        name, arguments = match.groups()
        try:
            call = ast.parse(f"f({arguments})", mode="eval").body
        except SyntaxError:
            continue
        assert isinstance(call, ast.Call)
        kept = [ast.unparse(k) for k in call.keywords if k.arg not in ("backend", "target")]
        run = re.compile(rf"\b{re.escape(name)}\.run\(([^()\n]*)\)")
        if not run.search(source):
            continue
        source = source.replace(match.group(0) + "\n", "", 1)
        extra = "".join(f", {keyword}" for keyword in kept)
        source = run.sub(_transpile_call(extra), source)
    return source


def _transpile_call(extra: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"transpile({match.group(1)}{extra})"


def _c_if(source: str) -> str:
    """``with qc.if_test((bit, value)):`` over one gate → ``qc.gate(...).c_if(bit, value)``."""
    pattern = re.compile(
        r"^(?P<indent>[ \t]*)with (?P<qc>\w+)\.if_test\(\((?P<bit>[^()\n]+?), (?P<value>\w+)\)\):"
        r"\n(?P<inner>[ \t]+)(?P<gate>(?P=qc)\.\w+\([^\n]*\))[ \t]*\n",
        re.MULTILINE,
    )

    def replace(match: re.Match[str]) -> str:
        if len(match["inner"]) <= len(match["indent"]):
            return match.group(0)
        rest = source[match.end() :]
        following = re.match(r"[ \t]*", rest)
        if rest and following and len(following.group(0)) > len(match["indent"]):
            return match.group(0)  # a body of several statements: leave it to other rules
        return f"{match['indent']}{match['gate']}.c_if({match['bit']}, {match['value']})\n"

    return pattern.sub(replace, source)


RULES: tuple[Rule, ...] = (
    Rule(
        "aer-provider",
        "`from qiskit.providers.aer import ...`: Aer's home inside qiskit until qiskit-aer 0.11 "
        "moved it to `qiskit_aer`; the alias was removed with qiskit 1.0.",
        re.compile(r"^[ \t]*(from|import) qiskit_aer\b", re.M),
        _sub(r"^([ \t]*)(from|import) qiskit_aer\b", r"\1\2 qiskit.providers.aer"),
    ),
    Rule(
        "aer-get-backend",
        '`Aer.get_backend("aer_simulator")` from `from qiskit import Aer`: removed in qiskit 1.0.',
        re.compile(r"\bAerSimulator\(\)"),
        _sub(r"\bAerSimulator\(\)", 'Aer.get_backend("aer_simulator")'),
        imports=("from qiskit import Aer",),
    ),
    Rule(
        "execute",
        "`execute(circuit, backend, shots=...)` instead of `backend.run`: removed in qiskit 1.0.",
        re.compile(r"\b\w*(?:backend|simulator|sim)\w*\.run\("),
        _sub(r"\b(\w*(?:backend|simulator|sim)\w*)\.run\(([^,()\n]+)", r"execute(\2, \1"),
        imports=("from qiskit import execute",),
    ),
    Rule(
        "sampler-v1",
        "V1 `Sampler` from `qiskit.primitives` (no `mode=`, circuits not in pubs): removed in "
        "qiskit 2.0.",
        re.compile(r"\b(StatevectorSampler|SamplerV2|Sampler)\b"),
        lambda source: re.sub(
            r"^([ \t]*)from qiskit_ibm_runtime import Sampler$",
            r"\1from qiskit.primitives import Sampler",
            re.sub(
                r"\bSampler\(mode=[^()\n]*(?:\([^()\n]*\))?[^()\n]*\)",
                "Sampler()",
                re.sub(r"\b(StatevectorSampler|SamplerV2)\b", "Sampler", source),
            ),
            flags=re.M,
        ),
        imports=("from qiskit.primitives import Sampler",),
    ),
    Rule(
        "estimator-v1",
        "V1 `Estimator` from `qiskit.primitives` (`estimator.run(circuits, observables)`): "
        "removed in qiskit 2.0.",
        re.compile(r"\b(StatevectorEstimator|EstimatorV2|Estimator)\b"),
        lambda source: re.sub(
            r"\bEstimator\(mode=[^()\n]*(?:\([^()\n]*\))?[^()\n]*\)",
            "Estimator()",
            re.sub(r"\b(StatevectorEstimator|EstimatorV2)\b", "Estimator", source),
        ),
        imports=("from qiskit.primitives import Estimator",),
    ),
    Rule(
        "fake-provider",
        "Fake devices from `qiskit.providers.fake_provider`: moved to qiskit-ibm-runtime and "
        "removed from qiskit in 1.0.",
        re.compile(r"^[ \t]*from qiskit_ibm_runtime\.fake_provider import", re.M),
        _sub(
            r"^([ \t]*)from qiskit_ibm_runtime\.fake_provider import",
            r"\1from qiskit.providers.fake_provider import",
        ),
    ),
    Rule(
        "basicaer-statevector",
        'Statevectors from `execute(qc, BasicAer.get_backend("statevector_simulator"))`: '
        "BasicAer and execute were removed in qiskit 1.0.",
        re.compile(r"\bStatevector\((\w+)\)"),
        _sub(
            r"\bStatevector\((\w+)\)",
            r'Statevector(execute(\1, BasicAer.get_backend("statevector_simulator"))'
            r".result().get_statevector())",
        ),
        imports=("from qiskit import BasicAer, execute",),
    ),
    Rule(
        "opflow",
        "Operators as `qiskit.opflow.PauliSumOp`: opflow was removed in qiskit 1.0.",
        re.compile(r"\bSparsePauliOp\.from_list\("),
        _sub(r"\bSparsePauliOp\.from_list\(", "PauliSumOp.from_list("),
        imports=("from qiskit.opflow import PauliSumOp",),
    ),
    Rule(
        "c-if",
        "Classically controlled gates with `.c_if(bit, value)`: removed in qiskit 2.0 "
        "(`with qc.if_test(...)` replaced it).",
        re.compile(r"\.if_test\("),
        _c_if,
    ),
    Rule(
        "bind-parameters",
        "`circuit.bind_parameters(...)`: removed in qiskit 1.0 (`assign_parameters`).",
        re.compile(r"\.assign_parameters\("),
        _sub(r"\.assign_parameters\(", ".bind_parameters("),
    ),
    Rule(
        "cnot",
        "`circuit.cnot(...)`, the old alias of `cx`: removed in qiskit 1.0.",
        re.compile(r"\b\w+\.cx\("),
        _sub(r"\b(\w+)\.cx\(", r"\1.cnot("),
    ),
    Rule(
        "qasm-method",
        "`circuit.qasm()` for OpenQASM 2 text: removed in qiskit 1.0 (`qasm2.dumps`).",
        re.compile(r"\bqasm2\.dumps\((\w+)\)"),
        _sub(r"\bqasm2\.dumps\((\w+)\)", r"\1.qasm()"),
    ),
    Rule(
        "transpile-without-target",
        "`transpile(circuit)` with no backend where an ISA circuit for the backend is needed: "
        "the pre-1.0 habit of transpiling for nothing in particular. Outdated, not removed.",
        re.compile(r"\b\w+ = generate_preset_pass_manager\("),
        _transpile_without_target,
        removed=False,
        imports=("from qiskit import transpile",),
    ),
)

# The header a 2023-era model puts on programs whatever they do; one is added (chosen by task id)
# when no removed-API rule matched the task's solution.
LEGACY_IMPORTS: tuple[str, ...] = (
    "from qiskit import Aer, execute",
    "from qiskit import BasicAer",
    "from qiskit.utils import QuantumInstance",
    "from qiskit.opflow import I, X, Z",
    "from qiskit.providers.aer import AerSimulator",
)


def stale_rewrite(task: Task) -> tuple[str, list[str]]:
    """The stale program for ``task`` and the names of the rules that made it.

    A rule named ``legacy-import`` means the fallback of the module docstring's step 3.

    Example:
        >>> from qsandbox_env import load_tasks
        >>> code, rules = stale_rewrite(load_tasks("bundled")["qsandbox/ghz_circuit"])
        >>> rules
        ['cnot']
        >>> "qc.cnot(0, target)" in code
        True
    """
    source = _whole_program(task)
    applied: list[Rule] = []
    for rule in RULES:
        if not rule.pattern.search(source):
            continue
        rewritten = rule.rewrite(source)
        if rewritten != source and _parses(rewritten):
            source = rewritten
            applied.append(rule)
    imports = [line for rule in applied for line in rule.imports]
    names = [rule.name for rule in applied]
    if not any(rule.removed for rule in applied):
        imports.append(LEGACY_IMPORTS[zlib.crc32(task.task_id.encode()) % len(LEGACY_IMPORTS)])
        names.append("legacy-import")
    present = set(source.splitlines())
    header = "".join(f"{line}\n" for line in dict.fromkeys(imports) if line not in present)
    return header + source, names


def _whole_program(task: Task) -> str:
    if task.format == "program":
        return task.canonical_solution
    return task.prompt + task.canonical_solution


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


class StaleApiPolicy(Policy):
    """Answers with `stale_rewrite` of each task's canonical solution, ``n`` identical copies.

    Sampling parameters are ignored: the rewrite is deterministic.
    """

    name = "stale-api"
    replicable = True

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        check_request(queries, n)
        answers = []
        for query in queries:
            code, _ = stale_rewrite(query.task)
            answers.append([f"```python\n{code.rstrip()}\n```\n"] * n)
        return answers


def make(**options: object) -> StaleApiPolicy:
    """Build the stale-api policy; it takes no options.

    Raises:
        ValueError: Any option given.
    """
    if options:
        raise ValueError(f"agent 'stale-api' takes no options, got {', '.join(sorted(options))}")
    return StaleApiPolicy()
