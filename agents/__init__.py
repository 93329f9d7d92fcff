"""Policies that answer qsandbox tasks, and what trains and runs them at scale.

- `agents.policy`: the `Policy` interface and `make_policy` (``oracle``, ``hf:...``, ...).
- `agents.bench`: the pass@k benchmark runner behind ``qsandbox bench``.
- `agents.grpo`: GRPO training on the Verifier's reward (torch, transformers).
- `agents.trl_adapter`: the reward function and datasets for TRL's ``GRPOTrainer``.
- `agents.verifying`: the verifier protocol and `build_verifier`, shared by bench and grpo.
- `agents.ray`: Ray-parallel verification and rollout workers (`agents.rollout` re-exports it).

Importing this package is cheap: torch, transformers, trl and ray are imported by the modules that
need them, when they are used, with an error naming the extra to install when they are missing.
This package may import `qsandbox_env`; nothing in `qsandbox_env` may import it.
"""
