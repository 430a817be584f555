"""Benchmark of ``spectra track`` (issue 8): serial vs a local process pool vs a Dask LocalCluster.

Makes COUNT synthetic checkpoints of a 2-layer LSTM(128) in a temporary
folder (a random walk of the weights across "epochs", saved with
``torch.save`` plus a JSON sidecar; not timed), then analyses all of them
with a pseudospectra grid per matrix (``--grid``, default 60x60) three ways:

* serial (``jobs=1``),
* ``jobs=2`` (local ``ProcessPoolExecutor``; its start-up is timed in),
* a 2-worker ``distributed.LocalCluster`` (started before the clock, once; its
  start-up is printed separately), its workers' statistical profiler off
  (``--dask-profile on|both`` to measure what it costs: 0-10% per analysis,
  about 5% on average in interleaved runs; nothing in one 200-checkpoint run).

The checkpoints are split into ``--rounds`` slices (default 5) and every mode
runs on each slice in turn, so that the machine's drift over minutes falls on
all modes alike (one block per mode put 20-26% of drift on whichever mode ran
in a slow spell). Prints wall times (summed over the rounds), speed-up against
serial and parallel efficiency, and the overhead per checkpoint (everything but the analysis: loading, process
start, task transfer, idle workers) as a share of the analysis time:
``(wall * workers - sum(analysis)) / sum(analysis)``, with the loading share
``sum(load) / sum(analysis)`` on its own. The cache is off. Checks that the
three give identical rows.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/track.py                # 200 checkpoints
    OMP_NUM_THREADS=1 python benchmarks/track.py --count 40     # shorter
    python benchmarks/track.py --count 40 --full                # + d_inst, Kreiss, transient peak
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")


def make_run(folder: str, count: int, hidden: int, layers: int, seed: int = 0, rounds: int = 1) -> list[str]:
    """Write the checkpoints; with `rounds` > 1 in that many sub-folders (consecutive epochs)."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.LSTM(hidden, hidden, num_layers=layers)
    state = {f"lstm.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    folders = [folder] if rounds == 1 else [os.path.join(folder, f"round_{r}") for r in range(rounds)]
    for f in folders:
        os.makedirs(f, exist_ok=True)
    for epoch in range(1, count + 1):
        for k, v in state.items():
            state[k] = v + 0.002 * torch.randn(v.shape, generator=g)
        folder = folders[(epoch - 1) * rounds // count]
        path = os.path.join(folder, f"epoch_{epoch:03d}.pt")
        torch.save(state, path)
        with open(os.path.join(folder, f"epoch_{epoch:03d}.json"), "w") as f:
            json.dump({"epoch": epoch, "regime": "synthetic", "task": "benchmark"}, f)
    return folders


def _noop(x):
    return x


def measure(label: str, fn, workers: int) -> dict:
    t0 = time.perf_counter()
    res = fn()
    wall = time.perf_counter() - t0
    assert not res.failures, [f.error for f in res.failures]
    analysis = sum(f.analysis_seconds for f in res.files)
    load = sum(f.load_seconds for f in res.files)
    cpu = sum(f.analysis_cpu_seconds for f in res.files)
    return {
        "label": label,
        "workers": workers,
        "wall": wall,
        "analysis": analysis,
        "load": load,
        "cpu": cpu,
        "overhead": (wall * workers - analysis) / analysis,
        "rows": res.rows,
        "files": len(res.files),
    }


def merge(parts: list[dict]) -> dict:
    """One mode's figures summed over the rounds (rows in round order)."""
    out = dict(parts[0])
    for key in ("wall", "analysis", "load", "cpu", "files"):
        out[key] = sum(p[key] for p in parts)
    out["rows"] = [row for p in parts for row in p["rows"]]
    out["overhead"] = (out["wall"] * out["workers"] - out["analysis"]) / out["analysis"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="checkpoints (default 200)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--grid", type=int, default=60, help="pseudospectra grid points per side (default 60)")
    ap.add_argument("--jobs", type=int, default=2, help="local workers and Dask workers (default 2)")
    ap.add_argument("--full", action="store_true", help="also d_inst, Kreiss constant, transient peak")
    ap.add_argument("--no-dask", action="store_true", help="skip the LocalCluster run")
    ap.add_argument(
        "--dask-profile",
        choices=("off", "on", "both"),
        default="off",
        help="the Dask workers' statistical profiler (default off, as the README advises; "
        "'both' runs the cluster twice to show its cost)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="split the checkpoints into this many rounds and run every mode on each round in turn "
        "(default 5; this VM's speed drifts by 15-25%% over minutes: interleaving gives each mode "
        "the same share of slow and fast minutes); the figures are the sums",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)

    from spectra.parallel import default_jobs, run_tasks
    from spectra.track import track

    kw = dict(fast=not args.full, grid_npts=args.grid, cache=False)
    with tempfile.TemporaryDirectory(prefix="spectra-bench-track-") as d:
        t0 = time.perf_counter()
        rounds = max(1, min(args.rounds, args.count))
        folders = make_run(d, args.count, args.hidden, args.layers, rounds=rounds)
        gen = time.perf_counter() - t0
        size = sum(
            os.path.getsize(os.path.join(f, n)) for f in folders for n in os.listdir(f) if n.endswith(".pt")
        )
        print(
            f"{args.count} checkpoints of a {args.layers}-layer LSTM({args.hidden}) "
            f"({size / args.count / 1e6:.2f} MB each, made in {gen:.1f} s, not counted); "
            f"{'full' if args.full else 'fast'} figures + {args.grid}x{args.grid} grid per matrix; "
            f"{len(folders)} round(s); usable cores {default_jobs()}, "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        # process start: a pool of `jobs` workers running a no-op each
        t0 = time.perf_counter()
        run_tasks(_noop, range(args.jobs), jobs=args.jobs)
        start = time.perf_counter() - t0
        print(f"process pool start ({args.jobs} workers, forkserver, no-op tasks): {start:.2f} s", flush=True)

        modes = [
            ("serial", 1, lambda f: track([f], jobs=1, **kw)),
            (f"--jobs {args.jobs}", args.jobs, lambda f: track([f], jobs=args.jobs, **kw)),
        ]
        clusters = []
        cluster_start = None
        if not args.no_dask:
            import dask
            from distributed import Client, LocalCluster

            for profile in {"off": [False], "on": [True], "both": [False, True]}[args.dask_profile]:
                t0 = time.perf_counter()
                with dask.config.set({"distributed.worker.profile.enabled": profile}):
                    cluster = LocalCluster(
                        n_workers=args.jobs,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                    )
                client = Client(cluster)
                cluster_start = time.perf_counter() - t0
                clusters.append((client, cluster))
                label = f"LocalCluster({args.jobs})" + (", profiler" if profile else "")
                modes.append((label, args.jobs, lambda f, c=client: track([f], scheduler=c, **kw)))
                print(f"{label} started in {cluster_start:.1f} s (not timed)", flush=True)
        parts: dict[str, list[dict]] = {label: [] for label, _, _ in modes}
        try:
            for r, folder in enumerate(folders):
                for label, workers, run in modes:
                    parts[label].append(measure(label, lambda run=run, f=folder: run(f), workers))
                    wall = parts[label][-1]["wall"]
                    print(f"round {r + 1}/{len(folders)} {label}: {wall:.1f} s", flush=True)
        finally:
            for client, cluster in clusters:
                client.close()
                cluster.close()
        results = [merge(parts[label]) for label, _, _ in modes]

    serial = results[0]
    same = all(r["rows"] == serial["rows"] for r in results)
    print()
    head = ("mode", "wall s", "speed-up", "efficiency", "overhead", "load", "cpu/wall")
    widths = (-26, 8, 9, 10, 9, 6, 8)
    print(" ".join(f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(head, widths)) + "  per ckpt")
    for r in results:
        speed = serial["wall"] / r["wall"]
        per_wall, per_an = r["wall"] / r["files"] * 1000, r["analysis"] / r["files"] * 1000
        print(
            f"{r['label']:<26} {r['wall']:8.1f} {speed:8.2f}x {speed / r['workers']:10.0%} "
            f"{r['overhead']:9.1%} {r['load'] / r['analysis']:6.1%} {r['cpu'] / r['analysis']:8.0%}  "
            f"{per_wall:.0f} ms wall, {per_an:.0f} ms analysis"
        )
    print(
        "\noverhead = (wall x workers - sum of analysis wall time) / sum of analysis wall time "
        "(loading, process start, transfer, idle workers); load = sum of load time / sum of analysis time; "
        "cpu/wall = CPU time / wall time of the analyses (below 100%: the cores were shared)"
    )
    print(f"identical rows in every mode: {same}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "count": args.count,
                    "hidden": args.hidden,
                    "layers": args.layers,
                    "grid": args.grid,
                    "full": args.full,
                    "pool_start_seconds": start,
                    "cluster_start_seconds": cluster_start,
                    "load_average": os.getloadavg(),
                    "modes": [{k: v for k, v in r.items() if k != "rows"} for r in results],
                    "identical": same,
                },
                f,
                indent=2,
            )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
