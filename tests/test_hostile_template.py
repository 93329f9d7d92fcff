"""Attacks on the pool's template: one interpreter that preloads once and forks every zygote.

Every zygote of a Verifier (each worker's candidate zygote and judge zygote) is a fork of one
template (``qsandbox_env/sandbox/template.py``). Each test below runs a real attack through a
:class:`Verifier` and checks that it gets nothing: no descriptor of the template or of another
worker, no sight of the template's or a sibling's process, nothing left for another worker's
program or judge, tamper findings as before the snapshot moved into the template, random streams
of their own in every candidate and judge, and every program judged by its own task's test.

Each is written so that a naive template would fail it: an inherited socket, a shared directory,
no PID namespace, a snapshot missing from the fork, an RNG not reseeded after the fork, a judge
paired with another worker's candidate.
"""

from __future__ import annotations

import os
import secrets
import time

import pytest

from qsandbox_env import Outcome, Task, Verifier
from tests.conftest import program_task

VALUE_TASK = program_task("    assert candidate() == 42, 'expected 42'\n", entry_point="answer")
NOTHING_FOUND = program_task(
    "    found = candidate()\n    assert found == [], f'found {found!r}'\n", entry_point="answer"
)
ADD = Task(
    "add/0", "def add(a, b):\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add"
)


@pytest.fixture(scope="module")
def pool_verifier():
    with Verifier(2) as verifier:
        template = verifier._pool.template
        assert template is not None and template.usable(), "no template: nothing to attack"
        yield verifier


def _host_zygote_pids(verifier: Verifier) -> list[int]:
    """Every process of every zygote on the host: the launcher and the one inside its PID ns."""
    pids = []
    for handle in verifier._pool.handles:
        for process in (handle.candidate, handle.judge):
            launcher = process.proc.pid
            pids.append(launcher)
            try:
                with open(f"/proc/{launcher}/task/{launcher}/children") as children:
                    pids += [int(pid) for pid in children.read().split()]
            except OSError:
                pass
    return pids


