"""spectra.parallel: serial, process-pool and Dask executors give the same outcomes, errors per item."""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import pytest

from spectra.errors import InvalidArgumentError, NonSquareError
from spectra.normality import henrici
from spectra.parallel import THREAD_VARS, default_jobs, run_tasks, split


def _matrices():
    rng = np.random.default_rng(7)
    mats = [rng.standard_normal((n, n)) for n in (3, 8, 12, 5, 20)]
    mats.insert(2, np.ones((2, 3)))  # not square: NonSquareError in the worker
    return mats


def _oracle(a):
    """dep_F from the eigenvalue formula (fine for these random, far from normal matrices)."""
    lam = np.linalg.eigvals(a)
    return math.sqrt(np.linalg.norm(a, "fro") ** 2 - np.sum(np.abs(lam) ** 2))


def test_serial_values_errors_and_order():
    mats = _matrices()
    calls = []
    out = run_tasks(henrici, mats, jobs=1, progress=lambda d, t: calls.append((d, t)))
    assert [o.index for o in out] == list(range(len(mats)))
    for a, o in zip(mats, out):
        if a.shape[0] != a.shape[1]:
            assert not o.ok and o.value is None
            assert o.error_type == NonSquareError.__name__
            assert "\n" not in o.error and "square" in o.error
        else:
            assert o.ok and o.error is None
            assert o.value == pytest.approx(_oracle(a), rel=1e-9)
            assert o.seconds >= 0
    assert calls == [(i, len(mats)) for i in range(1, len(mats) + 1)]


def test_process_pool_equals_serial_exactly():
    mats = _matrices()
    serial = run_tasks(henrici, mats, jobs=1)
    seen = []
    pooled = run_tasks(henrici, mats, jobs=2, progress=lambda d, t: seen.append(d))
    assert [(o.index, o.value, o.error_type, o.error) for o in pooled] == [
        (o.index, o.value, o.error_type, o.error) for o in serial
    ]
    assert sorted(seen) == list(range(1, len(mats) + 1))


def test_workers_run_blas_on_one_thread_and_parent_env_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    names = list(THREAD_VARS) * 2
    out = run_tasks(os.getenv, names, jobs=2)
    assert [o.value for o in out] == ["1"] * len(names)
    assert os.environ["OMP_NUM_THREADS"] == "4"
    assert "MKL_NUM_THREADS" not in os.environ


def test_worker_exception_types_are_captured_not_raised():
    out = run_tasks(math.sqrt, [4.0, -1.0, 9.0], jobs=2)
    assert [o.ok for o in out] == [True, False, True]
    assert out[0].value == 2.0 and out[2].value == 3.0
    assert out[1].error_type == "ValueError" and "math domain error" in out[1].error


def test_arguments():
    assert run_tasks(abs, [], jobs=3) == []
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="jobs"):
            run_tasks(abs, [1], jobs=bad)
    assert default_jobs() == len(os.sched_getaffinity(0))
    assert split(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split([1], 4) == [[1]]
    assert split([], 2) == []
    with pytest.raises(InvalidArgumentError):
        split([1], 0)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_local_cluster_equals_serial(dask_client):
    mats = _matrices()
    serial = run_tasks(henrici, mats, jobs=1)
    seen = []
    out = run_tasks(henrici, mats, scheduler=dask_client, progress=lambda d, t: seen.append(d))
    assert [(o.index, o.value, o.error_type, o.error) for o in out] == [
        (o.index, o.value, o.error_type, o.error) for o in serial
    ]
    assert sorted(seen) == list(range(1, len(mats) + 1))
    assert dask_client.status == "running"  # a client passed in is left open
    # both workers took part (each task reports the pid of its worker)
    pids = {o.value for o in run_tasks(_pid, range(40), scheduler=dask_client)}
    assert len(pids) == 2 and os.getpid() not in pids


def _pid(_):
    import time

    time.sleep(0.02)
    return os.getpid()


def test_dask_by_address_and_bad_scheduler(dask_client):
    addr = dask_client.scheduler.address
    assert addr.startswith("tcp://127.0.0.1:")
    out = run_tasks(math.sqrt, [1.0, -1.0], scheduler=addr)
    assert out[0].value == 1.0 and out[1].error_type == "ValueError"
    with pytest.raises(InvalidArgumentError, match="scheduler"):
        run_tasks(abs, [1], scheduler=42)


@pytest.mark.parametrize(
    "env, expect", [(None, []), ("65536", [(-1, 128 << 20), (-3, 32 << 20)]), ("1e9", [])]
)
def test_malloc_thresholds_reset_only_where_dask_imposed_a_small_one(monkeypatch, env, expect):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 (1.5x slower analyses); only then, and
    once per process, the worker raises glibc's trim and mmap thresholds with mallopt."""
    import ctypes
    import sys

    import spectra.parallel as par

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(par, "_MALLOC_TUNED", False)
    if env is None:
        monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    else:
        monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", env)
    par._keep_freed_memory()
    par._keep_freed_memory()  # once per process
    assert calls == expect


@pytest.mark.parametrize("reply", [b"", b"SSH-2.0-OpenSSH_9.6\r\n" * 8], ids=["silent", "banner"])
def test_a_scheduler_address_that_is_not_dask_is_a_one_line_error(monkeypatch, reply):
    # a peer that accepts and says nothing hung for minutes despite Client(timeout=20s); one that
    # sends a banner made Dask allocate an exabyte ("out of memory", exit 1)
    import socket
    import threading
    import time

    import spectra.parallel as par

    monkeypatch.setattr(par, "_CONNECT_WALL_S", 6.0, raising=False)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    conns = []

    def serve():
        srv.settimeout(15)
        with contextlib.suppress(OSError):
            while True:
                c, _ = srv.accept()
                conns.append(c)
                if reply:
                    c.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    t = time.monotonic()
    try:
        with pytest.raises(InvalidArgumentError, match="scheduler"):
            run_tasks(abs, [1], scheduler=f"tcp://127.0.0.1:{srv.getsockname()[1]}")
    finally:
        srv.close()
        for c in conns:
            c.close()
    assert time.monotonic() - t < 30
