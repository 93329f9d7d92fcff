"""Starts a pool's template (or a zygote booted on its own) under its caller's import path.

Run as ``python -m qsandbox_env.sandbox.boot CONFIG``. The environment a zygote starts with is
scrubbed (its ``PYTHONPATH`` names this package only), so packages the caller reaches through its
own ``PYTHONPATH``, ``pip install --target`` or an HPC module system would be missing in the
sandbox. The caller sends its import path in the configuration (``"path"``) instead, and this
module, which imports the standard library only, puts it in place before anything imports numpy
or qiskit. The directories on it are bound back, read-only, when the zygote hides the rest of the
file system, as its own site-packages are.
"""

from __future__ import annotations

import json
import os
import sys


def adopt(paths: object) -> None:
    """Put the caller's directories on ``sys.path``, in its order, before the standard library.

    The caller's ``PYTHONPATH`` entries come before its site-packages in its own search order;
    inserting them ahead of this interpreter's library directories keeps that order here.
    """
    if not isinstance(paths, list):
        return
    extra = [
        p
        for p in dict.fromkeys(paths)
        if type(p) is str and os.path.isabs(p) and os.path.isdir(p) and p not in sys.path
    ]
    if not extra:
        return
    prefixes = tuple({sys.base_prefix, sys.prefix, sys.exec_prefix})
    at = next((i for i, p in enumerate(sys.path) if p.startswith(prefixes)), len(sys.path))
    sys.path[at:at] = extra


def main() -> None:
    adopt(json.loads(sys.argv[1]).get("path"))
    from qsandbox_env.sandbox import zygote

    zygote.main()


if __name__ == "__main__":
    main()
