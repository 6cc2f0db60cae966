"""Benchmark: streamed best-unit search (Arend et al. 2018) vs materialised numpy.

Searches, for each of 256 sites (88 V4 + 168 IT in the real data), the best-correlated
unit among all the leaf-module outputs of a ResNet-50 (158 layers, 32,040,424 units per
image at 224 px and full width) over 2560 images, three ways, each in its own
process so that its peak resident memory (``ru_maxrss``) is its own:

- ``streamed``: :class:`brainalign.unit_matching.UnitMatcher`, fed batch by batch
  (every layer in flight at once: one pass of the network);
- ``materialised``: the whole images x units matrix in memory (float32, as extraction
  would hand it over), then z-scored columns (float64, in blocks of units) times the
  z-scored sites: the efficient brute force;
- ``corrcoef``: ``np.corrcoef`` over the materialised ``[units | sites]`` matrix, which
  forms the full ``(units + sites)^2`` correlation matrix: only where that fits
  (``--corrcoef-units``, run on the first units of the feature set).

Activations are N(0, 1), generated per (layer, batch) from fixed seeds, so all three see
the same numbers; the time to generate them (the stand-in for the network) is not
counted. The search times, peak RSS and the largest difference of best r between
methods are printed, with the memory the full-size search would take.

The default feature set is ResNet-50 at 56 px and an eighth of the width (about 1/120
of the units: 0.27 M), which runs in about two minutes on 2 cores::

    python benchmarks/bench_unit_matching.py
    python benchmarks/bench_unit_matching.py --width 0.25                  # 0.54 M units
    python benchmarks/bench_unit_matching.py --image-size 224 --width 1    # full size: ~93 GiB
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from brainalign.unit_matching import UnitMatcher, accumulator_bytes, plan_passes


def resnet50_shapes(image_size: int = 224, width: float = 1.0) -> dict[str, tuple]:
    """Per-image output shapes of every leaf-module call of torchvision's ResNet-50, in order."""

    def c(ch):
        return max(1, int(round(ch * width)))

    s2 = math.ceil(image_size / 2)
    s4 = math.ceil(s2 / 2)
    shapes = {"conv1": (c(64), s2, s2), "bn1": (c(64), s2, s2), "relu": (c(64), s2, s2)}
    shapes["maxpool"] = (c(64), s4, s4)
    sp = s4
    for i, (w, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for b in range(blocks):
            out = math.ceil(sp / (stride if b == 0 else 1))
            p = f"layer{i}.{b}."
            shapes |= {p + "conv1": (c(w), sp, sp), p + "bn1": (c(w), sp, sp), p + "relu": (c(w), sp, sp)}
            shapes |= {p + "conv2": (c(w), out, out), p + "bn2": (c(w), out, out)}
            shapes[p + "relu:1"] = (c(w), out, out)
            shapes |= {p + "conv3": (c(4 * w), out, out), p + "bn3": (c(4 * w), out, out)}
            if b == 0:
                shapes |= {p + "downsample.0": (c(4 * w), out, out), p + "downsample.1": (c(4 * w), out, out)}
            shapes[p + "relu:2"] = (c(4 * w), out, out)
            sp = out
    shapes["avgpool"] = (c(2048), 1, 1)
    shapes["fc"] = (1000,)
    return shapes


def _batch(seed, j, b, size, shape):
    rng = np.random.default_rng([seed, j, b])
    return rng.standard_normal((size, *shape), dtype=np.float32)


def _sites(args):
    return np.random.default_rng([args.seed, 10**6]).standard_normal((args.n_images, args.n_sites))


def _layers(args):
    shapes = resnet50_shapes(args.image_size, args.width)
    if args.max_units:  # the first units of the feature set (whole layers, the last one cut)
        kept, total = {}, 0
        for name, shape in shapes.items():
            p = int(np.prod(shape))
            if total + p > args.max_units:
                if total < args.max_units:
                    kept[name] = (args.max_units - total,)
                break
            kept[name] = shape
            total += p
        shapes = kept
    return shapes


def _batches(args, shapes):
    """Yield (layer index, name, start, activations) in extraction order (batch-major)."""
    for b, start in enumerate(range(0, args.n_images, args.batch)):
        size = min(args.batch, args.n_images - start)
        for j, (name, shape) in enumerate(shapes.items()):
            yield j, name, start, _batch(args.seed, j, b, size, shape)


def worker(args):
    y = _sites(args)
    shapes = _layers(args)
    offsets = np.concatenate([[0], np.cumsum([int(np.prod(s)) for s in shapes.values()])])
    if args.worker == "streamed":
        m = UnitMatcher(y, top_k=args.top_k)
        search = 0.0
        for _, name, start, x in _batches(args, shapes):
            t0 = time.perf_counter()
            m.update(name, x, start)
            search += time.perf_counter() - t0
        t0 = time.perf_counter()
        res = m.result()
        search += time.perf_counter() - t0
        best_r = res.best_r
        best = offsets[res.best_layer] + res.best_unit
    else:
        X = np.empty((args.n_images, int(offsets[-1])), dtype=np.float32)
        for j, _, start, x in _batches(args, shapes):
            X[start : start + len(x), offsets[j] : offsets[j + 1]] = x.reshape(len(x), -1)
        t0 = time.perf_counter()
        if args.worker == "corrcoef":
            p = X.shape[1]
            r = np.corrcoef(X.T, y.T)[:p, p:]
            best, best_r = r.argmax(axis=0), r.max(axis=0)
        else:
            yz = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0), axis=0)
            best_r = np.full(y.shape[1], -np.inf)
            best = np.zeros(y.shape[1], dtype=np.int64)
            step = max(1, 2**24 // args.n_images)
            for a in range(0, X.shape[1], step):
                xb = X[:, a : a + step].astype(np.float64)
                xb -= xb.mean(axis=0)
                xb /= np.linalg.norm(xb, axis=0)
                r = xb.T @ yz
                j = r.argmax(axis=0)
                v = r[j, np.arange(r.shape[1])]
                better = v > best_r
                best_r[better], best[better] = v[better], a + j[better]
        search = time.perf_counter() - t0
    np.savez(args.out, best_r=best_r, best=best)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"time_s": search, "peak_gib": peak, "units": int(offsets[-1])}))


