#!/usr/bin/env python3
"""Tracking accuracy of our fusion against two Python trackers, norfair and motpy, on the committed logs.

For every log (replays/logs/*.mcap) `rsu-lab replay export` writes the lidar detections in the site
frame, the ground truth the project's scorer counts (after its coverage filter, with each truth's
class gate) and our fused tracks as the scorer sees them. This script then

  1. scores our tracks with py-motmetrics 1.4 under the project's rules (class-aware gates: 2 m
     vehicles, 1 m VRUs and static objects; a track matches a truth of its own class family or is of
     class unknown) and checks that it reproduces our own scorer's MOTA to within 0.001;
  2. runs norfair and motpy on the same lidar detections (lidar only, detections scored at least our
     fusion's lidar_min_score), with a few settings each, and scores them the same way. The logs'
     lidars run unsynchronised (each frame has its own capture time), so two ways of feeding are
     tried: one update per capture time (each lidar's frame alone), or one update per 100 ms sweep
     holding every lidar's frame of the window, cross-lidar duplicates merged. Outputs are sampled
     at the scoring times: the last output at or before the truth time, moved on to it by the
     tracker's own velocity estimate where it has one (norfair; motpy's tracks are held), as ours is
     predicted to it; the tracks the project's scorer would not count (within the gate of a truth
     outside coverage) are dropped;
  3. prints a markdown table: per log, ours / the best norfair setting / the best motpy setting
     (best = highest MOTA, then IDF1), MOTA and IDF1, and each tracker's wall time per update tick
     and per second of log; then every setting's scores.

One command (makes its own venv with pinned packages under target/peers-venv on the first run):

    python3 replays/tools/peers/run_peers.py            # builds rsu-lab: cargo test --workspace --no-run
    python3 replays/tools/peers/run_peers.py --release  # or cargo build --release --bin rsu-lab
    python3 replays/tools/peers/run_peers.py --rsu-lab target/release/rsu-lab

Exit code 1 when py-motmetrics does not reproduce our MOTA on some log (the table still prints).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
REQUIREMENTS = HERE / "requirements.txt"
MOTA_TOLERANCE = 0.001


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

def ensure_venv(venv_dir: Path) -> None:
    """Re-runs this script inside a venv holding the pinned packages (made on first use)."""
    if os.environ.get("RUN_PEERS_IN_VENV") == "1":
        return
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / "requirements.installed"
    wanted = REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"making the venv {venv_dir} ({REQUIREMENTS.name})", file=sys.stderr)
        venv.create(venv_dir, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    env = dict(os.environ, RUN_PEERS_IN_VENV="1")
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def rsu_lab_binary(args) -> Path:
    """The rsu-lab binary: given, or built with cargo (a no-op when up to date)."""
    if args.rsu_lab:
        return Path(args.rsu_lab).resolve()
    # Debug: the project's usual build (`cargo test --workspace --no-run`, which makes
    # target/debug/rsu-lab for rsu-lab's own tests), so an up-to-date tree rebuilds nothing.
    profile = "release" if args.release else "debug"
    command = ["cargo", "build", "--release", "--bin", "rsu-lab"] if args.release else \
        ["cargo", "test", "--workspace", "--no-run"]
    print(f"building: {' '.join(command)}", file=sys.stderr)
    subprocess.run(command, cwd=REPO, check=True)
    return REPO / "target" / profile / "rsu-lab"


# ---------------------------------------------------------------------------------------------
# The project's scoring rules, on the exported files
# ---------------------------------------------------------------------------------------------

FAMILIES = {"vehicle": 0, "vru": 1, "static": 2, "unknown": 3}


def gated_distances(truths: list, tracks: list):
    """Distances [m] truth x track, NaN where they may not match: a track matches a truth of its own
    class family or is of class unknown, within the truth's family gate (METRICS.md, Matching)."""
    import numpy as np

    d = np.full((len(truths), len(tracks)), np.nan)
    if not truths or not tracks:
        return d
    t_xy = np.array([[t["x_m"], t["y_m"]] for t in truths])
    h_xy = np.array([[h["x_m"], h["y_m"]] for h in tracks])
    gate = np.array([t["gate_m"] for t in truths])
    t_family = np.array([FAMILIES[t["family"]] for t in truths])
    h_family = np.array([FAMILIES[h["family"]] for h in tracks])
    h_unknown = np.array([h["class"] == "unknown" for h in tracks])
    dist = np.hypot(t_xy[:, None, 0] - h_xy[None, :, 0], t_xy[:, None, 1] - h_xy[None, :, 1])
    ok = (dist <= gate[:, None]) & ((t_family[:, None] == h_family[None, :]) | h_unknown[None, :])
    d[ok] = dist[ok]
    return d


