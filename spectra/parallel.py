"""Run one function over many items: serially, on a local process pool, or on a Dask cluster.

:func:`run_tasks` is the one entry point. It never raises for a failing item:
every item gets a :class:`TaskOutcome` holding either its result or its error
(exception type and a one-line message), in input order. Three executors:

* ``jobs=1``: a plain loop in this process (no pickling, easiest to debug);
* ``jobs=N > 1``: a local :class:`concurrent.futures.ProcessPoolExecutor` with
  ``N`` workers started by ``forkserver`` (fork is unsafe once torch or an
  OpenMP runtime has started threads). BLAS/OpenMP/torch run on one thread in
  each worker: the thread variables are set in the environment the workers are
  started from, so they are in force before the worker imports numpy or torch;
* ``scheduler="tcp://HOST:PORT"`` or a :class:`distributed.Client`: the tasks
  go to a Dask cluster (``client.map``; the optional extra
  ``rnn-spectra[distributed]``). Dask's nanny starts workers with
  ``OMP_NUM_THREADS=1`` (and MKL/OpenBLAS likewise) by default.

The function and the items must be picklable (a module-level function, plain
data) for the last two. As with any ``forkserver``/``spawn`` pool, a script
that calls :func:`run_tasks` with ``jobs > 1`` needs the
``if __name__ == "__main__":`` guard (the workers import the main module).
What is computed lives with the caller (:mod:`spectra.track` analyses
checkpoints).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from spectra.errors import InvalidArgumentError

__all__ = ["THREAD_VARS", "TaskOutcome", "default_jobs", "run_tasks", "split"]

#: Environment variables that cap the threads of BLAS/OpenMP runtimes; workers get "1".
THREAD_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one item.

    Attributes
    ----------
    index : int
        Position of the item in the input.
    value : object
        The function's return value (None when it failed).
    error_type : str or None
        Name of the exception class when the item failed, e.g. ``"CorruptFileError"``.
    error : str or None
        One-line message of that exception.
    seconds : float
        Wall time of the call where it ran (worker side; 0 when the worker died).
    """

    index: int
    value: Any = None
    error_type: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the item succeeded."""
        return self.error_type is None


def default_jobs() -> int:
    """Number of CPU cores this process may use (``os.sched_getaffinity``, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Undo a small glibc trim threshold in this process (once; no-op off glibc).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
    hands every freed block above 64 KiB back to the kernel; the analysis frees
    and re-allocates such blocks (numpy temporaries) thousands of times a
    second, and the page faults made it 1.5x slower in a Dask worker (measured:
    0.77 s locally, 1.15-1.27 s with that setting, same process otherwise).
    ``mallopt`` raises the trim threshold to 128 MiB and the mmap threshold
    (which a fixed trim threshold stops glibc from adapting) to 32 MiB.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    # only where a small threshold was imposed (Dask's nanny): elsewhere glibc's adaptive
    # defaults are already right, and a library should not change the caller's allocator
    try:
        imposed = int(os.environ.get("MALLOC_TRIM_THRESHOLD_", "")) < 32 * 1024 * 1024
    except ValueError:
        imposed = False
    if not (imposed and sys.platform.startswith("linux")):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 128 * 1024 * 1024)  # M_TRIM_THRESHOLD
        # a fixed trim threshold also freezes the mmap threshold at 128 KiB (glibc stops
        # adapting it), so every large temporary would be a fresh mmap: raise it to the max
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _call(fn: Callable[[Any], Any], index: int, item: Any) -> TaskOutcome:
    """Run ``fn(item)`` and wrap the result or the exception (runs in the worker)."""
    _keep_freed_memory()
    t0 = time.perf_counter()
    try:
        value = fn(item)
    except Exception as exc:  # noqa: BLE001 - every failure becomes this item's outcome
        return TaskOutcome(index, None, type(exc).__name__, _one_line(exc), seconds=time.perf_counter() - t0)
    return TaskOutcome(index, value, seconds=time.perf_counter() - t0)


def _init_worker() -> None:
    """Pool initializer: one thread for BLAS/OpenMP (already in the env) and for torch."""
    for v in THREAD_VARS:
        os.environ[v] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:  # pragma: no cover - only when the worker inherited torch
        torch.set_num_threads(1)


