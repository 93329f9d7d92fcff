"""Tests for qsandbox_env.program: joining code to a prompt, and the program around it."""

from __future__ import annotations

import ast
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsandbox_env import Task
from qsandbox_env.program import FIT_LIMIT, assemble, join, strip_check_calls

TEST = "def check(c):\n    assert c(1) == 2\n"
# A Qiskit-HumanEval prompt: it stops right after the docstring's closing quotes.
HUMANEVAL_PROMPT = 'from math import sqrt\ndef f(x):\n    """ Add one.\n    """'
HUMANEVAL = Task("he/0", HUMANEVAL_PROMPT, TEST, "f")


def completion_task(prompt: str) -> Task:
    return Task("t/0", prompt, TEST, "f")


def body_of(source: str, name: str = "f") -> list[str]:
    """The statements of the last ``def name`` in ``source``, docstring left out, as AST dumps."""
    functions = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]
    body = functions[-1].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return [ast.dump(node) for node in body]


# -- assemble -------------------------------------------------------------------------------------


def test_completion_format_continues_the_prompt_then_the_test():
    task = Task("a/0", "def f(x):\n", "def check(c):\n    assert c(1) == 2\n", "f")
    program = assemble(task, "    return x + 1")
    assert program.source == "def f(x):\n    return x + 1\ndef check(c):\n    assert c(1) == 2\n"
    assert program.test_line == 3
    assert program.entry_point == "f"


def test_assemble_is_the_join_followed_by_the_test():
    program = assemble(HUMANEVAL, "return x + 1")
    head = join(HUMANEVAL, "return x + 1")
    assert program.source == head + "\n" + TEST
    assert program.source.splitlines()[program.test_line - 1] == "def check(c):"


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


# -- join: the joint ------------------------------------------------------------------------------


def test_a_body_without_its_first_newline_goes_on_the_line_after_the_docstring():
    assert join(HUMANEVAL, "    return x + 1\n") == HUMANEVAL_PROMPT + "\n    return x + 1\n"


def test_a_body_with_its_first_newline_is_joined_unchanged():
    assert join(HUMANEVAL, "\n    return x + 1\n") == HUMANEVAL_PROMPT + "\n    return x + 1\n"


def test_a_prompt_ending_in_indentation_lets_the_codes_first_line_set_its_own():
    task = completion_task('def f(x):\n    """Add one."""\n    ')
    assert join(task, "    return x + 1\n") == 'def f(x):\n    """Add one."""\n    return x + 1\n'
    assert join(task, "return x + 1\n") == 'def f(x):\n    """Add one."""\n    return x + 1\n'


def test_a_prompt_ending_in_a_comment_gets_its_line_break():
    task = completion_task('def f(x):\n    """Add one."""\n    # your code here')
    assert join(task, "    return x + 1").endswith("# your code here\n    return x + 1")


def test_crlf_prompts_and_bodies_join_and_compile():
    task = completion_task('def f(x):\r\n    """Add one."""')
    for body in ("    return x + 1\r\n", "return x + 1\r\n", "\r\n\treturn x + 1\r\n"):
        source = join(task, body)
        assert body_of(source) == body_of("def f(x):\n    return x + 1\n"), repr(source)


# -- join: a body that lost its indentation -------------------------------------------------------


def test_a_flush_left_body_gets_the_docstrings_indentation():
    task = completion_task('def f(x):\n  """Two-space prompt."""\n')
    assert join(task, "y = x + 1\nreturn y\n").endswith('"""\n  y = x + 1\n  return y\n')


def test_a_flush_left_body_without_return_is_indented_too():
    code = "with open(x) as file:\n    for line in file:\n        print(line)\n"
    source = join(HUMANEVAL, code)
    assert body_of(source) == body_of(
        "def f(x):\n" + "".join(f"    {line}\n" for line in code.splitlines())
    )


def test_a_first_line_that_lost_its_indentation_gets_the_next_lines_indentation():
    source = join(HUMANEVAL, "y = x\n    if y:\n        y += 1\n    return y\n")
    assert source.endswith('"""\n    y = x\n    if y:\n        y += 1\n    return y\n')


def test_a_flush_left_header_with_its_block_is_indented_as_a_whole():
    source = join(HUMANEVAL, "for q in range(x):\n    print(q)\n")
    assert source.endswith('"""\n    for q in range(x):\n        print(q)\n')


