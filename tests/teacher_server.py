"""A localhost OpenAI-compatible teacher for the distillation tests: real HTTP, real threads.

`TeacherServer` answers ``POST /v1/chat/completions`` with what a `Script` says for the task it
finds in the last user message: a correct answer with its reasoning in ``<think>``, in
``reasoning_content`` or as prose; a wrong answer; one fixed when shown feedback; prose only.
Each reply reports token usage, as real servers do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qsandbox_env.tasks import Task

# kind -> (content, reasoning_content) for a task, given the number of earlier assistant turns.
Script = Callable[[Task, int], tuple[str, str]]


def fenced(code: str) -> str:
    return f"```python\n{code}```"


def solution(task: Task) -> str:
    return task.prompt + task.canonical_solution


def wrong(task: Task) -> str:
    return task.prompt + "    return None\n"


def reply_for(kind: str, task: Task, turn: int) -> tuple[str, str]:
    """The scripted reply of ``kind`` for ``task`` at ``turn`` (earlier assistant turns)."""
    if kind == "think":
        return f"<think>The {task.entry_point} state needs H then CX.</think>\n" + fenced(
            solution(task)
        ), ""
    if kind == "field":
        return fenced(solution(task)), f"Reasoning field: {task.entry_point} is a unitary."
    if kind == "prose":
        return f"First the physics of {task.entry_point}.\n\n" + fenced(solution(task)), ""
    if kind == "repair":
        if turn == 0:
            return "<think>A first guess.</think>\n" + fenced(wrong(task)), ""
        return "<think>The feedback says the result was wrong; fix it.</think>\n" + fenced(
            solution(task)
        ), ""
    if kind == "wrong":
        return "<think>Wrong physics.</think>\n" + fenced(wrong(task)), ""
    if kind == "no_code":
        return "I would rather explain the physics than write code.", ""
    raise ValueError(f"unknown kind {kind!r}")


class TeacherServer:
    """Serves the scripted teacher on 127.0.0.1 in a thread; ``url`` is its ``/v1`` root.

    Args:
        tasks: The tasks it may be asked about (found by their prompt in the user message).
        kinds: ``task_id -> kind`` (see `reply_for`).
    """

    def __init__(self, tasks: Any, kinds: dict[str, str]) -> None:
        self.tasks, self.kinds = list(tasks.values()), kinds
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                payload = json.dumps(server.answer(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
        messages = body["messages"]
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        task = next(t for t in self.tasks if t.prompt in first_user)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        content, reasoning = reply_for(self.kinds[task.task_id], task, turn)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = reasoning
        choices = [
            {"index": i, "message": message, "finish_reason": "stop"} for i in range(body["n"])
        ]
        usage = {"prompt_tokens": 100, "completion_tokens": 50 * body["n"], "total_tokens": 0}
        return {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> TeacherServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
