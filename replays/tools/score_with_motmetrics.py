"""Scores a tracking fixture with py-motmetrics 1.4.0, the reference for `v2x_replays::scoring`.

The fixture (JSON) holds per-frame ground truth and tracker output: `gates_m` (match gate per
class) and `frames`, each with `truths` and `hyps` ({id, class, x, y}, metres). A truth and a
hypothesis may match only when of the same class and within that class's gate (Euclidean
distance), as our scorer's class-aware gate decides; the distance matrix gives NaN otherwise.
The assignment solver is pinned to SciPy's (the formulation our own solver follows).

Usage: python3 replays/tools/score_with_motmetrics.py [FIXTURE]
       (default replays/tests/fixtures/scoring_fixture.json)
Without motmetrics 1.4.0 importable, it makes a virtual environment in /tmp/v2x-motmetrics-venv,
installs motmetrics==1.4.0 there and runs itself again with it. Prints the figures as JSON.
"""
import json
import math
import os
import subprocess
import sys

VENV = "/tmp/v2x-motmetrics-venv"
VERSION = "1.4.0"


def ensure_motmetrics():
    """Imports motmetrics 1.4.0, or re-runs this script in a venv that has it."""
    try:
        import motmetrics
        if motmetrics.__version__ == VERSION:
            return motmetrics
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python")
    if os.environ.get("V2X_MOTMETRICS_VENV") == "1":
        sys.exit(f"motmetrics {VERSION} is still not importable in {VENV}")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"motmetrics=={VERSION}"], check=True)
    env = dict(os.environ, V2X_MOTMETRICS_VENV="1")
    os.execve(python, [python, os.path.abspath(__file__), *sys.argv[1:]], env)


def main():
    mm = ensure_motmetrics()
    import numpy as np

    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "scoring_fixture.json")
    with open(path) as f:
        fixture = json.load(f)
    gates = fixture["gates_m"]

    acc = mm.MOTAccumulator(auto_id=True)
    with mm.lap.set_default_solver("scipy"):
        for frame in fixture["frames"]:
            truths, hyps = frame["truths"], frame["hyps"]
            d = np.full((len(truths), len(hyps)), np.nan)
            for i, o in enumerate(truths):
                for j, h in enumerate(hyps):
                    dist = math.hypot(o["x"] - h["x"], o["y"] - h["y"])
                    if o["class"] == h["class"] and dist <= gates[o["class"]]:
                        d[i, j] = dist
            acc.update([o["id"] for o in truths], [h["id"] for h in hyps], d)

    names = ["num_frames", "num_objects", "num_predictions", "num_matches", "num_switches",
             "num_transfer", "num_ascend", "num_migrate", "num_false_positives", "num_misses",
             "num_fragmentations", "mota", "motp", "idtp", "idfp", "idfn", "idf1"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="fixture")
    figures = {k: summary[k].iloc[0].item() for k in names}
    figures["motmetrics_version"] = mm.__version__
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
