"""Progress bars, one policy for the whole series.

In JupyterLab a bar is one widget line that updates in place; in a terminal, one line of text. Bars update at
most every few seconds, so an executed notebook keeps no stream of fragments, and ``TQDM_DISABLE=1`` (the
tests) switches them off everywhere.
"""
from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm

MININTERVAL = 5.0


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, disable: bool = False,
             unit: str = "it", leave: bool = True) -> tqdm:
    """A tqdm bar over ``iterable`` with the series' settings (see the module docstring)."""
    return tqdm(iterable, desc=desc, total=total, disable=disable, unit=unit, leave=leave, mininterval=MININTERVAL,
                dynamic_ncols=True)
