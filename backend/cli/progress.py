"""Progress bars for long commands (import, reindex)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(desc: str, unit: str = "photo") -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A progress bar on stderr whose total is known later: yields (update, set_total)."""
    with tqdm(unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True) as bar:

        def set_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        def update(n: int) -> None:
            bar.update(n)

        yield update, set_total
