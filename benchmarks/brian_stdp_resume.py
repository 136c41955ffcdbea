"""Kill-and-resume check for tier 1: a training run killed with SIGKILL, then resumed,
ends with the same weights as an uninterrupted run with the same seed.

    python benchmarks/brian_stdp_resume.py                 # 50 neurons, 200 images
    python benchmarks/brian_stdp_resume.py --neurons 100 --images 400 --kill-at 150

Three child processes, each running ``brian_stdp.train_hidden_layers`` (layer 1
then layer 2, checkpoints after every chunk of 25 images) at the ``book``
profile's parameters with ``--neurons`` and ``--images`` in place of the
profile's sizes:

1. uninterrupted, into ``DIR/straight``;
2. into ``DIR/killed``; once its layer-1 checkpoint reports ``--kill-at``
   images or more, the process gets SIGKILL (no clean-up of any kind);
3. the same call again into ``DIR/killed``: it resumes from the checkpoint.

Then it compares the two runs' ``model.npz`` (weights and thresholds of both
layers), the layer-1 weight snapshots and the training statistics and history
in the checkpoints (wall times aside), and prints the largest differences.
Exit status 0 when they are equal (arrays to 1e-9), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from dataclasses import replace
from snnlib import profiles
from snnlib.tiers import brian_stdp as T
out, neurons, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
book = profiles.get_profile("book")
profile = replace(book, brian_stdp=replace(book.brian_stdp, neurons=neurons, train_images=images))
T.train_hidden_layers(profile, out_dir=out, seed=2026, n_eval_images=10, progress=False)
"""


def position(path: Path) -> int:
    import numpy as np

    try:
        with np.load(path) as data:
            return int(data["position"])
    except (OSError, ValueError, KeyError, EOFError):
        return -1  # not written yet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=50)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--kill-at", type=int, default=100, help="kill once layer 1 passed this many images")
    parser.add_argument("--dir", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args()

    import numpy as np

    root = Path(args.dir or tempfile.mkdtemp(prefix="brian_stdp_resume_"))
    if any((root / sub).exists() for sub in ("straight", "killed")):
        parser.error(f"{root} already holds a run; give an empty --dir")
    run = [sys.executable, "-c", CHILD]
    sizes = [str(args.neurons), str(args.images)]
    start = time.perf_counter()
    subprocess.run(run + [str(root / "straight")] + sizes, check=True)
    print(f"uninterrupted run: {time.perf_counter() - start:.1f} s")

    ckpt = root / "killed" / "layer1.npz"
    child = subprocess.Popen(run + [str(root / "killed")] + sizes)
    while child.poll() is None and position(ckpt) < args.kill_at:
        time.sleep(0.2)
    if child.poll() is not None:
        print("the run finished before it could be killed; raise --images or lower --kill-at")
        return 1
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    print(f"killed with SIGKILL (exit status {child.returncode}) with the layer-1 checkpoint at "
          f"{position(ckpt)} of {args.images} images")
    subprocess.run(run + [str(root / "killed")] + sizes, check=True)
    print("resumed run finished")

    import json

    worst = {}
    with np.load(root / "straight" / "model.npz") as a, np.load(root / "killed" / "model.npz") as b:
        worst.update({k: float(np.abs(a[k] - b[k]).max()) for k in a.files})
    same_stats = True
    for layer in ("layer1", "layer2"):
        with np.load(root / "straight" / f"{layer}.npz") as a, \
                np.load(root / "killed" / f"{layer}.npz") as b:
            snaps = sorted(k for k in a.files if k.startswith("snapshot_"))
            if snaps != sorted(k for k in b.files if k.startswith("snapshot_")):
                print(f"{layer}: different snapshot counts")
                same_stats = False
            worst.update({f"{layer} {k}": float(np.abs(a[k] - b[k]).max()) for k in snaps
                          if k in b.files})

            def stats(data):
                run = json.loads(str(data["run"]))
                run.pop("wall_s")
                for entry in run["history"]:
                    entry.pop("wall_s")
                return run

            equal = stats(a) == stats(b)
            print(f"{layer}: training statistics and history (wall times aside) "
                  f"{'identical' if equal else 'DIFFERENT'}")
            same_stats &= equal
    for key, diff in worst.items():
        print(f"{key}: largest |uninterrupted - resumed| = {diff:.3g}")
    same = same_stats and all(d <= 1e-9 for d in worst.values())
    print("same weights and thresholds" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
