"""Files written whole or not at all: a temporary file beside the target, then :func:`os.replace`.

Every failure of the file system (no such folder, a path through a regular file, no
permission, a read-only or pseudo file system, a full disk) becomes one
:class:`~spectra.errors.WriteError`, exit code 8 on the command line, and leaves no
temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from spectra.errors import WriteError


def default_mode() -> int:
    """File mode ``0o666 & ~umask``, the one a plain ``open()`` creates (mkstemp gives 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(
    out: str | os.PathLike, write: Callable[[str], None], *, force: bool = True, make_parents: bool = False
) -> None:
    """Run ``write(tmp)`` on a temporary file next to `out`, then move it onto `out`.

    Raises
    ------
    WriteError
        `out` exists and `force` is false, or the file system refused (the message says why).
    """
    out = os.fspath(out)
    if os.path.exists(out) and not force:
        raise WriteError(f"output {out!r} exists; pass --force to overwrite it")
    directory = os.path.dirname(os.path.abspath(out))
    tmp = None
    try:
        if make_parents:
            os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp", dir=directory)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, out)
    except OSError as exc:
        _unlink(tmp)
        if isinstance(exc, WriteError):
            raise
        raise WriteError(f"{out}: cannot write ({_reason(exc)})") from None
    except BaseException:
        _unlink(tmp)
        raise


def _reason(exc: OSError) -> str:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return f"{exc.strerror}: the folder it goes in does not exist or is not a folder"
    return exc.strerror or str(exc)


def _unlink(path: str | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
