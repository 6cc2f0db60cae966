"""Benchmark: streamed extraction of every layer of an untrained VGG16 (224 px).

Runs :func:`brainalign.models.extract_features` over random RGB images and
reports wall time, peak resident memory (``ru_maxrss``), the per-layer widths and,
for contrast, the memory that materialising only the first conv layer would take.
The goal is a peak RSS under 6 GB for 1000 images; materialising conv1 alone
needs 1000 x 64 x 224 x 224 x 4 bytes = 12.8 GB.

    python benchmarks/bench_extraction.py --n-images 200
    nohup python benchmarks/bench_extraction.py > /tmp/bench_vgg16.log 2>&1 &
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from brainalign.models import (
    extract_features,
    feature_layers,
    load_model,
    read_feature_attrs,
    read_model_table,
)

REPO = Path(__file__).resolve().parents[1]


class RandomImages:
    """``n`` random RGB images, made on demand (nothing is held in memory)."""

    def __init__(self, n: int, size: int, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        return Image.fromarray(rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8))


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--model",
        default="vgg16_random",
        help="a model of config/models.csv (default vgg16_random)",
    )
    ap.add_argument("--n-images", type=int, default=1000, help="number of images (default 1000)")
    ap.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=None, help="HDF5 output (default: a temporary file, removed)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    table = read_model_table(REPO / "config" / "models.csv")
    model, transform = load_model(args.model, table, seed=0)
    images = RandomImages(args.n_images, args.size)
    ids = [f"img{i:05d}" for i in range(args.n_images)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tmpdir = None
    if args.out is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="bench_extraction_")
        out = Path(tmpdir.name) / f"{args.model}.h5"
    else:
        out = Path(args.out)

    t0 = time.perf_counter()
    kept = extract_features(
        model,
        transform,
        images,
        ids,
        out,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        model_name=args.model,
    )
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    attrs = read_feature_attrs(out)
    layers = feature_layers(out)
    print(
        f"model {args.model}: {args.n_images} images at {args.size} px, batch {args.batch_size}, "
        f"{os.cpu_count()} CPU cores"
    )
    print(
        f"kept layers: {len(kept)} (dropped as duplicates: "
        f"{dict(zip(attrs['duplicate_layers'], attrs['duplicate_of'], strict=True))})"
    )
    print(f"{'layer':<16}{'depth':>7}{'units':>12}")
    for name, depth, n_units in layers:
        print(f"{name:<16}{depth:7.3f}{n_units:12,d}")
    widest = max(n for _, _, n in layers)
    print(f"SRP components k = {attrs['n_components']}")
    print(f"wall time: {wall:.1f} s ({wall / args.n_images * 1000:.1f} ms per image)")
    print(f"peak RSS: {_gb(peak)} (after loading the model, before extraction: {_gb(rss_before)})")
    print(f"output file: {_gb(out.stat().st_size)}")
    first = layers[0][2]
    contrast = f"{_gb(args.n_images * first * 4)}"
    if args.n_images != 1000:
        contrast += f" (for 1000 images: {_gb(1000 * first * 4)})"
    print(
        f"for contrast, materialising the first layer alone ({first:,} units) for "
        f"{args.n_images} images: {contrast}; widest layer {widest:,} units"
    )
    print(
        f"all layers materialised for {args.n_images} images: "
        f"{_gb(args.n_images * 4 * sum(n for _, _, n in layers))}"
    )
    if tmpdir is not None:
        tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
