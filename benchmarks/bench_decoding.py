"""Benchmark pairwise_decoding_rdm against a loop of scikit-learn SVC fits.

Part 1 (a subset, default 20 conditions x 30 trials x 306 channels x 20 time points x 2
permutations = 7,600 SVMs): our function is timed end to end (shuffles, pseudo-trials,
Gram matrices, all SVMs); the reference is ``SVC(kernel="linear", C=1)`` fitted and
applied once per pair, time point and permutation, in a Python loop, on the *same*
pseudo-trials (the shuffles are redrawn from the same seed). Printed: both times, the
speed-up, the fraction of fits whose two test predictions are identical, and the fraction
of RDM cells (pair x time, averaged over permutations) that are equal.

Part 2 (one full subject of Cichy et al. 2016: 118 conditions, 30 trials, 306 channels,
1101 time points, 100 permutations = 7.6e8 SVMs): the SVC loop is projected from its
per-fit time; ours is *measured* at the full width (118 conditions, all 6903 pairs) on a
few time points with 1 and 5 permutations, which separates the per-permutation cost from
the once-per-time-chunk cost, and projected linearly in time points and permutations
(every time point and permutation is the same amount of independent work).

The data are MEG-like: 60 mixed sources, a common evoked response and condition patterns
in clusters switched on after "stimulus onset" (chance before it, most pairs decodable at
the peak, some pairs hard throughout), source and sensor noise; float32, as the function
then computes the Gram matrices in float32 (the SVMs are always solved in float64).

The machine may be shared: the load average is printed before and after, and CPU time is
printed next to wall time. Run: ``python benchmarks/bench_decoding.py`` (about a minute;
``--help`` for sizes, ``--n-jobs 2`` for two threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from brainalign.decoding import (  # noqa: E402
    _backend,
    _pairwise_decoding_pseudo,
    _pseudo_trials,
    _shuffles,
    pairwise_decoding_rdm,
)

FULL = {"conditions": 118, "trials": 30, "channels": 306, "times": 1101, "permutations": 100}


def make_data(n_cond, n_trials, n_chan, n_times, seed, strength=0.25, dtype=np.float32):
    """(C, trials, channels, times) MEG-like epochs (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_src = 60
    mix = rng.standard_normal((n_chan, n_src)) / np.sqrt(n_src)
    t = np.linspace(-0.1, 1.0, n_times)
    env = np.where(t > 0, (t / 0.12) * np.exp(1 - t / 0.12), 0.0)  # peak at 120 ms
    centers = rng.standard_normal((max(2, n_cond // 5), n_src))
    patterns = centers[rng.integers(len(centers), size=n_cond)] + 0.7 * rng.standard_normal((n_cond, n_src))
    gain = strength * rng.uniform(0.3, 1.5, n_cond)
    src = (3.0 * rng.standard_normal(n_src) + gain[:, None] * patterns)[:, None, :, None] * env
    out = np.empty((n_cond, n_trials, n_chan, n_times), dtype=dtype)
    for c in range(n_cond):  # per condition: bounded memory
        noise = rng.standard_normal((n_trials, n_src, n_times))
        sensor = rng.standard_normal((n_trials, n_chan, n_times))
        out[c] = np.einsum("ds,nst->ndt", mix, src[c] + noise) + sensor
    return out


def pseudo_trials(data, k, n_perm, seed):
    """The pseudo-trials pairwise_decoding_rdm builds, (C, L, channels, times) per permutation."""
    C, N = data.shape[:2]
    orders = _shuffles(np.random.default_rng(seed), n_perm, C, N)
    return [_pseudo_trials(_backend("cpu"), data, orders[p], k, N // k) for p in range(n_perm)]


def svc_loop(pseudo):
    """Decision values (T, P, 2), > 0 = first condition, of one SVC per pair and time."""
    C, L, _, T = pseudo.shape
    rows, cols = np.triu_indices(C, k=1)
    y = np.r_[np.zeros(L - 1), np.ones(L - 1)]
    dec = np.empty((T, rows.size, 2))
    for t in range(T):
        for p, (a, c) in enumerate(zip(rows, cols, strict=True)):
            X = np.r_[pseudo[a, : L - 1, :, t], pseudo[c, : L - 1, :, t]]
            test = np.stack([pseudo[a, L - 1, :, t], pseudo[c, L - 1, :, t]])
            dec[t, p] = -SVC(kernel="linear", C=1).fit(X, y).decision_function(test)
    return dec


def accuracy(dec):
    return 0.5 * ((dec[..., 0] > 0).astype(float) + (dec[..., 1] <= 0).astype(float))


def timed(fn, repeats=1):
    """(result, best wall seconds, CPU seconds of that run)."""
    best = (None, np.inf, np.inf)
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        if w < best[1]:
            best = (out, w, c)
    return best


def fmt_time(seconds):
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conditions", type=int, default=20)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--channels", type=int, default=306)
    ap.add_argument("--times", type=int, default=20)
    ap.add_argument("--permutations", type=int, default=2)
    ap.add_argument("--trials-per-group", type=int, default=5)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--full-times", type=int, default=20, help="time points of the full-width run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    dtype = np.dtype(args.dtype)
    k, n_perm, seed = args.trials_per_group, args.permutations, args.seed
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"n_jobs={args.n_jobs}, {args.dtype}")

    # ---------------------------------------------------------------- part 1: subset
    C, T = args.conditions, args.times
    data = make_data(C, args.trials, args.channels, T, seed, dtype=dtype)
    n_fits = C * (C - 1) // 2 * T * n_perm

    def ours():
        return pairwise_decoding_rdm(data, trials_per_group=k, n_permutations=n_perm, seed=seed,
                                     n_jobs=args.n_jobs)

    acc_ours, w_ours, c_ours = timed(ours, repeats=3)
    pseudo = pseudo_trials(data, k, n_perm, seed)
    decs_svc, w_svc, c_svc = timed(lambda: [svc_loop(p) for p in pseudo])
    stats: dict[str, int] = {}
    decs_ours, w_eng, c_eng = timed(lambda: [_pairwise_decoding_pseudo(p, return_decision=True, _stats=stats)
                                             for p in pseudo], repeats=3)
    same = np.concatenate([((a > 0) == (b > 0)).all(axis=-1).ravel() for a, b in zip(decs_ours, decs_svc,
                                                                                      strict=True)])
    acc_svc = np.mean([accuracy(d) for d in decs_svc], axis=0)
    cells = np.isclose(acc_ours, acc_svc)

    print(f"\nsubset: {C} conditions x {args.trials} trials x {args.channels} channels x {T} times x "
          f"{n_perm} permutations = {n_fits} SVMs")
    print(f"  ours (pairwise_decoding_rdm, best of 3): {w_ours:8.3f} s wall {c_ours:8.3f} s CPU"
          f"  ({w_ours / n_fits * 1e6:.2f} us per SVM)")
    print(f"  ours, SVMs only (same pseudo-trials):    {w_eng:8.3f} s wall {c_eng:8.3f} s CPU"
          f"  ({w_eng / n_fits * 1e6:.2f} us per SVM)")
    print(f"  sklearn SVC loop:                        {w_svc:8.3f} s wall {c_svc:8.3f} s CPU"
          f"  ({w_svc / n_fits * 1e6:.0f} us per SVM)")
    print(f"  speed-up, whole function: {w_svc / w_ours:.0f}x (wall), {c_svc / c_ours:.0f}x (CPU); "
          f"SVMs only: {w_svc / w_eng:.0f}x (wall), {c_svc / c_eng:.0f}x (CPU)")
    print(f"  identical predictions: {same.mean():.5f} of fits ({(~same).sum()} differ); "
          f"all-free fast path {stats['all_free'] / stats['problems']:.3f} of fits")
    print(f"  RDM cells equal to the SVC loop's: {cells.mean():.5f}; max |difference| "
          f"{np.abs(acc_ours - acc_svc).max():.3f}; mean accuracy {acc_ours.mean():.3f} "
          f"(peak time {acc_ours.mean(axis=1).max():.3f})")

    # ---------------------------------------------------------------- part 2: full subject
    Cf, Tf = FULL["conditions"], args.full_times
    full = make_data(Cf, FULL["trials"], FULL["channels"], Tf, seed + 1, dtype=dtype)

    def run_full(n):
        return pairwise_decoding_rdm(full, trials_per_group=k, n_permutations=n, seed=seed,
                                     n_jobs=args.n_jobs)

    run_full(1)  # warm-up: first-touch page faults, BLAS start-up
    runs = {p: timed(lambda p=p: run_full(p), repeats=3)[1] for p in (1, 5)}
    per_perm = max((runs[5] - runs[1]) / 4, 1e-9)
    fixed = max(runs[1] - per_perm, 0.0)
    scale_t = FULL["times"] / Tf
    proj_ours = (fixed + FULL["permutations"] * per_perm) * scale_t
    n_full = Cf * (Cf - 1) // 2 * FULL["times"] * FULL["permutations"]
    proj_svc = w_svc / n_fits * n_full
    print(f"\nfull subject: {Cf} conditions x {FULL['trials']} trials x {FULL['channels']} channels x "
          f"{FULL['times']} times x {FULL['permutations']} permutations = {n_full:.2e} SVMs")
    print(f"  ours measured at full width on {Tf} time points (best of 3): {runs[1]:.2f} s "
          f"(1 permutation), {runs[5]:.2f} s (5) -> {per_perm / Tf * 1e3:.1f} ms per time point "
          f"and permutation "
          f"({per_perm / Tf / (Cf * (Cf - 1) // 2) * 1e6:.2f} us per SVM)")
    print(f"  projected, ours:             {fmt_time(proj_ours)}")
    print(f"  projected, sklearn SVC loop: {fmt_time(proj_svc)}  ({proj_svc / proj_ours:.0f}x ours)")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
