"""QiskitCodeEnv under Gymnasium's own checker, vector wrappers and misuse."""

from __future__ import annotations

import functools
import json

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

from qsandbox_env import load_tasks
from qsandbox_env.env import QiskitCodeEnv, UnicodeText
from tests.conftest import humaneval_path

BUNDLED = load_tasks("bundled")
GHZ = BUNDLED["qsandbox/ghz_circuit"]


def hard_format_file(tmp_path):
    record = {
        "task_id": "hard/0",
        "prompt": "Write a function named `double` that returns twice its argument √.",
        "canonical_solution": "def double(x):\n    return 2 * x\n",
        "test": "import math\ndef check(candidate):\n    assert candidate(2) == 4\n\n"
        "check(double)\n",
        "entry_point": "double",
    }
    path = tmp_path / "hard.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "env_id", sorted(k for k in gymnasium.registry if k.startswith("qsandbox/"))
)
def test_every_registered_id_passes_the_gymnasium_checker(env_id, verifier, tmp_path):
    sources = {
        "qsandbox/QiskitCode-v0": "bundled",
        "qsandbox/QiskitHumanEval-v0": None,
        "qsandbox/QiskitHumanEvalHard-v0": hard_format_file(tmp_path),
    }
    source = sources[env_id] or str(humaneval_path())
    env = gymnasium.make(env_id, source=source, verifier=verifier)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_reset_is_deterministic_for_a_seed_and_reports_the_task(verifier):
    env = QiskitCodeEnv(verifier=verifier)
    first = [env.reset(seed=s)[1]["task_id"] for s in range(6)]
    again = [env.reset(seed=s)[1]["task_id"] for s in range(6)]
    assert first == again
    assert len(set(first)) > 1
    prompt, info = env.reset(options={"task_id": GHZ.task_id})
    assert prompt == GHZ.prompt
    assert info["entry_point"] == GHZ.entry_point and info["format"] == "completion"
    assert [m["role"] for m in info["messages"]] == ["system", "user"]
    assert GHZ.prompt in info["messages"][1]["content"]


def test_a_passing_answer_earns_reward_one_and_ends_the_episode(verifier):
    env = QiskitCodeEnv(verifier=verifier)
    env.reset(options={"task_id": GHZ.task_id})
    answer = f"```python\n{GHZ.prompt}{GHZ.canonical_solution}```"
    _, reward, terminated, truncated, info = env.step(answer)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["outcome"] == "passed" and info["passed"] is True
    assert "def " in info["code"]
    assert env.last_verdict is not None and env.last_verdict.seconds > 0


def test_repair_mode_feeds_back_the_failure_then_rewards_the_fix(verifier):
    env = QiskitCodeEnv(max_attempts=2, verifier=verifier)
    env.reset(options={"task_id": GHZ.task_id})
    observation, reward, terminated, _, info = env.step("    return None\n")
    assert (reward, terminated) == (0.0, False)
    assert observation.startswith("Your code did not pass (")
    assert info["attempt"] == 1
    observation, reward, terminated, _, info = env.step(GHZ.canonical_solution)
    assert (reward, terminated, info["attempt"]) == (1.0, True, 2)
    with pytest.raises(gymnasium.error.ResetNeeded, match="the episode has ended"):
        env.step(GHZ.canonical_solution)


def test_step_before_reset_is_the_gymnasium_error(verifier):
    with pytest.raises(gymnasium.error.ResetNeeded, match=r"before calling env\.reset"):
        QiskitCodeEnv(verifier=verifier).step("pass")


def test_non_string_action_is_a_type_error(verifier):
    env = QiskitCodeEnv(verifier=verifier)
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"action: expected str .*, got bytes$"):
        env.step(b"pass")


def test_chat_messages_as_an_action_point_at_the_helper_that_reads_them(verifier):
    from qsandbox_env.extract import completion_text

    env = QiskitCodeEnv(verifier=verifier, max_attempts=2)
    env.reset(options={"task_id": "qsandbox/ghz_circuit"})
    reply = [{"role": "assistant", "content": "```python\nprint('no answer')\n```"}]
    with pytest.raises(TypeError, match=r"got list; for chat messages.*completion_text"):
        env.step(reply)
    # The refusal cost no attempt, and the helper it names makes an action of the same messages.
    _, reward, terminated, _, step_info = env.step(completion_text(reply))
    assert step_info["attempt"] == 1 and not terminated
    assert reward == 0.0 and "print('no answer')" in step_info["code"]


def test_unknown_task_id_lists_close_matches(verifier):
    env = QiskitCodeEnv(verifier=verifier)
    with pytest.raises(ValueError, match=r"unknown task_id 'qsandbox/ghz_circuits'.*ghz_circuit"):
        env.reset(options={"task_id": "qsandbox/ghz_circuits"})


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="max_attempts: expected a positive int, got 0"):
        QiskitCodeEnv(max_attempts=0)
    with pytest.raises(FileNotFoundError, match="task file not found"):
        QiskitCodeEnv("no/such/file.jsonl")


def test_spaces_hold_real_unicode_prompts():
    space = UnicodeText()
    assert space.contains("Return ε-close states with √2 amplitudes")
    assert not space.contains(b"bytes")
    assert space.contains(space.sample())


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_vector_environments_run_episodes(vector):
    # "module:id" makes a spawned worker import the package (and so its registrations) first.
    make = functools.partial(gymnasium.make, "qsandbox_env:qsandbox/QiskitCode-v0", timeout=60)
    if vector == "sync":
        envs = gymnasium.vector.SyncVectorEnv([make, make])
    else:
        # Text observations travel by pipe: shared memory would fix every string's size.
        envs = gymnasium.vector.AsyncVectorEnv([make, make], context="spawn", shared_memory=False)
    try:
        observations, _ = envs.reset(seed=3, options={"task_id": GHZ.task_id})
        assert list(observations) == [GHZ.prompt, GHZ.prompt]
        _, rewards, terminated, _, _ = envs.step([GHZ.canonical_solution, "    return None\n"])
        assert list(rewards) == [1.0, 0.0]
        assert list(terminated) == [True, True]
    finally:
        envs.close()


def episode_rewards(env: QiskitCodeEnv, answers: dict[str, str]) -> dict[str, float]:
    """One single-turn episode per task id, answered with ``answers[task_id]``."""
    rewards = {}
    for task_id, answer in answers.items():
        env.reset(options={"task_id": task_id})
        _, reward, terminated, _, info = env.step(answer)
        assert terminated
        rewards[task_id] = reward if reward == 1.0 else info["outcome"]
    return rewards


def test_every_bundled_canonical_solution_earns_reward_one_through_the_env(verifier):
    env = QiskitCodeEnv("bundled", verifier=verifier)
    answers = {task_id: task.canonical_solution for task_id, task in BUNDLED.items()}
    rewards = episode_rewards(env, answers)
    assert len(rewards) == len(BUNDLED) >= 40
    assert {task_id: r for task_id, r in rewards.items() if r != 1.0} == {}


def test_two_hundred_procedural_canonical_solutions_earn_reward_one_through_the_env(verifier):
    tasks = load_tasks("procedural", n=200, seed=0)
    env = QiskitCodeEnv(tasks, verifier=verifier)
    rewards = episode_rewards(env, {tid: task.canonical_solution for tid, task in tasks.items()})
    families = {task_id.split("/")[1] for task_id in rewards}
    assert len(rewards) == 200 and len(families) >= 10
    assert {task_id: r for task_id, r in rewards.items() if r != 1.0} == {}
