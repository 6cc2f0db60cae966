"""Benchmark RidgeGCV against scikit-learn's RidgeCV (GCV mode) on an fMRI-sized problem.

Default problem: 500 training stimuli, 5920 features, 8000 voxels, 7 alphas
(``np.logspace(1, 7, 7)``), Y = X W + noise with a per-voxel signal-to-noise ratio, so
that the chosen alphas spread over the grid as in real data. Both estimators see the same
arrays in the same run, in interleaved rounds (RidgeGCV mse, RidgeGCV pearson, sklearn)
so that load from other jobs on the machine hits all of them alike. Prints median wall
times (RidgeGCV: fit alone, and fit plus the lazily materialised ``coef_``), the median
per-round speed ratio, the fraction of identical alphas, the largest coefficient
difference and peak memory.

Peak memory is measured in a second, separate fit of each estimator under
``tracemalloc`` (numpy reports its buffers to it; BLAS scratch space is not included),
so that the timings are not slowed by tracing. ``ru_maxrss`` is the peak resident size
of the whole process (all fits so far).

Run: ``python benchmarks/bench_ridge.py`` (about a minute on 2 cores, most of it
scikit-learn's fits). ``--help`` lists the sizes, dtype and batch options.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from brainalign.encoding import RidgeGCV  # noqa: E402


def make_data(n, p, t, dtype, seed):
    """Y = X W + noise with a low-rank X and per-voxel SNR from ~0 to ~2."""
    rng = np.random.default_rng(seed)
    # Correlated features, as for network activations: a 100-dim latent space plus noise.
    latent = rng.standard_normal((n, 100))
    X = latent @ rng.standard_normal((100, p)) / 10 + 0.5 * rng.standard_normal((n, p))
    W = rng.standard_normal((p, t)) / np.sqrt(p)
    signal = X @ W
    signal /= signal.std(axis=0)
    snr = rng.uniform(0.0, 2.0, size=t) ** 2
    Y = np.sqrt(snr) * signal + rng.standard_normal((n, t)) + rng.normal(0, 5, size=t)
    return X.astype(dtype), Y.astype(dtype)


def traced_peak(fn):
    """Peak traced allocation (MiB) while ``fn`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="training samples (default 500)")
    parser.add_argument("--p", type=int, default=5920, help="features (default 5920)")
    parser.add_argument("--t", type=int, default=8000, help="targets / voxels (default 8000)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--batch", type=int, default=None, help="n_targets_batch (default all)")
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc fits")
    parser.add_argument("--no-sklearn", action="store_true", help="time RidgeGCV only")
    args = parser.parse_args(argv)

    alphas = np.logspace(1, 7, 7)
    X, Y = make_data(args.n, args.p, args.t, np.dtype(args.dtype), args.seed)
    print(
        f"n={args.n} p={args.p} targets={args.t} alphas={len(alphas)} dtype={args.dtype} "
        f"n_targets_batch={args.batch} rounds={args.repeat}"
    )
    print(f"cpus={os.cpu_count()} load average at start: {os.getloadavg()[0]:.2f}")

    def ours(scoring):
        return lambda: RidgeGCV(alphas, scoring=scoring, n_targets_batch=args.batch).fit(X, Y)

    def sklearn():
        return RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)

    def fit_then_coef(scoring):
        """Fit, then touch coef_ (materialised lazily on the Gram route): two timings."""
        start = time.perf_counter()
        model = ours(scoring)()
        t_fit = time.perf_counter() - start
        _ = model.coef_
        return (t_fit, time.perf_counter() - start), model

    # Interleaved rounds (ours, ours, sklearn) so that load from other jobs hits all alike.
    times = {"mse": [], "pearson": [], "sklearn": []}
    models = {}
    for _ in range(args.repeat):
        models.clear()  # keep at most one round of fitted models alive
        for scoring in ("mse", "pearson"):
            t, models[scoring] = fit_then_coef(scoring)
            times[scoring].append(t)
        if not args.no_sklearn:
            start = time.perf_counter()
            models["sklearn"] = sklearn()
            times["sklearn"].append(time.perf_counter() - start)
    med = {k: np.median(np.asarray(v), axis=0) for k, v in times.items() if v}
    for scoring in ("mse", "pearson"):
        fit, full = med[scoring]
        print(
            f"RidgeGCV(scoring={scoring!r:9s}) fit only {fit:6.2f} s   "
            f"fit + coef_ {full:6.2f} s   (median)"
        )
        values, counts = np.unique(models[scoring].alpha_, return_counts=True)
        print(f"  alpha_ histogram: {dict(zip(values.tolist(), counts.tolist(), strict=True))}")

    if not args.no_sklearn:
        t_sk = med["sklearn"]
        print(f"sklearn RidgeCV(alpha_per_target=True) fit: {t_sk:6.2f} s   (median)")
        for scoring in ("mse", "pearson"):
            # per-round ratios, then the median: robust to load that changes between rounds
            ratios = np.asarray(times["sklearn"])[:, None] / np.asarray(times[scoring])
            fit, full = np.median(ratios, axis=0)
            print(
                f"speed-up vs sklearn, {scoring:8s} fit only {fit:5.1f}x   fit + coef_ {full:5.1f}x"
            )
        sk, m_mse = models["sklearn"], models["mse"]
        same = np.mean(sk.alpha_ == m_mse.alpha_)
        coef_diff = np.abs(sk.coef_ - m_mse.coef_).max() / np.abs(sk.coef_).max()
        intercept_diff = np.abs(sk.intercept_ - m_mse.intercept_).max()
        print(f"alpha_ identical to sklearn (mse): {same:.4f} ({round(same * args.t)}/{args.t})")
        print(f"max |coef diff| / max |coef|:      {coef_diff:.2e}")
        print(f"max |intercept diff|:              {intercept_diff:.2e}")
    models.clear()

    if not args.no_memory:
        peak_fit = traced_peak(ours("mse"))
        peak_full = traced_peak(lambda: ours("mse")().coef_)
        print(f"peak traced memory RidgeGCV(mse), fit only:    {peak_fit:8.0f} MiB")
        print(f"peak traced memory RidgeGCV(mse), fit + coef_: {peak_full:8.0f} MiB")
        if not args.no_sklearn:
            print(f"peak traced memory sklearn RidgeCV:            {traced_peak(sklearn):8.0f} MiB")
        inputs = (X.nbytes + Y.nbytes) / 2**20
        coef_mib = args.t * args.p * X.itemsize / 2**20
        kept_mib = (args.n * args.t * (X.itemsize + 8) + args.n * args.p * 8) / 2**20
        print(
            f"(inputs {inputs:.0f} MiB held outside; coef_ alone is {coef_mib:.0f} MiB; "
            f"loo_predictions_ + dual coefficients + centred X kept by fit: {kept_mib:.0f} MiB)"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f} (other jobs share the CPUs)")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"ru_maxrss (whole process, all fits): {maxrss:8.0f} MiB")


if __name__ == "__main__":
    main()
