"""Progress bars, one policy: a line updating in place (a widget in JupyterLab); headless (``MTL_HEADLESS=1``,
``make run``), only the final line, on close (none for inner bars, ``leave=False``); ``TQDM_DISABLE=1``: none."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm as interactive_tqdm
from tqdm.std import tqdm as text_tqdm

HEADLESS_ENV = "MTL_HEADLESS"


class FinalLine(text_tqdm):
    """A text bar that stays silent while running and prints its final line on close (to stdout)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.update(delay=float("inf"), file=sys.stdout)
        super().__init__(*args, **kwargs)

    def display(self, *args, **kwargs) -> None:  # nothing while running
        pass

    def close(self) -> None:
        if not self.disable and self.leave:
            print(self.format_meter(**self.format_dict), file=sys.stdout, flush=True)
        self.leave = False  # the line is printed; tqdm must not print its own
        super().close()


def headless() -> bool:
    """True in a headless notebook run (``MTL_HEADLESS=1``)."""
    return os.environ.get(HEADLESS_ENV) == "1"


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, disable: bool = False,
             unit: str = "it", leave: bool = True):
    """A progress bar over ``iterable`` with the series' policy (see the module docstring)."""
    cls = FinalLine if headless() else interactive_tqdm
    return cls(iterable, desc=desc, total=total, disable=disable, unit=unit, leave=leave, mininterval=2.0)
