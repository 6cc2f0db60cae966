"""One whole model scored end to end (all layers): time, peak memory, projected survey time.

Streams an untrained model (default: timm resnet50, all leaf modules) over ``--images``
procedural demo images at its own input size, projects every layer (SRP), then scores
every layer with cRSA + veRSA against ``--subjects`` demo subjects x ``--voxels`` OTC
voxels (one joint ridge fit per layer), exactly as the workflow's rules do. Prints the
time of both stages, peak RSS, and the projected time of a 224-model survey on this
machine (this model's time x 224: an upper-middle estimate, ResNet-50 being a mid-sized
survey model).

    python benchmarks/bench_model_end_to_end.py [--model resnet50_random] [--images 1000]
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from brainalign.demo import make_images, planted_responses
from brainalign.linking import BrainTarget, LayerFeatures, score_layers
from brainalign.models.extraction import extract_features, feature_layers, read_layer
from brainalign.models.registry import load_model, read_model_table

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50_random")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--voxels", type=int, default=2000)
    args = ap.parse_args()
    arrays, _ = make_images(args.images, seed=0)
    images = [Image.fromarray(a) for a in arrays]
    ids = np.arange(args.images)
    model, transform = load_model(args.model, read_model_table(ROOT / "config/models.csv"), seed=0)
    planted = planted_responses(arrays, subjects=range(1, args.subjects + 1),
                                n_voxels={"OTC": args.voxels}, planted_layers={"OTC": "stage5"})
    targets = [BrainTarget(str(s), "OTC", r["OTC"].mean(axis=0)) for s, r in planted.items()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        t0 = time.perf_counter()
        kept = extract_features(model, transform, images, ids, path, model_name=args.model, progress=False)
        t_extract = time.perf_counter() - t0
        info = feature_layers(path)

        def layers():
            for i, (name, depth, n_units) in enumerate(info):
                d = read_layer(path, name)
                yield LayerFeatures(name=name, depth=depth, index=i, n_units=n_units, srp=d["srp"],
                                    row_mean=d["row_mean"], ones_proj=d["ones_proj"], raw=d["raw"])

        t0 = time.perf_counter()
        scores, _, _ = score_layers(args.model, layers(), targets, n_targets_batch=4096)
        t_score = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    total = t_extract + t_score
    print(f"{args.model}: {len(kept)} layers, {args.images} images, {args.subjects} x {args.voxels} voxels")
    print(f"  extraction {t_extract:.0f} s, scoring {t_score:.0f} s ({t_score / len(kept):.2f} s per layer), "
          f"total {total:.0f} s; peak RSS {peak:.2f} GiB")
    print(f"  projected 224-model survey on this machine: {224 * total / 3600:.1f} h")


if __name__ == "__main__":
    main()
