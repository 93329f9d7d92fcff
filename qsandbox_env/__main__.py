"""``python -m qsandbox_env``: the ``qsandbox`` command line (see `qsandbox_env.cli`).

This module only hands over to `qsandbox_env.cli.main`; it must never do work of its own.
"""

from __future__ import annotations

from qsandbox_env.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