def _inodes(pid: int) -> set[int]:
    """The inodes of the pipes and sockets a host process holds."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(("pipe:[", "socket:[")):
            found.add(int(target.split("[")[1].rstrip("]")))
    return found


# -- descriptors ------------------------------------------------------------------------------
# The program looks at every descriptor number up to 1024. Anything but stdin (/dev/null),
# its output pipe (1 and 2) and its own judge channel (3) is a find. On every socket found it
# also tries the template's protocol: a fork request with descriptors, as the pool sends it.
FD_HUNT = (
    "import os, socket, stat, json\n"
    "def answer():\n"
    "    found = []\n"
    "    for fd in range(1024):\n"
    "        try:\n"
    "            st = os.fstat(fd)\n"
    "        except OSError:\n"
    "            continue\n"
    "        try:\n"
    "            link = os.readlink(f'/proc/self/fd/{fd}')\n"
    "        except OSError:\n"
    "            link = '?'\n"
    "        inode = st.st_ino\n"
    "        if fd == 0 and link == '/dev/null':\n"
    "            continue\n"
    "        if fd in (1, 2, 3):\n"
    "            print('FD', fd, inode)\n"
    "            continue\n"
    "        found.append([fd, link])\n"
    "        if stat.S_ISSOCK(st.st_mode):\n"
    "            s = socket.socket(fileno=os.dup(fd))\n"
    "            try:\n"
    "                note = json.dumps({'role': 'candidate', 'uid': 0, 'nproc_base': 0}).encode()\n"
    "                r, w = os.pipe()\n"
    "                socket.send_fds(s, [note], [r, w, w])\n"
    "                found.append([fd, 'sent a fork request'])\n"
    "            except OSError as exc:\n"
    "                found.append([fd, str(exc)])\n"
    "            finally:\n"
    "                s.close()\n"
    "    # pidfds and sockets under other numbers than /proc shows (a dup above 1024)\n"
    "    for name in os.listdir('/proc/self/fd'):\n"
    "        if int(name) >= 1024:\n"
    "            found.append([int(name), 'high descriptor'])\n"
    "    return found\n"
)


def test_a_program_holds_no_descriptor_of_the_template_or_another_worker(pool_verifier):
    verdicts = pool_verifier.verify_many([(NOTHING_FOUND, FD_HUNT)] * 4)
    for verdict in verdicts:
        assert verdict.passed, verdict.detail  # the hunt came back empty
    # And what it did hold (its output pipe, its channel) is nobody else's: not the template's,
    # not a zygote's of either worker (a candidate zygote keeps the other end of neither).
    held = {int(line.split()[2]) for v in verdicts for line in v.output.splitlines()
            if line.startswith("FD ")}  # fmt: skip
    assert held, "the program printed its descriptors"
    template = _inodes(pool_verifier._pool.template.pid)
    assert template, "the template holds its socket"
    assert not held & template
    for pid in _host_zygote_pids(pool_verifier):
        try:
            assert not held & _inodes(pid), f"zygote {pid} holds a program's descriptor"
        except FileNotFoundError:
            pass
    assert pool_verifier._pool.template.usable()


def test_the_template_holds_nothing_of_a_zygote_after_forking_it(pool_verifier):
    # Its socket and the standard three only: no zygote's pipes, no pidfd, no pair socket.
    template = pool_verifier._pool.template.pid
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{template}/fd"))
    assert len(fds) == 4, {fd: os.readlink(f"/proc/{template}/fd/{fd}") for fd in fds}
    zygotes = set()
    for pid in _host_zygote_pids(pool_verifier):
        zygotes |= _inodes(pid)
    assert not _inodes(template) & zygotes


# -- processes --------------------------------------------------------------------------------
def test_the_template_and_other_zygotes_cannot_be_seen_or_signalled(pool_verifier):
    template = pool_verifier._pool.template
    targets = [template.pid, *_host_zygote_pids(pool_verifier)]
    code = (
        "import os, signal\n"
        f"TARGETS = {targets!r}\n"
        "def answer():\n"
        "    reached = []\n"
        "    for pid in TARGETS:\n"
        "        for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "            try:\n"
        "                os.kill(pid, sig)\n"
        "                reached.append([pid, int(sig)])\n"
        "            except OSError:\n"
        "                pass\n"
        "        try:\n"
        "            os.close(os.pidfd_open(pid))\n"
        "            reached.append([pid, 'pidfd'])\n"
        "        except OSError:\n"
        "            pass\n"
        "        if os.path.exists(f'/proc/{pid}'):\n"
        "            reached.append([pid, 'visible'])\n"
        "    # Everything this PID namespace shows: its zygote (1) and this program's processes.\n"
        "    others = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"
        "    for pid in others:\n"
        "        try:\n"
        "            name = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "        except OSError:\n"
        "            continue\n"
        "        if b'boot' in name and pid not in (1, os.getpid()):\n"
        "            reached.append([pid, 'another interpreter of the sandbox'])\n"
        "    try:\n"
        "        os.kill(os.getppid(), signal.SIGSTOP)\n"
        "        reached.append(['parent', 'stopped'])\n"
        "    except OSError:\n"
        "        pass\n"
        "    return reached\n"
    )
    verdicts = pool_verifier.verify_many([(NOTHING_FOUND, code)] * 2)
    assert all(v.passed for v in verdicts), [v.detail for v in verdicts]
    for pid in targets:
        with open(f"/proc/{pid}/status") as status:
            state = next(line for line in status if line.startswith("State:"))
        assert "T" not in state.split()[1], f"{pid} was stopped: {state}"
    assert template.usable()
    # The pool still forks and judges: the next programs are judged as usual.
    outcomes = [v.outcome for v in pool_verifier.verify_many([(ADD, "    return a + b\n")] * 4)]
    assert outcomes == [Outcome.PASSED] * 4


# -- files ------------------------------------------------------------------------------------
def _leave(token: str) -> str:
    """A program that writes ``token`` everywhere it can: home, caches, the work root, tmp."""
    return (
        "import os, sys\n"
        f"TOKEN = {token!r}\n"
        "def answer():\n"
        "    home = os.environ['HOME']\n"
        "    root = os.path.dirname(home)\n"
        "    places = [\n"
        "        os.path.join(home, 'left'),\n"
        "        os.path.join(home, '.cache', 'python-entrypoints', 'left'),\n"
        "        os.path.join(home, '.qiskit', 'left'),\n"
        "        os.path.join(os.environ['MPLCONFIGDIR'], 'left'),\n"
        "        os.path.join(os.environ['MPLCONFIGDIR'], 'matplotlibrc'),\n"
        "        os.path.join(root, 'left'),\n"
        "        os.path.join(root, '.cache', 'left'),\n"
        "        '/tmp/left', '/dev/shm/left', '/left',\n"
        "        os.path.join(os.environ['TMPDIR'], 'left'),\n"
        "    ] + [os.path.join(p, 'left.py') for p in sys.path if p.startswith('/')]\n"
        "    for path in places:\n"
        "        try:\n"
        "            os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "            with open(path, 'w') as fh:\n"
        "                fh.write(TOKEN)\n"
        "            os.chmod(path, 0o666)\n"
        "        except OSError:\n"
        "            pass\n"
        "    for d in (home, os.path.join(home, '.cache'), os.path.join(home, '.qiskit')):\n"
        "        try:\n"
        "            os.chmod(d, 0o777)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 42\n"
    )


# Looks for any file holding the token in every directory a program can name, both in the
# candidate's process and (through the test) in the judge's.
LOOK = (
    "import os\n"
    "def look(token):\n"
    "    found = []\n"
    "    starts = ['/tmp', '/dev/shm', '/', os.environ.get('HOME', '/'),\n"
    "              os.environ.get('MPLCONFIGDIR', '/')]\n"
    "    for start in starts:\n"
    "        for top, dirs, files in os.walk(start):\n"
    "            if top == '/':\n"
    "                dirs[:] = []  # the read-only root: only its files\n"
    "            for name in files:\n"
    "                path = os.path.join(top, name)\n"
    "                try:\n"
    "                    with open(path) as fh:\n"
    "                        if token in fh.read(200):\n"
    "                            found.append(path)\n"
    "                except (OSError, UnicodeDecodeError):\n"
    "                    pass\n"
    "    return found\n"
)


def test_nothing_a_program_leaves_reaches_another_program_or_judge(pool_verifier):
    token = secrets.token_hex(16)
    judge_looks = program_task(
        LOOK.replace("\n", "\n    ").replace("import os", "    import os", 1)
        + "\n    assert candidate() == [], 'the candidate found a leftover'\n"
        f"    assert look({token!r}) == [], 'the judge found a leftover'\n",
        entry_point="answer",
    )
    look_code = LOOK + f"def answer():\n    return look({token!r})\n"
    leave = program_task("    assert candidate() == 42\n", entry_point="answer")
    # Interleaved on 2 workers, 6 times: each worker's later programs and judges come after the
    # other worker's (and its own) leaving programs.
    pairs = [(leave, _leave(token)), (judge_looks, look_code)] * 6
    verdicts = pool_verifier.verify_many(pairs)
    assert [v.outcome for v in verdicts] == [Outcome.PASSED] * 12, [
        v.detail for v in verdicts if not v.passed
    ]
    # Nor did anything reach the host: the template's own work root (its home, caches).
    root = pool_verifier._pool.template.work_root
    for top, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(top, name), "rb") as fh:
                assert token.encode() not in fh.read(), os.path.join(top, name)
    assert not os.path.exists("/left") and not os.path.exists("/tmp/left")


def test_the_work_root_is_private_to_each_zygote_and_not_writable_above_home(pool_verifier):
    code = (
        "import os\n"
        "def answer():\n"
        "    home = os.environ['HOME']\n"
        "    root = os.path.dirname(home)\n"
        "    found = []\n"
        "    for where in (root, os.environ['MPLCONFIGDIR'], '/tmp', '/'):\n"
        "        try:\n"
        "            open(os.path.join(where, 'probe'), 'w').close()\n"
        "            found.append(where)\n"
        "        except OSError:\n"
        "            pass\n"
        "    if os.path.basename(root).startswith('qsandbox-work-') is False:\n"
        "        found.append('a fixed work root name: ' + root)\n"
        "    return found\n"
    )
    verdicts = pool_verifier.verify_many([(NOTHING_FOUND, code)] * 2)
    assert all(v.passed for v in verdicts), [v.detail for v in verdicts]


# An honest answer must reduce the CX count at least as well as Qiskit's default transpile.
OPTIMIZE_TASK = program_task(
    "    from qiskit import QuantumCircuit, transpile\n"
    "    from qiskit.quantum_info import Operator\n"
    "    qc = QuantumCircuit(2)\n"
    "    for _ in range(3):\n"
    "        qc.cx(0, 1)\n"
    "    out = candidate(qc)\n"
    "    assert Operator(out).equiv(Operator(qc))\n"
    "    ref = transpile(qc, basis_gates=['cx', 'u'])\n"
    "    cx = out.count_ops().get('cx', 0)\n"
    "    assert cx <= ref.count_ops().get('cx', 0), 'not optimized'\n",
    entry_point="optimize",
)


def test_a_candidates_qiskit_settings_do_not_change_the_judges_transpile(pool_verifier):
    # The judge runs in the candidate's filesystem; its $HOME used to be the candidate's home,
    # so ~/.qiskit/settings.conf written by the program set the judge's transpile() defaults.
    lazy = "def optimize(qc):\n    return qc\n"  # three CX gates, where one is enough
    assert pool_verifier.verify(OPTIMIZE_TASK, lazy).outcome is Outcome.FAILED
    poison = (
        "import os\n"
        "home = os.environ['HOME']\n"
        "os.makedirs(os.path.join(home, '.qiskit'), exist_ok=True)\n"
        "with open(os.path.join(home, '.qiskit', 'settings.conf'), 'w') as fh:\n"
        "    fh.write('[default]\\ntranspile_optimization_level = 0\\n')\n"
        "for path in (home, os.path.join(home, '.qiskit'),\n"
        "             os.path.join(home, '.qiskit', 'settings.conf')):\n"
        "    os.chmod(path, 0o755)\n" + lazy
    )
    verdict = pool_verifier.verify(OPTIMIZE_TASK, poison)
    assert not verdict.passed, "the program's settings.conf rigged the judge's reference"
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)


def test_a_candidates_entry_point_cache_does_not_change_the_judges_transpile(pool_verifier):
    # stevedore (Qiskit's transpiler plugins) fixed its cache directory under $HOME when the
    # template imported it: the same path is the program's home, and the judge's (see the hole
    # above). The program rewrites the cache so the init and optimization stages do nothing, and
    # proves in its own process that the poisoned cache works. The judge is safe only because
    # it answers from stevedore's in-memory caches (filled while the template warmed up) for its
    # unchanged sys.path: a test that changes sys.path before it transpiles would read the file.
    code = (
        "import os, sys, json\n"
        "import stevedore._cache as c\n"
        "from qiskit import QuantumCircuit, transpile\n"
        "home = os.environ['HOME']\n"
        "data = json.loads(json.dumps(c._c._get_data_for_path(None)))\n"
        "digest, _ = c._hash_settings_for_path(tuple(sys.path))\n"
        "noop = 'qiskit.transpiler.preset_passmanagers.builtin_plugins:'\n"
        "noop += 'DefaultSchedulingPassManager'\n"
        "for g in ('qiskit.transpiler.init', 'qiskit.transpiler.optimization'):\n"
        "    data['groups'][g] = [['default', noop, g]]\n"
        "os.makedirs(c._c._dir, exist_ok=True)\n"
        "with open(os.path.join(c._c._dir, digest), 'w') as fh:\n"
        "    json.dump(data, fh)\n"
        "d = c._c._dir\n"
        "while d.startswith(home):\n"
        "    os.chmod(d, 0o755)\n"
        "    d = os.path.dirname(d)\n"
        "os.chmod(os.path.join(c._c._dir, digest), 0o644)\n"
        "c._c._internal.clear()\n"
        "from stevedore.extension import ExtensionManager\n"
        "ExtensionManager.ENTRY_POINT_CACHE.clear()\n"
        "qc = QuantumCircuit(2)\n"
        "for _ in range(3):\n"
        "    qc.cx(0, 1)\n"
        "print('POISON cx =', transpile(qc, basis_gates=['cx', 'u']).count_ops().get('cx'))\n"
        "def optimize(qc):\n"
        "    return qc\n"
    )
    verdict = pool_verifier.verify(OPTIMIZE_TASK, code)
    assert "POISON cx = 3" in verdict.output, verdict.output  # the poisoned cache works...
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)  # ...not here


# -- tamper findings with the snapshot taken in the template -----------------------------------
STATE_TASK = program_task(
    "    from qiskit.quantum_info import Statevector\n"
    "    from qiskit import QuantumCircuit\n"
    "    qc = candidate()\n"
    "    bell = QuantumCircuit(2)\n"
    "    bell.h(0)\n"
    "    bell.cx(0, 1)\n"
    "    assert Statevector(qc).equiv(Statevector(bell)), 'not a Bell state'\n",
    entry_point="make_bell",
)
WRONG_CIRCUIT = (
    "from qiskit import QuantumCircuit\ndef make_bell():\n    return QuantumCircuit(2)\n"
)
CLOSE_TASK = program_task(
    "    import numpy as np\n    assert np.allclose(candidate(), [0.5, 0.5]), 'expected halves'\n",
    entry_point="halves",
)


@pytest.mark.parametrize(
    ("task", "code", "named"),
    [
        (
            STATE_TASK,
            "from qiskit.quantum_info import Statevector\n"
            "Statevector.equiv = lambda self, other, *a, **k: True\n" + WRONG_CIRCUIT,
            "Statevector.equiv",
        ),
        (
            CLOSE_TASK,
            "import numpy\nnumpy.allclose = lambda *a, **k: True\n"
            "def halves():\n    return [0.0, 1.0]\n",
            "allclose",
        ),
        (
            STATE_TASK,
            "import sys, types\n"
            "fake = types.ModuleType('qiskit.quantum_info')\n"
            "sys.modules['qiskit.quantum_info'] = fake\n" + WRONG_CIRCUIT,
            "qiskit.quantum_info",
        ),
        (
            CLOSE_TASK,
            "import builtins\nbuiltins.abs = lambda x: 0\ndef halves():\n    return [0.0, 1.0]\n",
            "builtins.abs",
        ),
    ],
    ids=["Statevector.equiv", "numpy.allclose", "sys.modules", "builtins.abs"],
)
def test_tampering_is_still_found_with_the_templates_snapshot(pool_verifier, task, code, named):
    # Twice each, so that both workers' candidate zygotes (forks of one template) answer.
    for verdict in pool_verifier.verify_many([(task, code)] * 2):
        assert verdict.outcome is Outcome.TAMPERED, (verdict.outcome, verdict.detail)
        assert named in verdict.detail, verdict.detail


def test_an_untampered_program_is_not_flagged_on_any_worker(pool_verifier):
    code = "import numpy\ndef halves():\n    return list(numpy.array([0.5, 0.5]))\n"
    outcomes = [v.outcome for v in pool_verifier.verify_many([(CLOSE_TASK, code)] * 4)]
    assert outcomes == [Outcome.PASSED] * 4


# -- randomness -------------------------------------------------------------------------------
# The test draws a secret in the judge; the program draws "the same" in its own process and
# answers with it. Forks of one template that are not reseeded would draw equal numbers.
@pytest.mark.parametrize(
    "draw",
    [
        "__import__('random').getrandbits(64)",
        "int(__import__('numpy').random.randint(0, 2**62))",
        "int(__import__('numpy').random.default_rng().integers(0, 2**62))",
        "__import__('random').Random().getrandbits(64)",
        "int.from_bytes(__import__('os').urandom(8), 'little')",
    ],
    ids=["random", "numpy legacy", "numpy default_rng", "random.Random()", "urandom"],
)
def test_a_program_cannot_predict_the_judges_random_draws(pool_verifier, draw):
    task = program_task(
        f"    secret = {draw}\n    assert candidate() == secret, 'wrong guess'\n",
        entry_point="guess",
    )
    code = f"def guess():\n    return {draw}\n"
    for verdict in pool_verifier.verify_many([(task, code)] * 2):
        assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)


def test_candidates_of_different_workers_draw_different_numbers(pool_verifier):
    code = (
        "import random, numpy\n"
        "def answer():\n"
        "    print('DRAW', random.getrandbits(64), int(numpy.random.randint(0, 2**62)))\n"
        "    return 42\n"
    )
    verdicts = pool_verifier.verify_many([(VALUE_TASK, code)] * 4)
    draws = [line for v in verdicts for line in v.output.splitlines() if line.startswith("DRAW")]
    assert len(draws) == 4
    pieces = [piece for line in draws for piece in line.split()[1:]]
    assert len(set(pieces)) == len(pieces), draws


# -- pairing ----------------------------------------------------------------------------------
def _numbered(number: int) -> Task:
    return program_task(
        f"    assert candidate() == {number}, 'judged against another program'\n",
        entry_point="answer",
        task_id=f"pair/{number}",
    )


def test_each_program_is_judged_by_its_own_tasks_test_even_after_the_template_dies():
    with Verifier(2, preload=()) as verifier:
        pairs = [(_numbered(i), f"def answer():\n    return {i}\n") for i in range(8)]
        wrong = [(_numbered(i), f"def answer():\n    return {i + 1}\n") for i in range(4)]
        outcomes = [v.outcome for v in verifier.verify_many(pairs + wrong)]
        assert outcomes == [Outcome.PASSED] * 8 + [Outcome.FAILED] * 4
        # The template dies, then a zygote of each worker: replacements are booted on their own,
        # both zygotes of a pair from the same place (one hash seed), and still paired right.
        template = verifier._pool.template
        template.proc.kill()
        template.proc.wait(timeout=10)
        verifier._pool.handles[0].candidate.kill()
        verifier._pool.handles[1].judge.kill()
        # Sets of names iterate alike on both sides of a pair only with one hash seed.
        order = program_task(
            "    assert candidate() == list({'alpha', 'beta', 'gamma', 'delta', 'eps'})\n",
            entry_point="answer",
        )
        ordered = "def answer():\n    return list({'alpha', 'beta', 'gamma', 'delta', 'eps'})\n"
        outcomes = [v.outcome for v in verifier.verify_many(pairs + wrong + [(order, ordered)] * 4)]
        assert outcomes == [Outcome.PASSED] * 8 + [Outcome.FAILED] * 4 + [Outcome.PASSED] * 4


def test_a_program_that_kills_everything_it_can_see_leaves_the_pool_working(pool_verifier):
    code = (
        "import os, signal\n"
        "def answer():\n"
        "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "        try:\n"
        "            os.kill(-1, sig)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 41\n"
    )
    # kill(-1) reaches every process the program may signal: in its own PID namespace, as its
    # own uid, that is only its own processes (never the template, a zygote or a judge).
    verdict = pool_verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)
    template = pool_verifier._pool.template
    assert template.usable()
    time.sleep(0.2)
    outcomes = [v.outcome for v in pool_verifier.verify_many([(ADD, "    return a + b\n")] * 4)]
    assert outcomes == [Outcome.PASSED] * 4
    # Still forked from the template, not booted on their own.
    assert all(h.info.get("template") == template.pid for h in pool_verifier._pool.handles)
