"""Old keyword names kept for one release: they still work, warn, and say the new name.

The names the code uses are the glossary's (docs/glossary.md). A keyword renamed to match it stays
accepted under its old name for one release through `renamed_keyword`, so code written against the
older name keeps running and is told what to change.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

T = TypeVar("T")


def renamed_keyword(
    owner: str, old: str, old_value: T | None, new: str, new_value: T | None, stacklevel: int = 3
) -> T | None:
    """The value of keyword ``new``, taking it from ``old`` (with a DeprecationWarning) if given.

    ``stacklevel`` points the warning at the user's call (3: the caller of the function that
    calls this one).

    Raises:
        TypeError: Both names were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(
            f"{owner}: give {new}= only ({old}= is its older name, for the same number)"
        )
    warnings.warn(
        f"{owner}({old}=...) is deprecated and will be removed in the next release; "
        f"write {owner}({new}=...)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value
