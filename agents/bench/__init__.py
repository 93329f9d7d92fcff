"""The pass@k benchmark harness behind ``qsandbox bench``.

- `agents.bench.passk`: the unbiased pass@k estimator.
- `agents.bench.runner`: generate with a policy, verify with the Verifier, resumable on disk.
- `agents.bench.report`: outcome categories, ``summary.json``, ``report.md``, the chart.
- `agents.bench.cli`: the ``bench`` subcommand.

Completions run only through the Verifier (or a Verifier-compatible Ray pool); this package never
executes generated code itself.
"""
