"""Checkpoints of a GRPO run: trainable weights, optimizer state, step, RNG states, config.

A checkpoint is a directory ``<out>/checkpoints/step-000010/`` holding ``trainer_state.pt`` (what
resuming needs) and ``config.json`` (for people). Only trainable parameters are saved: with LoRA
that is the adapters, a few MB instead of the whole model; the frozen weights come from the model
the run was started with. Restoring the RNG states makes a resumed run sample exactly what an
uninterrupted run would have.

This module must never load a checkpoint into a model whose trainable parameters do not match:
a mismatch raises before anything is changed.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import torch

__all__ = ["latest", "load", "save", "step_directory"]

STATE_FILE = "trainer_state.pt"


def step_directory(out_dir: str, step: int) -> str:
    """Where the checkpoint of ``step`` goes under a run's output directory."""
    return os.path.join(out_dir, "checkpoints", f"step-{step:06d}")


def latest(out_dir: str) -> str | None:
    """The checkpoint with the highest step under ``out_dir``, or None when there is none."""
    folder = os.path.join(out_dir, "checkpoints")
    if not os.path.isdir(folder):
        return None
    found = sorted(
        name
        for name in os.listdir(folder)
        if name.startswith("step-") and os.path.isfile(os.path.join(folder, name, STATE_FILE))
    )
    return os.path.join(folder, found[-1]) if found else None


def save(directory: str, model: Any, optimizer: Any, step: int, config: Any) -> None:
    """Write the checkpoint of ``step`` to ``directory`` (created; a temporary file is renamed
    into place, so an interrupted save never leaves a half-written state file)."""
    os.makedirs(directory, exist_ok=True)
    state = {
        "step": step,
        "trainable": {
            name: param.detach().cpu().clone()
            for name, param in model.named_parameters()
            if param.requires_grad
        },
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(),
    }
    path = os.path.join(directory, STATE_FILE)
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump({"step": step, **config.to_dict()}, file, indent=2)


def load(directory: str, model: Any, optimizer: Any) -> int:
    """Restore weights, optimizer and RNG states from ``directory``; return the saved step.

    Raises:
        FileNotFoundError: No checkpoint in ``directory``.
        ValueError: Its trainable parameters are not the model's (another model, or LoRA on one
            side only).
    """
    path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {directory}: expected {STATE_FILE} there")
    state = torch.load(path, map_location="cpu", weights_only=False)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    _check_same_parameters(directory, state["trainable"], params)
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"])
    return int(state["step"])


def _check_same_parameters(directory: str, saved: dict[str, Any], params: dict[str, Any]) -> None:
    if set(saved) != set(params):
        missing = sorted(set(params) - set(saved))[:3]
        extra = sorted(set(saved) - set(params))[:3]
        raise ValueError(
            f"checkpoint {directory}: expected the model's trainable parameters, got a different "
            f"set (missing {missing}, unexpected {extra}); resume with the model and LoRA setting "
            "the run started with"
        )
    for name, value in saved.items():
        if tuple(value.shape) != tuple(params[name].shape):
            raise ValueError(
                f"checkpoint {directory}: expected {name} of shape {tuple(params[name].shape)}, "
                f"got {tuple(value.shape)}"
            )


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
