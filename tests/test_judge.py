"""The judge: the test runs in its own process and calls the candidate through a proxy.

Each test states one behaviour of the boundary between the two processes: what crosses, what
comes back, what the judge shares with the candidate (a seeded generator, the files it wrote)
and what it never does (run the candidate's comparisons, hand its state back).
"""

from __future__ import annotations

import numpy as np

from qsandbox_env import Outcome
from tests.conftest import program_task


def verdict_of(verifier, test_body: str, program: str):
    return verifier.verify(program_task(test_body), program)


def test_a_circuit_the_candidate_changes_in_place_changes_in_the_test(verifier):
    program = "def solve(qc):\n    qc.h(0)\n    qc.cx(0, 1)\n"
    test = (
        "    from qiskit import QuantumCircuit\n"
        "    qc = QuantumCircuit(2)\n"
        "    assert candidate(qc) is None\n"
        "    assert [i.operation.name for i in qc.data] == ['h', 'cx'], qc.data\n"
        "    qc.measure_all()  # the caller's circuit is still a working circuit\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_a_list_the_candidate_appends_to_is_the_tests_list_afterwards(verifier):
    program = "def solve(items):\n    items.append(len(items))\n"
    test = "    items = [7]\n    candidate(items)\n    assert items == [7, 1], items\n"
    assert verdict_of(verifier, test, program).passed


def test_results_are_rebuilt_as_the_library_classes_in_the_judge(verifier):
    program = (
        "from qiskit import QuantumCircuit\n"
        "from qiskit.quantum_info import Statevector\n"
        "class Mine(Statevector):\n"
        "    def equiv(self, other, *a, **k):\n"
        "        return True\n"
        "def solve():\n"
        "    qc = QuantumCircuit(1)\n"
        "    return Mine(qc), 1.5, [np_float()]\n"
        "def np_float():\n"
        "    import numpy\n"
        "    return numpy.float64(2.0)\n"
    )
    test = (
        "    import numpy\n"
        "    from qiskit.quantum_info import Statevector\n"
        "    state, number, values = candidate()\n"
        "    assert type(state) is Statevector, type(state)\n"
        "    assert not state.equiv(Statevector.from_label('1'))\n"
        "    assert type(number) is float and type(values[0]) is numpy.float64\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_an_object_that_stays_in_the_child_never_answers_a_comparison(verifier):
    program = (
        "class Anything:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    def __contains__(self, item):\n"
        "        return True\n"
        "    def value(self):\n"
        "        return 41\n"
        "def solve():\n"
        "    return Anything()\n"
    )
    equal = verdict_of(verifier, "    assert candidate() == 42\n", program)
    assert equal.outcome is Outcome.FAILED, equal.detail
    member = verdict_of(verifier, "    assert 42 in candidate()\n", program)
    assert not member.passed
    # Nor a named method: the candidate's own class would be vouching for itself.
    called = verdict_of(verifier, "    assert candidate().value() == 41\n", program)
    assert called.outcome is Outcome.ERROR, called.detail
    assert "AttributeError" in called.detail and "'value' was not read" in called.detail


def test_an_object_of_the_programs_own_class_still_gives_values(verifier):
    program = (
        "class Bag:\n"
        "    def __len__(self):\n"
        "        return 3\n"
        "    def __iter__(self):\n"
        "        return iter([1, 2, 3])\n"
        "    def __getitem__(self, i):\n"
        "        return [1, 2, 3][i]\n"
        "def solve():\n"
        "    return Bag(), (lambda x: x * 2)\n"
    )
    test = (
        "    bag, double = candidate()\n"
        "    assert len(bag) == 3 and list(bag) == [1, 2, 3] and bag[2] == 3\n"
        "    assert double(21) == 42\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_a_figure_stays_in_the_child_but_presents_its_class(verifier):
    program = (
        "import matplotlib.pyplot as plt\n"
        "def solve():\n"
        "    figure, axes = plt.subplots()\n"
        "    axes.bar(['a', 'b'], [1, 3])\n"
        "    return figure\n"
    )
    test = (
        "    from matplotlib.figure import Figure\n"
        "    figure = candidate()\n"
        "    assert isinstance(figure, Figure) and type(figure) == Figure\n"
        "    heights = [bar.get_height() for bar in figure.axes[0].patches]\n"
        "    assert heights == [1.0, 3.0], heights\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_an_exception_of_the_candidate_is_raised_as_its_class_in_the_test(verifier):
    program = (
        "from qiskit.exceptions import QiskitError\n"
        "def solve(kind):\n"
        "    if kind == 'value':\n"
        "        raise ValueError('negative')\n"
        "    raise QiskitError('no such gate')\n"
    )
    test = (
        "    from qiskit.exceptions import QiskitError\n"
        "    try:\n"
        "        candidate('value')\n"
        "    except ValueError as exc:\n"
        "        assert 'negative' in str(exc)\n"
        "    else:\n"
        "        raise AssertionError('no ValueError')\n"
        "    try:\n"
        "        candidate('qiskit')\n"
        "    except QiskitError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('no QiskitError')\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_an_uncaught_exception_of_the_candidate_is_named_as_it_was_raised(verifier):
    program = "class Oops(Exception):\n    pass\ndef solve():\n    raise Oops('mine')\n"
    verdict = verdict_of(verifier, "    candidate()\n", program)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.error_type == "Oops"
    assert "Oops: mine" in verdict.detail


def test_the_candidate_draws_from_the_generator_the_test_seeded(verifier):
    program = (
        "import numpy\nimport random\n"
        "def solve():\n    return numpy.random.rand(), random.random()\n"
    )
    test = (
        "    import numpy, random\n"
        "    numpy.random.seed(12345)\n"
        "    random.seed(7)\n"
        "    drawn = candidate()\n"
        "    numpy.random.seed(12345)\n"
        "    random.seed(7)\n"
        "    assert drawn == (numpy.random.rand(), random.random()), drawn\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_the_candidate_cannot_choose_what_the_test_draws_next(verifier):
    # In one process a candidate that seeds the global generator fixes the test's next draws
    # (here: a "random" input it already knows); across the boundary the state never comes back.
    program = "import numpy\ndef solve():\n    numpy.random.seed(0)\n    return 0\n"
    test = (
        "    import numpy\n"
        "    numpy.random.seed(99)\n"
        "    candidate()\n"
        "    numpy.random.seed(0)\n"
        "    known = numpy.random.rand()\n"
        "    numpy.random.seed(99)\n"
        "    expected = numpy.random.rand()\n"
        "    assert expected != known\n"
        "    numpy.random.seed(99)\n"
        "    candidate()\n"
        "    assert numpy.random.rand() == expected\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_unseeded_tests_draw_different_inputs_in_each_program(verifier):
    program = "def solve(x):\n    print(repr(x))\n    return x\n"
    test = "    import numpy\n    candidate(float(numpy.random.rand()))\n"
    drawn = {verdict_of(verifier, test, program).output for _ in range(3)}
    assert len(drawn) == 3, drawn


def test_the_test_reads_the_files_the_candidate_wrote_at_their_paths(verifier):
    program = (
        "import os\n"
        "def solve():\n"
        "    with open('answer.txt', 'w') as handle:\n"
        "        handle.write('42')\n"
        "    return os.getcwd()\n"
    )
    test = (
        "    import os\n"
        "    where = candidate()\n"
        "    assert os.getcwd() == where, (os.getcwd(), where)\n"
        "    assert open('answer.txt').read() == '42'\n"
        "    assert open(os.path.join(where, 'answer.txt')).read() == '42'\n"
        "    try:\n"
        "        open('answer.txt', 'w')\n"
        "    except PermissionError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError('the judge could change the program file')\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_the_test_reads_what_the_candidates_code_refers_to_without_running_it(verifier):
    program = (
        "import os\n"
        "from qiskit.circuit.library import StatePreparation as Prepare\n"
        "os.makedirs('ran-at-import', exist_ok=True)\n"
        "def helper():\n"
        "    return Prepare\n"
        "def solve():\n"
        "    return helper()\n"
    )
    test = (
        "    import os\n"
        "    code = candidate.__code__\n"
        "    assert 'helper' in code.co_names\n"
        "    helper = candidate.__globals__['helper']\n"
        "    assert 'Prepare' in helper.__code__.co_names\n"
        "    assert candidate.__globals__['Prepare'].__name__ == 'StatePreparation'\n"
        "    assert os.path.isdir('ran-at-import')  # the child ran it once, the judge never\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_the_judge_is_out_of_the_childs_sight(verifier):
    # The child sees its own processes only, and none of them holds the test.
    program = (
        "import os\n"
        "def solve():\n"
        "    seen = []\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit():\n"
        "            try:\n"
        "                seen.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
        "            except OSError:\n"
        "                pass\n"
        "    return [line.decode(errors='replace') for line in seen]\n"
    )
    test = (
        "    lines = candidate()\n"
        "    assert lines, 'the child saw no process at all'\n"
        '    assert not any(\'"role": "judge"\' in line for line in lines), lines\n'
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail


def test_a_big_array_crosses_intact(verifier):
    program = (
        "import numpy\ndef solve(n):\n    return numpy.arange(n, dtype=numpy.complex128) * 1j\n"
    )
    test = (
        "    import numpy\n"
        "    values = candidate(1 << 20)\n"
        "    assert type(values) is numpy.ndarray and values.dtype == numpy.complex128\n"
        "    assert values[-1] == (1 << 20) * 1j - 1j\n"
    )
    verdict = verdict_of(verifier, test, program)
    assert verdict.passed, verdict.detail
    assert np.isfinite(verdict.seconds)


def test_a_handle_never_passes_for_a_class_whose_objects_are_data():
    # The type names of a handle are the child's word. A child that rewrote its own encoder
    # could name any loaded class; only classes that can never be data are presented.
    import qiskit.quantum_info  # noqa: F401 - loaded, as in a test that imports it
    from qiskit.transpiler import StagedPassManager
    from qiskit.transpiler.passes import TrivialLayout

    from qsandbox_env.sandbox.judge import presented_class

    for names in (
        ("qiskit.quantum_info.states.statevector.Statevector",),
        ("qiskit.circuit.quantumcircuit.QuantumCircuit",),
        ("qiskit.quantum_info.operators.operator.Operator", "builtins.object"),
        ("program.Looks", "qiskit.quantum_info.operators.operator.Operator"),
        ("qiskit.transpiler.passmanager.Looks", "builtins.object"),
    ):
        assert presented_class(names) is None, names
    # A library class that cannot be data is presented as itself, or as the table's base.
    trivial = "qiskit.transpiler.passes.layout.trivial_layout.TrivialLayout"
    assert presented_class((trivial,)) is TrivialLayout
    staged = ("program.Looks", "qiskit.transpiler.passmanager.StagedPassManager")
    assert presented_class(staged) is StagedPassManager
