"""Benchmark: volumetric searchlight RDMs, brainalign vs rsatoolbox, in one run.

Both compute the 1 - Pearson RDM of every searchlight of the same random volume
(118 conditions as in Cichy et al. 2016, radius 3 voxels, a ball-shaped mask) with the
same neighbourhoods: rsatoolbox's defaults (``threshold=1.0``, spheres of voxels strictly
closer than the radius, only centres whose whole sphere is in the mask) equal brainalign's
``min_mask_fraction=1.0``. Reports centres/s of each (neighbour search and RDMs timed
separately; by wall clock and by process CPU time, which a busy shared machine disturbs
less), their ratio, whether centres and spheres are identical, the largest difference
between the two sets of RDMs, and the throughput of brainalign's Spearman-RDM variant and
of its whole ``searchlight_rsa`` (Pearson RDMs + Spearman comparison with 8 model RDMs).

    python benchmarks/bench_searchlight.py                        # ~4,000 centres
    python benchmarks/bench_searchlight.py --rsatoolbox-centres 1000   # rsatoolbox on a subset
    python benchmarks/bench_searchlight.py --mask-radius 9        # fewer centres, quicker

rsatoolbox's progress bars are silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np

from brainalign.searchlight import iter_searchlight_rdms, searchlight_rsa, searchlight_spheres


def _best(fn, repeats):
    """(best wall s, best CPU s, result) over ``repeats`` calls."""
    wall, cpu, out = np.inf, np.inf, None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def _ball_mask(radius: float, margin: int = 4) -> np.ndarray:
    n = int(np.ceil(2 * radius)) + 2 * margin
    grid = np.indices((n, n, n)) - (n - 1) / 2
    return (grid**2).sum(axis=0) < radius**2


def _line(name, seconds_wall, seconds_cpu, n):
    return (f"    {name:<11}{seconds_wall:8.3f} s wall {n / seconds_wall:9.0f} centres/s | "
            f"{seconds_cpu:8.3f} s CPU {n / seconds_cpu:9.0f} centres/s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", type=int, default=118, help="conditions (default 118)")
    ap.add_argument("--radius", type=float, default=3, help="searchlight radius in voxels (default 3)")
    ap.add_argument("--mask-radius", type=float, default=12.5,
                    help="radius of the ball mask in voxels (default 12.5: ~4,000 centres)")
    ap.add_argument("--batch-size", type=int, default=32, help="brainalign centres per batch")
    ap.add_argument("--repeats", type=int, default=3, help="brainalign repeats (best of)")
    ap.add_argument("--rsatoolbox-centres", type=int, default=None,
                    help="time rsatoolbox's RDMs on the first N centres only (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from rsatoolbox.util.searchlight import get_searchlight_RDMs, get_volume_searchlight

    rng = np.random.default_rng(args.seed)
    mask = _ball_mask(args.mask_radius)
    n_cond = args.conditions
    volumes = rng.standard_normal((n_cond, *mask.shape))
    print(f"Searchlight benchmark: {n_cond} conditions, grid {mask.shape}, mask {int(mask.sum())} "
          f"voxels, radius {args.radius:g} voxels (distance < radius), 1 - Pearson RDMs")

    # ---- brainalign
    w_sph, c_sph, spheres = _best(
        lambda: searchlight_spheres(mask, radius_vox=args.radius, min_mask_fraction=1.0), args.repeats
    )
    n_c = spheres.n_centres

    def ours(metric="pearson"):
        out = np.empty((n_c, n_cond * (n_cond - 1) // 2))
        for sl, rdms in iter_searchlight_rdms(volumes, spheres, metric=metric, batch_size=args.batch_size):
            out[sl] = rdms
        return out

    w_ours, c_ours, rdms_ours = _best(ours, args.repeats)
    print(f"  brainalign: {n_c} centres, sphere sizes {spheres.sizes.min()}-{spheres.sizes.max()} "
          f"voxels, batch {args.batch_size}, best of {args.repeats}")
    print(_line("neighbours", w_sph, c_sph, n_c))
    print(_line("RDMs", w_ours, c_ours, n_c))

    # ---- rsatoolbox
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        w_rsph, c_rsph, (centers, neighbors) = _best(
            lambda: get_volume_searchlight(mask, radius=args.radius, threshold=1.0), 1
        )
    n_r = len(centers) if args.rsatoolbox_centres is None else min(args.rsatoolbox_centres, len(centers))
    data_2d = volumes.reshape(n_cond, -1)
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        w_rsa, c_rsa, sl = _best(
            lambda: get_searchlight_RDMs(data_2d, centers[:n_r], neighbors[:n_r], np.arange(n_cond),
                                         method="correlation", verbose=False), 1
        )
    print(f"  rsatoolbox: {len(centers)} centres (RDMs timed on {n_r}), one run")
    print(_line("neighbours", w_rsph, c_rsph, len(centers)))
    print(_line("RDMs", w_rsa, c_rsa, n_r))

    # ---- agreement and ratio
    same_centres = np.array_equal(np.asarray(centers), spheres.centre_indices)
    same_spheres = same_centres and all(
        np.array_equal(np.sort(nb), spheres.sphere(i)) for i, nb in enumerate(neighbors)
    )
    diff = float(np.max(np.abs(sl.dissimilarities - rdms_ours[:n_r])))
    print(f"  same centres: {same_centres}; same spheres: {same_spheres}; "
          f"max |RDM difference| on {n_r} centres: {diff:.2e}")
    ratio_wall = (n_c / w_ours) / (n_r / w_rsa)
    ratio_cpu = (n_c / c_ours) / (n_r / c_rsa)
    print(f"  speed-up, RDMs: {ratio_wall:.1f}x wall, {ratio_cpu:.1f}x CPU")

    # ---- brainalign extras
    w_sp, c_sp, _ = _best(lambda: ours("spearman"), 1)
    print(_line("brainalign 1 - Spearman RDMs:", w_sp, c_sp, n_c).replace("    ", "  ", 1))
    models = rng.random((8, n_cond * (n_cond - 1) // 2))
    w_map, c_map, _ = _best(
        lambda: searchlight_rsa(volumes, mask, models, radius_vox=args.radius, min_mask_fraction=1.0,
                                compare="spearman", batch_size=args.batch_size), 1)
    print(_line("brainalign searchlight_rsa, Pearson RDMs vs 8 models (Spearman), incl. neighbours:",
                w_map, c_map, n_c).replace("    ", "  ", 1))
    return ratio_wall


if __name__ == "__main__":
    main()
