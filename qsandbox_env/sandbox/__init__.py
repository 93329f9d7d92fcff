"""The sandbox: where untrusted programs and the tests that judge them run, in separate processes.

`pool` is the parent's side (in the Verifier's process): it starts zygotes and feeds them programs.
Everything else runs in the zygotes and their forked children, under the sandbox's interpreter,
which may be an execution profile's with another Qiskit and nothing of this project installed:
`zygote` (warm interpreter, one isolated child per program), `isolation` (namespaces, read-only
filesystem, limits), `child` and `judge` (the candidate's and the test's sides), `codec` and `wire`
(values and frames between them), `guard` (tamper findings), `offline_runtime`, `qpu_proxy`,
`qpu_codec` and `relay` (Qiskit Runtime without credentials), `warmup` and `protocol`.

This package must never import the rest of ``qsandbox_env`` (tasks, the Verifier, the broker, the
command line, the environment) or ``agents``: only the standard library, the scientific stack a
program may use (NumPy, SciPy, Qiskit and friends), its own modules and :mod:`qsandbox_env.targets`
(plain device names, no Qiskit at import), so that it runs wherever that stack does.
"""