def kept_tracks(truths: list, tracks: list) -> list:
    """The tracks the scorer counts: those not within the gate of a truth outside coverage."""
    import numpy as np

    unscored = [t for t in truths if not t["scored"]]
    if not unscored or not tracks:
        return list(tracks)
    near = ~np.isnan(gated_distances(unscored, tracks)).all(axis=0)
    return [h for h, n in zip(tracks, near) if not n]


def motmetrics_scores(frames: list) -> dict:
    """MOTA, IDF1 and counts from py-motmetrics over (t_ns, truths, tracks) frames, where tracks are
    the kept ones; truths are filtered to the scored ones here."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for _, truths, tracks in frames:
        scored = [t for t in truths if t["scored"]]
        acc.update([t["id"] for t in scored], [h["id"] for h in tracks], gated_distances(scored, tracks))
    mh = mm.metrics.create()
    names = ["num_objects", "num_matches", "num_misses", "num_false_positives", "num_switches", "mota", "idf1"]
    summary = mh.compute(acc, metrics=names, name="log")
    return {k: float(summary[k].iloc[0]) for k in names}


# ---------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------

def label_of(det: dict) -> str:
    """The label a peer tracks a detection under: its class family, or unknown (matches any)."""
    return "unknown" if det["class"] == "unknown" else det["family"]


def footprint_box(det: dict, min_side_m: float):
    """Axis-aligned ground box [xmin, ymin, xmax, ymax] around the detection's oriented footprint,
    each side at least `min_side_m`."""
    c, s = abs(math.cos(det["yaw_rad"])), abs(math.sin(det["yaw_rad"]))
    half_x = max(0.5 * (det["length_m"] * c + det["width_m"] * s), 0.5 * min_side_m)
    half_y = max(0.5 * (det["length_m"] * s + det["width_m"] * c), 0.5 * min_side_m)
    return [det["x_m"] - half_x, det["y_m"] - half_y, det["x_m"] + half_x, det["y_m"] + half_y]


class NorfairPeer:
    """norfair on ground-plane points [m] (one point per detection, label = class family)."""

    def __init__(self, name, distance, threshold_m, hit_counter_max, initialization_delay, r, q, tick_s):
        from norfair import Tracker
        from norfair.filter import OptimizedKalmanFilterFactory

        self.name = name
        self.box = distance == "iou"
        self.tick_s = tick_s
        self.tracker = Tracker(
            distance_function=distance,
            distance_threshold=threshold_m,
            hit_counter_max=hit_counter_max,
            initialization_delay=initialization_delay,
            filter_factory=OptimizedKalmanFilterFactory(R=r, Q=q),
        )

    def update(self, dets):
        import numpy as np
        from norfair import Detection

        out = []
        for d in dets:
            if self.box:
                b = footprint_box(d, 1.0)
                points = np.array([[b[0], b[1]], [b[2], b[3]]])
            else:
                points = np.array([[d["x_m"], d["y_m"]]])
            out.append(Detection(points=points, scores=np.full(len(points), d["score"]), label=label_of(d)))
        objects = self.tracker.update(detections=out)
        tracks = []
        for o in objects:
            p = o.estimate.mean(axis=0)
            v = o.estimate_velocity.mean(axis=0) / self.tick_s  # per tick -> per second
            tracks.append((o.id, o.label, float(p[0]), float(p[1]), float(v[0]), float(v[1])))
        return tracks


class MotpyPeer:
    """motpy on axis-aligned ground boxes [m] (IoU matching; class = the majority family)."""

    LABELS = ["vehicle", "vru", "static", "unknown"]

    def __init__(self, name, min_side_m, min_iou, min_steps_alive, max_staleness, tick_s):
        from motpy import MultiObjectTracker

        self.name = name
        self.min_side_m = min_side_m
        self.ids = {}
        self.tracker = MultiObjectTracker(
            dt=tick_s,
            model_spec={"order_pos": 1, "dim_pos": 2, "order_size": 0, "dim_size": 2,
                        "q_var_pos": 5.0, "r_var_pos": 0.1},
            matching_fn_kwargs={"min_iou": min_iou},
            tracker_kwargs={"max_staleness": max_staleness},
            active_tracks_kwargs={"min_steps_alive": min_steps_alive, "max_staleness": max_staleness},
        )

    def update(self, dets):
        import numpy as np
        from motpy import Detection

        out = [Detection(box=np.array(footprint_box(d, self.min_side_m)), score=d["score"],
                         class_id=self.LABELS.index(label_of(d))) for d in dets]
        tracks = []
        for t in self.tracker.step(detections=out):
            track_id = self.ids.setdefault(t.id, len(self.ids) + 1)
            x, y = 0.5 * (t.box[0] + t.box[2]), 0.5 * (t.box[1] + t.box[3])
            # motpy's tracks carry no velocity: held at their last position.
            tracks.append((track_id, self.LABELS[t.class_id], float(x), float(y), 0.0, 0.0))
        return tracks


PER_CAPTURE, PER_SWEEP = "per capture", "per 100 ms sweep"
# How the lidar frames are fed: one update per capture time, or per 100 ms sweep of all lidars.
FEEDS = {PER_CAPTURE: 0.0, PER_SWEEP: 0.1}


def peer_settings():
    """Every setting tried, as (tracker, feed, setting name, factory of the tracker given the tick
    period [s])."""
    n, m = "norfair", "motpy"
    return [
        (n, PER_SWEEP, "euclidean 2 m, hits 10/delay 3, R 4 Q 0.1 (filter defaults)",
         lambda tick_s: NorfairPeer(n, "euclidean", 2.0, 10, 3, 4.0, 0.1, tick_s)),
        (n, PER_SWEEP, "euclidean 2 m, hits 10/delay 3, R 0.1 Q 0.05",
         lambda tick_s: NorfairPeer(n, "euclidean", 2.0, 10, 3, 0.1, 0.05, tick_s)),
        (n, PER_SWEEP, "euclidean 1 m, hits 10/delay 2, R 0.1 Q 0.05",
         lambda tick_s: NorfairPeer(n, "euclidean", 1.0, 10, 2, 0.1, 0.05, tick_s)),
        (n, PER_SWEEP, "euclidean 3 m, hits 20/delay 5, R 0.1 Q 0.1",
         lambda tick_s: NorfairPeer(n, "euclidean", 3.0, 20, 5, 0.1, 0.1, tick_s)),
        (n, PER_SWEEP, "iou < 0.9 (boxes >= 1 m), hits 10/delay 3, R 0.1 Q 0.05",
         lambda tick_s: NorfairPeer(n, "iou", 0.9, 10, 3, 0.1, 0.05, tick_s)),
        (m, PER_CAPTURE, "boxes as detected, IoU >= 0.1, alive >= 3, stale 6",
         lambda tick_s: MotpyPeer(m, 0.0, 0.1, 3, 6, tick_s)),
        (m, PER_CAPTURE, "boxes >= 2 m, IoU >= 0.1, alive >= 3, stale 6",
         lambda tick_s: MotpyPeer(m, 2.0, 0.1, 3, 6, tick_s)),
        (m, PER_CAPTURE, "boxes >= 3 m, IoU >= 0.05, alive >= 5, stale 12",
         lambda tick_s: MotpyPeer(m, 3.0, 0.05, 5, 12, tick_s)),
        (m, PER_SWEEP, "boxes >= 2 m, IoU >= 0.1, alive >= 3, stale 6",
         lambda tick_s: MotpyPeer(m, 2.0, 0.1, 3, 6, tick_s)),
    ]


MERGE_RADIUS_M = {"vehicle": 2.0, "vru": 0.7, "static": 0.7, "unknown": 1.0}


def ticks_of(detection_lines, min_score, sweep_s):
    """The update ticks, in time order, as (time [ns], detections at or above `min_score`, our
    fusion's `lidar_min_score`). `sweep_s` 0: one tick per capture time (all lidars' frames of that
    instant). Otherwise one tick per sweep window of `sweep_s` (the lidars run unsynchronised), at
    its last capture time, holding every lidar's frame of the window, where detections of the same
    label from different lidars closer than MERGE_RADIUS_M are one object (the best-scored kept):
    without that a peer sees each object in an overlap twice per tick."""
    ticks = []
    for line in sorted(detection_lines, key=lambda l: l["t_ns"]):
        dets = [dict(d, sensor=line["sensor"]) for d in line["detections"] if d["score"] >= min_score]
        window = line["t_ns"] // int(sweep_s * 1e9) if sweep_s > 0 else line["t_ns"]
        if ticks and ticks[-1][2] == window:
            ticks[-1][0] = line["t_ns"]
            ticks[-1][1].extend(dets)
        else:
            ticks.append([line["t_ns"], dets, window])
    if sweep_s > 0:
        for tick in ticks:
            kept = []
            for d in sorted(tick[1], key=lambda d: -d["score"]):
                label, r = label_of(d), MERGE_RADIUS_M[label_of(d)]
                if not any(k["sensor"] != d["sensor"] and label_of(k) == label
                           and math.hypot(k["x_m"] - d["x_m"], k["y_m"] - d["y_m"]) < r for k in kept):
                    kept.append(d)
            tick[1] = kept
    return [(t, dets) for t, dets, _ in ticks]


def run_peer(peer, ticks, scoring_lines):
    """Runs `peer` over `ticks`; returns the scored frames and the mean wall time per tick [s]."""
    frames = []
    latest, latest_ns = [], None
    k = 0
    spent = 0.0
    for line in scoring_lines:
        t_ns = line["t_ns"]
        while k < len(ticks) and ticks[k][0] <= t_ns:
            started = time.perf_counter()
            latest = peer.update(ticks[k][1])
            spent += time.perf_counter() - started
            latest_ns = ticks[k][0]
            k += 1
        dt_s = 0.0 if latest_ns is None else (t_ns - latest_ns) * 1e-9
        tracks = [{"id": i, "class": label, "family": label, "x_m": x + vx * dt_s, "y_m": y + vy * dt_s}
                  for i, label, x, y, vx, vy in latest]
        frames.append((t_ns, line["truths"], kept_tracks(line["truths"], tracks)))
    while k < len(ticks):  # ticks after the last truth time: timed like the others
        started = time.perf_counter()
        peer.update(ticks[k][1])
        spent += time.perf_counter() - started
        k += 1
    return frames, spent / max(len(ticks), 1)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def read_lines(path: Path) -> list:
    with path.open() as f:
        return [json.loads(l) for l in f]


def evaluate_log(binary: Path, log: Path, out_dir: Path) -> dict:
    out = out_dir / log.stem
    subprocess.run([str(binary), "replay", "export", str(log), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    scoring_lines = read_lines(out / "scoring.jsonl")
    detection_lines = read_lines(out / "detections.jsonl")

    # Ours, as the Rust scorer counts it; the Python kept-filter must agree with the exporter's.
    ours_frames = []
    for line in scoring_lines:
        kept = [h for h in line["tracks"] if h["kept"]]
        if [h["id"] for h in kept_tracks(line["truths"], line["tracks"])] != [h["id"] for h in kept]:
            raise SystemExit(f"{log.name}: the Python coverage filter disagrees with the exporter at {line['t_ns']}")
        ours_frames.append((line["t_ns"], line["truths"], kept))
    ours = motmetrics_scores(ours_frames)
    rust = summary["metrics"]
    row = {
        "log": log.stem,
        "rust_mota": rust["overall"]["mota"],
        "rust_idf1": rust["idf1"],
        "ours": ours,
        "ours_tick_s": summary["replay_wall_s"] / max(summary["lidar_ticks"], 1),
        "lidar_ticks": summary["lidar_ticks"],
        "log_s": summary["metrics"]["duration_s"],
        "ours_per_log_s": summary["replay_wall_s"] / max(summary["metrics"]["duration_s"], 1e-9),
        "peers": {},
    }
    if summary["lidar_frames"] == 0:
        return row
    feeds = {}
    for feed, sweep_s in FEEDS.items():
        ticks = ticks_of(detection_lines, summary["lidar_min_score"], sweep_s)
        span_s = (ticks[-1][0] - ticks[0][0]) * 1e-9
        feeds[feed] = (ticks, span_s / (len(ticks) - 1) if len(ticks) > 1 else 0.1)
    for tracker, feed, setting, make in peer_settings():
        ticks, tick_s = feeds[feed]
        frames, per_tick_s = run_peer(make(tick_s), ticks, scoring_lines)
        scores = motmetrics_scores(frames)
        row["peers"].setdefault(tracker, []).append({
            "setting": f"{setting}; {feed}", "tick_s": per_tick_s, "ticks": len(ticks),
            "per_log_s": per_tick_s * len(ticks) / max(row["log_s"], 1e-9), **scores})
    return row


def best(results):
    return max(results, key=lambda r: (r["mota"], r["idf1"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", default=str(REPO / "replays" / "logs"), help="folder of .mcap logs")
    parser.add_argument("--rsu-lab", help="rsu-lab binary (default: built with cargo, see --release)")
    parser.add_argument("--release", action="store_true", help="build and use a release rsu-lab")
    parser.add_argument("--out", default=str(REPO / "target" / "peers"), help="exported files and results.json")
    parser.add_argument("--venv", default=str(REPO / "target" / "peers-venv"))
    args = parser.parse_args()
    ensure_venv(Path(args.venv))

    binary = rsu_lab_binary(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = sorted(Path(args.logs).glob("*.mcap"))
    rows = []
    for log in logs:
        print(f"{log.name} ...", file=sys.stderr)
        rows.append(evaluate_log(binary, log, out_dir))
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2))

    def ms(s):
        return f"{s * 1e3:.2f}"

    print("| log | ours MOTA / IDF1 | norfair MOTA / IDF1 (setting) | motpy MOTA / IDF1 (setting) "
          "| ms per tick: ours / norfair / motpy | ms per s of log: ours / norfair / motpy |")
    print("|---|---|---|---|---|---|")
    failed = []
    for r in rows:
        o = r["ours"]
        if abs(o["mota"] - r["rust_mota"]) > MOTA_TOLERANCE:
            failed.append(r)
        cells = [f"{o['mota']:.3f} / {o['idf1']:.3f}"]
        times = [ms(r["ours_tick_s"]) if r["lidar_ticks"] else "n/a"]
        shares = [ms(r["ours_per_log_s"])]
        for tracker in ("norfair", "motpy"):
            if tracker in r["peers"]:
                b = best(r["peers"][tracker])
                k = r["peers"][tracker].index(b) + 1
                cells.append(f"{b['mota']:.3f} / {b['idf1']:.3f} (#{k})")
                times.append(ms(b["tick_s"]))
                shares.append(ms(b["per_log_s"]))
            else:
                cells.append("n/a (no lidar)")
                times.append("n/a")
                shares.append("n/a")
        print(f"| {r['log']} | {' | '.join(cells)} | {' / '.join(times)} | {' / '.join(shares)} |")
    print()
    print("Settings (#k above is the best per log, by MOTA then IDF1):")
    settings = {}
    for r in rows:
        for tracker, results in r["peers"].items():
            for k, p in enumerate(results, 1):
                settings[(tracker, k)] = p["setting"]
    for (tracker, k), setting in sorted(settings.items()):
        print(f"- {tracker} #{k}: {setting}")
    print()
    print("Every setting, MOTA / IDF1 per log:")
    keys = sorted(settings)
    print("| log | " + " | ".join(f"{t} #{k}" for t, k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for r in rows:
        cells = []
        for tracker, k in keys:
            results = r["peers"].get(tracker)
            cells.append(f"{results[k - 1]['mota']:.3f} / {results[k - 1]['idf1']:.3f}" if results else "n/a")
        print(f"| {r['log']} | " + " | ".join(cells) + " |")
    print()
    print("py-motmetrics on our tracks vs our own scorer (MOTA, IDF1):")
    for r in rows:
        o = r["ours"]
        print(f"- {r['log']}: motmetrics {o['mota']:.6f} / {o['idf1']:.6f}, ours {r['rust_mota']:.6f} / "
              f"{r['rust_idf1']:.6f} (MOTA diff {o['mota'] - r['rust_mota']:+.6f}; switches {o['num_switches']:.0f})")
    if failed:
        print(f"\nMOTA differs by more than {MOTA_TOLERANCE} on: {', '.join(r['log'] for r in failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
