"""How fast does a PyTorch state_dict load, in a fresh process?

Writes a 2-layer ``nn.LSTM(256, 256)`` state_dict (``.pt``, zip format) to a
temporary directory, then times, each in a new Python process from start to
exit (the way a CLI user pays for it):

* ``python -c pass``                  the interpreter alone (baseline)
* ``import spectra``
* ``spectra.load(path)``              the torch-free reader
* ``import torch; torch.load(path)``  for comparison

Each child prints whether ``torch`` ended up in ``sys.modules``. Add a case by
appending a :class:`Case` to :data:`CASES` (the child code gets ``PATH``, the
file its ``fixture`` names); add a fixture by registering a maker in
:data:`FIXTURES` (it writes the file in a child process and returns its path).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/load_speed.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    label: str
    code: str  # run with `python -c`; PATH holds the fixture path; must print True/False (torch imported)
    fixture: str = "lstm256"


TORCH_FLAG = "print('torch' in sys.modules)"

CASES: list[Case] = [
    Case("python -c pass", f"import sys; {TORCH_FLAG}"),
    Case("import spectra", f"import sys, spectra; {TORCH_FLAG}"),
    Case(
        "spectra.load(.pt)",
        f"import sys, spectra; c = spectra.load(PATH); assert len(c) == 8; {TORCH_FLAG}",
    ),
    Case(
        "torch.load(.pt)",
        "import sys, torch; torch.set_num_threads(1); "
        f"sd = torch.load(PATH, weights_only=True); assert len(sd) == 8; {TORCH_FLAG}",
    ),
]


def make_lstm256(directory: Path) -> Path:
    """Write the 2-layer LSTM(256) state_dict with torch (in a child, to keep this process light)."""
    path = directory / "lstm256.pt"
    code = (
        "import sys, torch; torch.manual_seed(0); torch.set_num_threads(1); "
        "torch.save(torch.nn.LSTM(256, 256, num_layers=2).state_dict(), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    return path


#: fixture name -> maker(directory) -> path
FIXTURES: dict[str, Callable[[Path], Path]] = {"lstm256": make_lstm256}


def time_case(case: Case, path: Path, repeat: int) -> tuple[list[float], str]:
    """Wall times (s) of `repeat` fresh processes running the case, and the torch flag printed."""
    code = f"PATH = {str(path)!r}\n{case.code}"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    times, flag = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if out.returncode != 0:
            raise SystemExit(f"{case.label} failed:\n{out.stderr}")
        flag = out.stdout.strip().splitlines()[-1]
    return times, flag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="processes per case (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[str, Path] = {}
        for name in dict.fromkeys(c.fixture for c in CASES):
            paths[name] = FIXTURES[name](Path(tmp))
            print(f"fixture {name}: {paths[name].name}, {paths[name].stat().st_size / 2**20:.2f} MiB")
        print(f"{'case':<22} {'median s':>9} {'min s':>7} {'torch imported':>15}")
        results = {}
        for case in CASES:
            times, flag = time_case(case, paths[case.fixture], args.repeat)
            results[case.label] = statistics.median(times)
            print(f"{case.label:<22} {statistics.median(times):9.3f} {min(times):7.3f} {flag:>15}")
        ours, ref = results["spectra.load(.pt)"], results["torch.load(.pt)"]
        print(f"spectra.load is {ref / ours:.1f}x faster than torch.load end to end (medians)")


if __name__ == "__main__":
    main()