@contextlib.contextmanager
def _single_thread_env() -> Iterator[None]:
    """Set every :data:`THREAD_VARS` to "1" while workers start; restore afterwards."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    try:
        for v in THREAD_VARS:
            os.environ[v] = "1"
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


def _died(index: int, exc: BaseException) -> TaskOutcome:
    return TaskOutcome(index, None, type(exc).__name__, f"worker failed: {_one_line(exc)}")


def _run_serial(fn, items, progress) -> list[TaskOutcome]:
    out = []
    for i, item in enumerate(items):
        out.append(_call(fn, i, item))
        if progress is not None:
            progress(i + 1, len(items))
    return out


def _run_pool(fn, items, jobs: int, progress) -> list[TaskOutcome]:
    import multiprocessing as mp

    outcomes: list[TaskOutcome | None] = [None] * len(items)
    ctx = mp.get_context("forkserver")
    with _single_thread_env():
        pool = cf.ProcessPoolExecutor(
            max_workers=min(jobs, len(items)), mp_context=ctx, initializer=_init_worker
        )
        try:
            futures = {pool.submit(_call, fn, i, item): i for i, item in enumerate(items)}
            for done, fut in enumerate(cf.as_completed(futures), start=1):
                i = futures[fut]
                try:
                    outcomes[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool, unpicklable result
                    outcomes[i] = _died(i, exc)
                if progress is not None:
                    progress(done, len(items))
        except BaseException:  # Ctrl-C: drop the queued items instead of waiting for them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return outcomes  # type: ignore[return-value]


#: wall-clock seconds to wait for a scheduler's handshake (Client's own 20 s timeout covers the
#: TCP connect, not a peer that accepts and then says nothing: that hung for minutes)
_CONNECT_WALL_S = 40.0


def _connect(Client, scheduler: str):
    """``Client(scheduler)``, or InvalidArgumentError when it is not a Dask scheduler that answers.

    A service that is not Dask can send bytes that Dask reads as a frame length (an exabyte:
    MemoryError), or send nothing at all; the connection runs in a daemon thread with a
    wall-clock limit so a silent peer cannot hang the command.
    """
    import threading

    box: dict = {}
    lock = threading.Lock()

    def connect() -> None:
        try:
            client = Client(scheduler, timeout="20s")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["exc"] = exc
            return
        with lock:
            box["client"] = client
            late = box.get("abandoned", False)
        if late:  # answered after the caller gave up: nobody will use or close it
            client.close()

    t = threading.Thread(target=connect, name="spectra-dask-connect", daemon=True)
    t.start()
    t.join(_CONNECT_WALL_S)
    with lock:
        box["abandoned"] = "client" not in box and t.is_alive()
    if box["abandoned"]:
        raise InvalidArgumentError(
            f"scheduler: no answer from {scheduler} within {_CONNECT_WALL_S:g} s; is it a Dask scheduler?"
        )
    exc = box.get("exc")
    if isinstance(exc, MemoryError):
        raise InvalidArgumentError(
            f"scheduler: {scheduler} does not speak Dask's protocol (its reply read as an absurd size)"
        ) from None
    if isinstance(exc, (OSError, TimeoutError, ValueError)):  # ValueError: a malformed address
        raise InvalidArgumentError(f"scheduler: cannot connect to {scheduler} ({_one_line(exc)})") from None
    if exc is not None:
        raise exc
    return box["client"]


def _run_dask(fn, items, scheduler, progress) -> list[TaskOutcome]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InvalidArgumentError(
            "scheduler: Dask is not installed; install the extra: pip install 'rnn-spectra[distributed]'"
        ) from None
    own = not isinstance(scheduler, Client)
    if own:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise InvalidArgumentError(
                f"scheduler: {scheduler!r}; expected an address such as 'tcp://HOST:PORT' "
                "or a distributed.Client"
            )
        client = _connect(Client, scheduler)
    else:
        client = scheduler
    outcomes: list[TaskOutcome | None] = [None] * len(items)
    try:
        futures = client.map(_call, [fn] * len(items), range(len(items)), items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                i = index[fut.key]
                try:
                    outcomes[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError, ...
                    outcomes[i] = _died(i, exc)
                if progress is not None:
                    progress(done, len(items))
        except BaseException:  # Ctrl-C: release the cluster's queued tasks
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()
    return outcomes  # type: ignore[return-value]


def run_tasks(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    jobs: int | None = None,
    scheduler: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[TaskOutcome]:
    """Apply `fn` to every item, in parallel, capturing each item's error.

    Parameters
    ----------
    fn : callable
        ``fn(item) -> value``. For ``jobs > 1`` or a `scheduler`, a picklable
        module-level function, and `items` and the values picklable too.
    items : iterable
        The inputs.
    jobs : int, optional
        Local worker processes; ``1`` runs in this process. Default
        :func:`default_jobs` (the usable cores). Ignored with `scheduler`.
    scheduler : str or distributed.Client, optional
        ``"tcp://HOST:PORT"`` of a running Dask scheduler, or a connected
        client (left open). A client made from an address is closed afterwards.
    progress : callable, optional
        ``progress(done, total)`` after each finished item (in completion order).

    Returns
    -------
    list of TaskOutcome
        One per item, in input order. A failing item never stops the others.
        A worker process that dies (killed, out of memory) rather than
        raising fails the items the local pool still held (``BrokenProcessPool``);
        Dask reschedules them and reports ``KilledWorker`` after repeated deaths.

    Raises
    ------
    InvalidArgumentError
        `jobs` below 1, Dask missing, or the scheduler cannot be reached.

    Examples
    --------
    >>> [o.value for o in run_tasks(abs, [-1, 2], jobs=1)]
    [1, 2]
    >>> run_tasks(int, ["x"], jobs=1)[0].error_type
    'ValueError'
    """
    items = list(items)
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise InvalidArgumentError(f"jobs: {jobs!r}; expected a positive integer (1 runs serially)")
    if not items:
        return []
    if scheduler is not None:
        return _run_dask(fn, items, scheduler, progress)
    n = default_jobs() if jobs is None else jobs
    if n == 1 or len(items) == 1:
        return _run_serial(fn, items, progress)
    return _run_pool(fn, items, n, progress)


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Split `items` into at most `parts` contiguous, nearly equal chunks (for batching many tiny tasks).

    Examples
    --------
    >>> split([1, 2, 3, 4, 5], 2)
    [[1, 2, 3], [4, 5]]
    """
    if parts < 1:
        raise InvalidArgumentError(f"parts: {parts!r}; expected a positive integer")
    n = len(items)
    parts = min(parts, n) or 1
    q, r = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + q + (1 if k < r else 0)
        out.append(list(items[start:stop]))
        start = stop
    return out if n else []
