"""GRPO training on the Verifier's reward: config, loss functions, trainer, CLI and demo.

- `agents.grpo.config`: `GRPOConfig`, every hyper-parameter (pure Python, no torch).
- `agents.grpo.losses`: the math as small pure tensor functions (advantages, clipped surrogate,
  k3 KL, the GRPO / Dr. GRPO / DAPO reductions).
- `agents.grpo.trainer`: `GRPOTrainer`, the loop; `agents.grpo.checkpoint`, `agents.grpo.metrics`.
- `agents.grpo.cli`: ``qsandbox train grpo``; `agents.grpo.demo`: the CPU learning demo.

Importing this package imports no torch: the CLI registers its subcommand cheaply.
"""

from __future__ import annotations

from agents.grpo.config import GRPOConfig

__all__ = ["GRPOConfig"]