def test_tab_levels_become_four_spaces_each():
    source = join(HUMANEVAL, "\tif x:\n\t\treturn 2\n\treturn 1\n")
    assert source.endswith('"""\n    if x:\n        return 2\n    return 1\n')


def test_a_two_space_body_is_shifted_keeping_its_nesting():
    source = join(HUMANEVAL, "\n  if x:\n    return 2\n  return 1\n")
    assert source.endswith('"""\n    if x:\n      return 2\n    return 1\n')


def test_lines_inside_a_string_keep_their_whitespace():
    source = join(HUMANEVAL, 'text = """a\n  b\nc"""\nreturn text\n')
    namespace: dict = {}
    exec(compile(source, "<join>", "exec"), namespace)  # trusted test code
    assert namespace["f"](0) == "a\n  b\nc"


def test_bracket_continuations_and_comments_move_with_the_body():
    code = "y = max(x,\n        1)  # at least one\n# done\nreturn y\n"
    namespace: dict = {}
    exec(compile(join(HUMANEVAL, code), "<join>", "exec"), namespace)  # trusted test code
    assert namespace["f"](0) == 1


def test_code_after_the_body_stays_at_module_level():
    code = '  return x + 1\n\nif __name__ == "__main__":\n  print(f(1))\n'
    source = join(HUMANEVAL, code)
    assert source.endswith('    return x + 1\n\nif __name__ == "__main__":\n  print(f(1))\n')


def test_indentation_mixing_tabs_and_spaces_is_left_for_python_to_judge():
    code = "\tif x:\n\t    return 2\n\t\treturn 1\n"
    source = join(HUMANEVAL, code)
    assert source == HUMANEVAL_PROMPT + "\n" + code
    with pytest.raises(TabError):
        compile(source, "<join>", "exec")


# -- join: whole functions, other prompts, other policies -----------------------------------------


def test_a_whole_function_follows_the_prompt_on_its_own_line():
    code = "import math\n\ndef f(x):\n    return x + 1\n"
    assert join(HUMANEVAL, code) == HUMANEVAL_PROMPT + "\n" + code


def test_a_prompt_stopping_at_its_signature_gets_a_stub_before_a_whole_function():
    task = completion_task("import math\ndef f(x):")
    code = "def f(x):\n    return x + 1\n"
    assert join(task, code) == "import math\ndef f(x):\n    ...\n" + code
    assert join(task, "return x + 1") == "import math\ndef f(x):\n    return x + 1"


def test_a_prompt_that_does_not_parse_is_joined_as_written():
    task = completion_task('def f(x):\n    """Unclosed docstring')
    assert join(task, "return x") == task.prompt + "return x"


def test_strict_joins_prompt_and_code_as_they_are():
    assert join(HUMANEVAL, "return x + 1", fit="strict") == HUMANEVAL_PROMPT + "return x + 1"
    assert assemble(HUMANEVAL, "return 1", fit="strict").source.startswith(
        HUMANEVAL_PROMPT + "return 1\n"
    )


def test_a_program_task_joins_to_its_code_alone():
    task = Task("p/0", "Write f.", "def check(c):\n    pass\n\ncheck(f)\n", "f", format="program")
    assert join(task, "x = 1") == join(task, "x = 1", fit="strict") == "x = 1"


