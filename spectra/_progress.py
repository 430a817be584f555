"""A tiny progress bar on stderr, shown only when stderr is a terminal.

Library code reports progress through a callable ``progress(done, total)``;
the CLI passes :func:`bar` (or nothing when ``--quiet``). No global state.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["Progress", "bar"]

Progress = Callable[[int, int], None]


def bar(label: str, *, stream=None, force: bool = False) -> Progress | None:
    """Return a ``progress(done, total)`` callback drawing a bar on `stream`.

    Returns None when `stream` (default ``sys.stderr``) is not a terminal and
    `force` is false, so callers can pass the result straight to the library.
    """
    stream = stream or sys.stderr
    if not force and not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    start = time.monotonic()

    def progress(done: int, total: int) -> None:
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        width = 30
        filled = int(round(frac * width))
        elapsed = time.monotonic() - start
        eta = "" if frac <= 0 or frac >= 1 else f" eta {elapsed * (1 - frac) / frac:5.1f}s"
        stream.write(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {elapsed:5.1f}s{eta}"
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return progress