def _run(method, args, out, max_units=0):
    cmd = [sys.executable, __file__, "--worker", method, "--out", str(out), "--max-units", str(max_units)]
    for k in ("n_images", "n_sites", "image_size", "width", "batch", "seed", "top_k"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": (res.stdout + res.stderr).strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=2560)
    ap.add_argument("--n-sites", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=56, help="input size of the ResNet-50 (224 = real)")
    ap.add_argument("--width", type=float, default=0.125, help="channel multiplier (1 = real)")
    ap.add_argument("--batch", type=int, default=64, help="images per batch")
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corrcoef-units", type=int, default=4096, help="units of the corrcoef comparison")
    ap.add_argument("--max-materialised-gib", type=float, default=8.0,
                    help="skip the materialised search above this matrix size")
    ap.add_argument("--worker", choices=["streamed", "materialised", "corrcoef"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--max-units", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    n, s = args.n_images, args.n_sites
    shapes = resnet50_shapes(args.image_size, args.width)
    p = sum(int(np.prod(v)) for v in shapes.values())
    full = resnet50_shapes()
    p_full = sum(int(np.prod(v)) for v in full.values())
    print(f"Best-unit search: {n} images x {s} sites; ResNet-50 leaf outputs at {args.image_size} px, "
          f"width {args.width}: {len(shapes)} layers, {p:,} units")
    gib = 2**30
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("all units", 0, ["streamed", "materialised"])]
        runs.append((f"first {args.corrcoef_units:,} units", args.corrcoef_units, ["streamed", "corrcoef"]))
        for label, max_units, methods in runs:
            units = max_units or p
            results = {}
            for method in methods:
                need = n * units * 4 / gib if method == "materialised" else 0
                need += (units + s) ** 2 * 8 / gib if method == "corrcoef" else 0
                if need > args.max_materialised_gib:
                    results[method] = {"skipped": f"needs {need:.1f} GiB"}
                    continue
                out = Path(tmp) / f"{method}_{max_units}.npz"
                results[method] = _run(method, args, out, max_units)
                results[method]["file"] = out
            ref = results["streamed"]
            for method, r in results.items():
                diff = ""
                if "time_s" in r and method != "streamed" and "time_s" in ref:
                    a, b = np.load(ref["file"]), np.load(r["file"])
                    diff = f"{np.abs(a['best_r'] - b['best_r']).max():.1e}"
                    same = np.array_equal(a["best"], b["best"])
                    diff += "" if same else " (units differ)"
                rows.append((label, method, r, diff, ref))
    print(f"\n{'units':<22}{'method':<14}{'search s':>10}{'peak RSS GiB':>14}{'time / streamed':>17}"
          f"{'max |dr|':>12}")
    for label, method, r, diff, ref in rows:
        if "time_s" not in r:
            print(f"{label:<22}{method:<14}{r.get('skipped') or r.get('error')}")
            continue
        ratio = r["time_s"] / ref["time_s"] if "time_s" in ref else float("nan")
        print(f"{label:<22}{method:<14}{r['time_s']:>10.1f}{r['peak_gib']:>14.2f}{ratio:>17.2f}{diff:>12}")

    print("\nMemory of the full-size search (ResNet-50, 224 px, width 1: "
          f"{p_full:,} units, {n} images, {s} sites):")
    biggest = max(int(np.prod(v)) for v in full.values())
    print(f"  materialised images x units, float32      : {n * p_full * 4 / gib:8.1f} GiB")
    print(f"  streamed, every layer in one pass         : {accumulator_bytes(p_full, s) / gib:8.1f} GiB")
    print(f"  streamed, largest layer alone             : {accumulator_bytes(biggest, s) / gib:8.1f} GiB")
    for budget in (8, 16):
        plan = plan_passes({k: int(np.prod(v)) for k, v in full.items()}, s, budget * gib)
        print(f"  passes of the network for a {budget:>2} GiB budget : {len(plan):8d}")


if __name__ == "__main__":
    main()