def test_code_over_the_fit_limit_gets_the_joint_only_and_joins_quickly():
    code = "x = 1\n" * (FIT_LIMIT // 6 + 1)
    started = time.perf_counter()
    assert join(HUMANEVAL, code) == HUMANEVAL_PROMPT + "\n" + code
    assert time.perf_counter() - started < 5.0
    assert join(HUMANEVAL, code[: 6 * 1000]).endswith("\n    x = 1\n")


def test_an_unknown_fit_policy_is_a_value_error():
    with pytest.raises(ValueError, match=r"fit: expected one of fitted, strict, got 'loose'"):
        join(HUMANEVAL, "return 1", fit="loose")


# -- property: the join never makes or breaks code ------------------------------------------------

# Bodies as (level, statement) lines; each is valid Python as the body of f(a, b).
# fmt: off
BODIES = [
    [(0, "return a + b")],
    [(0, "total = 0"), (0, "for i in range(a):"), (1, "if i % 2:"), (2, "total += i"),
     (0, "return total + b")],
    [(0, "def helper(n):"), (1, '"""Twice n."""'), (1, "return 2 * n"), (0, ""),
     (0, "return helper(a) - b")],
    [(0, "values = [a,"), (3, "b]  # both"), (0, "# a comment at body level"),
     (0, "return sum(values)")],
    [(0, "text = '''first"), (-99, "  second'''"), (0, "return len(text) + a")],
    [(0, "with open(str(a)) as handle:"), (1, "handle.read()")],
    [(0, "if a:"), (1, "return b"), (0, "else:"), (1, "return a")],
]
# fmt: on
SYNTAX_ERRORS = ["x = = 1", "return (a", "else:", "def :", "a +"]
PROMPTS = [
    'import math\ndef f(a, b):\n{i}"""Add.\n{i}"""',
    'import math\ndef f(a, b):\n{i}"""Add."""\n',
    'def f(a, b):\n{i}"""Add."""\n\n',
    'def f(a, b):\n{i}"""Add."""\n{i}# your code here',
    'def f(a, b):\n{i}"""Add."""\n{i}',
    "import math\ndef f(a, b):",
    "import math\ndef f(a, b):\n",
]
_WHITESPACE = re.compile(r"\s+")


def render_body(lines, unit: str, base: int, eol: str, lost_first: bool) -> str:
    rendered = []
    for number, (level, text) in enumerate(lines):
        if level == -99:
            lead = ""  # a line inside a multi-line string keeps its own whitespace
        elif not text:
            lead = ""
        else:
            lead = unit * (base + level)
        if number == 0 and lost_first:
            lead = ""
        rendered.append(lead + text)
    return eol.join(rendered) + eol


def compiles(source: str) -> bool:
    try:
        compile(source, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


@st.composite
def answers(draw):
    lines = list(draw(st.sampled_from(BODIES)))
    broken = draw(st.booleans())
    if broken:
        # Anywhere but inside the multi-line string (there it would be the string's text).
        at = draw(
            st.sampled_from(
                [i for i in range(len(lines) + 1) if i == len(lines) or lines[i][0] != -99]
            )
        )
        lines.insert(at, (lines[at - 1][0] if at else 0, draw(st.sampled_from(SYNTAX_ERRORS))))
    unit = draw(st.sampled_from(["    ", "  ", "\t", "   ", "        "]))
    whole = draw(st.booleans())
    base = 1 if whole else draw(st.sampled_from([0, 1]))
    lost_first = not whole and base == 1 and draw(st.booleans())
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    body = render_body(lines, unit, base, eol, lost_first)
    code = f"def f(a, b):{eol}{body}" if whole else body
    blanks = draw(st.lists(st.sampled_from(["", "  ", "\t"]), max_size=2))
    code = "".join(blank + eol for blank in blanks) + code
    if draw(st.booleans()):
        code = code.rstrip("\r\n")
    reference = "def f(a, b):\n" + render_body(lines, "    ", 1, "\n", False)
    return code, reference, whole


@st.composite
def prompts(draw):
    indent = draw(st.sampled_from(["    ", "  ", "\t"]))
    prompt = draw(st.sampled_from(PROMPTS)).format(i=indent)
    return prompt.replace("\n", "\r\n") if draw(st.booleans()) else prompt


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=prompts(), answer=answers())
def test_the_join_compiles_exactly_when_the_models_code_does_and_changes_only_whitespace(
    prompt: str, answer: tuple[str, str, bool]
) -> None:
    code, reference, whole = answer
    task = Task("prop/0", prompt, "def check(candidate):\n    pass\n", "f")
    source = join(task, code)
    assert compiles(source) == compiles(reference), (prompt, code, source)
    if compiles(reference):
        assert body_of(source) == body_of(reference), (prompt, code, source)
    # Nothing but whitespace changes, save the stub body a signature-only prompt needs before
    # a whole function.
    stub = "..." if whole and prompt.rstrip().endswith(":") else ""
    assert squeeze(source) == squeeze(prompt) + stub + squeeze(code)


def squeeze(text: str) -> str:
    return _WHITESPACE.sub("", text)
