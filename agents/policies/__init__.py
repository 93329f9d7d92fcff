"""Built-in policies, one module each, built by `agents.policy.make_policy` from a spec.

- ``oracle`` (`agents.policies.oracle`): the tasks' canonical solutions.
- ``stale-api`` (`agents.policies.stale_api`): canonical solutions rewritten into removed Qiskit
  idioms, as a 2023-era model writes them.
- ``hf:<path-or-hub-id>`` (`agents.policies.hf`): a Hugging Face causal LM (torch, transformers).
- ``openai:<model>@<base-url>`` (`agents.policies.openai_api`): any OpenAI-compatible server.
"""
