"""The pass@k benchmark harness behind ``qsandbox bench``.

- `agents.bench.passk`: the unbiased pass@k estimator.
- `agents.bench.config`: `BenchConfig` (what a run is), its tasks, `BenchError`.
- `agents.bench.rundir`: the run directory: logs, resume state, config.json, outputs.
- `agents.bench.runner`: generate with a policy, verify with the Verifier, resumable on disk;
  `agents.bench.lanes`: the threads that verify while generation goes on.
- `agents.bench.report`: outcome categories, ``summary.json``, ``report.md``, the chart.
- `agents.bench.cli`: the ``bench`` subcommand.

Completions run only through the Verifier (or a Verifier-compatible Ray pool); this package never
executes generated code itself. It takes its verifier from `agents.verifying`, as training does:
it never imports `agents.grpo`, and `agents.grpo` never imports it; `qsandbox_env` never imports it
either (the ``bench`` subcommand arrives through an entry point).
"""
