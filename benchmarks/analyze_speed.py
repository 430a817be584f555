"""End-to-end speed of ``spectra analyze`` (process start to exit) and of ``import spectra``.

Builds, in a temporary directory, a 2-layer LSTM(256) as a PyTorch state_dict
(``.pt``, zip format) and the same weights as a Keras 3 ``.keras`` file, then
times fresh processes:

* ``python -c "import spectra"`` (goal < 0.3 s);
* ``spectra analyze --json --fast`` (spectrum, norms, Henrici: the issue-2 figures;
  goal < 1.0 s for the state_dict);
* ``spectra analyze --json`` with every figure (pseudospectral radius at three ε,
  distance to instability, Kreiss constant, transient growth, numerical radius);
* whether torch was imported by the analysing process (it must not be for
  ``.pt`` zip files, ``.keras``, safetensors and arrays).

Prints the best of ``--repeat`` runs (one run for the all-figures case). Usage::

    python benchmarks/analyze_speed.py [--repeat 3] [--hidden 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys
from spectra_cli.main import main
rc = main(sys.argv[1:])
sys.stderr.write("\\nTORCH_IMPORTED=%s\\n" % ("torch" in sys.modules))
sys.exit(rc)
"""


def make_files(d: str, hidden: int) -> dict[str, str]:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(64, hidden, num_layers=2, batch_first=True)
    pt = os.path.join(d, "lstm256.pt")
    torch.save(lstm.state_dict(), pt)

    import keras

    model = keras.Sequential(
        [
            keras.Input((10, 64)),
            keras.layers.LSTM(hidden, return_sequences=True),
            keras.layers.LSTM(hidden),
        ]
    )
    sd = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    for k, layer in enumerate(model.layers):
        layer.set_weights(
            [
                sd[f"weight_ih_l{k}"].T,
                sd[f"weight_hh_l{k}"].T,
                sd[f"bias_ih_l{k}"] + sd[f"bias_hh_l{k}"],
            ]
        )
    ks = os.path.join(d, "lstm256.keras")
    model.save(ks)
    npz = os.path.join(d, "lstm256.npz")
    np.savez(npz, **{f"w{k}": sd[f"weight_hh_l{k}"][:hidden] for k in range(2)})
    return {"state_dict (.pt)": pt, ".keras": ks}


def timed(args: list[str], repeat: int) -> tuple[float, bool, int]:
    best, torch_imported, rc = float("inf"), False, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(args, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        rc = r.returncode
        if rc != 0:
            print(r.stderr[-2000:], file=sys.stderr)
        torch_imported = "TORCH_IMPORTED=True" in r.stderr
        best = min(best, dt)
    return best, torch_imported, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    py = sys.executable
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    print(f"# spectra analyze end to end ({env_note}); best of {args.repeat} fresh processes\n")
    t, _, _ = timed([py, "-c", "import spectra"], args.repeat)
    print(f"{'import spectra':<52} {t:7.3f} s   goal < 0.3 s  {'OK' if t < 0.3 else 'MISSED'}")
    t, _, _ = timed([py, "-c", "import torch"], 1)
    print(f"{'import torch (for reference)':<52} {t:7.3f} s")
    with tempfile.TemporaryDirectory() as d:
        files = make_files(d, args.hidden)
        for label, path in files.items():
            for flags, what in ((["--fast"], "--fast"), ([], "all figures")):
                rep = args.repeat if flags else 1  # every figure: slow, timed once
                t, torch_imp, rc = timed([py, "-c", CHILD, "analyze", "--json", *flags, path], rep)
                goal = ""
                if flags and label.startswith("state_dict"):
                    goal = f"  goal < 1.0 s  {'OK' if t < 1.0 else 'MISSED'}"
                name = f"analyze --json {what}: LSTM({args.hidden})x2 {label}"
                status = "" if rc == 0 else f"  (exit {rc})"
                print(f"{name:<52} {t:7.3f} s   torch imported: {torch_imp}{goal}{status}")


if __name__ == "__main__":
    main()
