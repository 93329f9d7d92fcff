from __future__ import annotations

from qsandbox_env import Task
from qsandbox_env.program import assemble, strip_check_calls


def test_completion_format_continues_the_prompt_then_the_test():
    task = Task("a/0", "def f(x):\n", "def check(c):\n    assert c(1) == 2\n", "f")
    program = assemble(task, "    return x + 1")
    assert program.source == "def f(x):\n    return x + 1\ndef check(c):\n    assert c(1) == 2\n"
    assert program.test_line == 3
    assert program.entry_point == "f"


def test_program_format_drops_the_prompt_and_the_tests_own_check_call():
    test = "import math\ndef check(c):\n    assert c() == 1\n\ncheck(f)\n"
    task = Task("b/0", "Write f.", test, "f", format="program")
    program = assemble(task, "def f():\n    return 1\n")
    assert "Write f." not in program.source
    assert program.source.splitlines()[program.test_line - 1] == "import math"
    assert "check(f)" not in program.source


def test_only_top_level_check_calls_are_blanked_and_lines_stay_in_place():
    test = "def check(c):\n    check_inner = 1\n    c()\ncheck(\n    f,\n)\nx = check\n"
    stripped = strip_check_calls(test)
    assert stripped.count("\n") == test.count("\n")
    assert "check_inner = 1" in stripped and "x = check" in stripped
    assert "check(\n" not in stripped


def test_a_test_that_does_not_parse_is_left_alone():
    assert strip_check_calls("check(f\n") == "check(f\n"
