"""Benchmark the Kuzovkin 2018 permutation test against a plain scipy.stats.spearmanr loop.

One subject as in the paper: 250 stimuli, 100 probes, 9 layer RDMs (Euclidean distances of
random features, pixels to fc8 in spirit), 10,000 permutations of the layer RDMs' stimulus
labels. Some probes carry a layer's signal so that both small and large p values occur.

- brainalign: :func:`brainalign.intracranial.permutation_test` on all probes, layers and
  permutations at once (the full 10,000).
- reference: the straightforward loop, probe by probe, permutation by permutation, layer by
  layer, ``scipy.stats.spearmanr(probe_rdm[valid], permuted_layer_rdm[valid])``. It is timed
  on the first ``--ref-permutations`` permutations of the same seed (and optionally on a
  subset of probes) and extrapolated linearly to 10,000 permutations and 100 probes, since
  the full loop takes hours. brainalign is run on that same subset too, and the p values
  of the two must be identical.

``--rejected-probes K`` gives K probes a few rejected trials each (each a different set, so
each its own group); the reference excludes the same pairs and applies the same null
(``--null valid``: the probe's valid stimuli permuted among themselves, ranked once;
``--null all``: all labels permuted and the layer entries re-ranked per permutation).

Peak memory: ``tracemalloc`` around a separate, shorter run of ``permutation_test``
(numpy reports its buffers to it; BLAS scratch space is not included) and ``ru_maxrss``,
the peak resident size of the whole process.

Run: ``python benchmarks/bench_intracranial_permutation.py`` (a few minutes on 2 cores).
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
from scipy import stats
from scipy.spatial.distance import pdist, squareform

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from brainalign.intracranial import permutation_test, stimulus_permutations  # noqa: E402


def make_subject(n_stimuli, n_probes, n_layers, n_rejected_probes, seed):
    """Band power of one subject (NaN = rejected) and condensed layer RDMs."""
    rng = np.random.default_rng(seed)
    feats = [rng.standard_normal((n_stimuli, d)) for d in np.linspace(50, 5, n_layers).astype(int)]
    layers = np.stack([pdist(f) for f in feats])
    x = np.exp(0.3 * rng.standard_normal((n_stimuli, n_probes)))
    carriers = rng.choice(n_probes, size=n_probes // 5, replace=False)
    for p in carriers:  # a fifth of the probes read out one feature of a random layer
        f = feats[rng.integers(n_layers)]
        x[:, p] += 0.5 * f[:, rng.integers(f.shape[1])]
    for p in range(n_rejected_probes):
        x[rng.choice(n_stimuli, size=1 + p % 5, replace=False), p] = np.nan
    return x, layers


def probe_permutation(pi, valid, null):
    """The permutation a probe with valid trials ``valid`` gets from the shared ``pi``."""
    if null == "all" or valid.all():
        return pi
    own = np.arange(len(pi))
    own[np.flatnonzero(valid)] = pi[valid[pi]]  # its valid stimuli, in the order of pi
    return own


def reference(x, layers, perms, probes, null):
    """The straightforward scipy loop: p = (1 + #{null >= observed}) / (1 + n_perm)."""
    n = x.shape[0]
    i, j = np.triu_indices(n, k=1)
    squares = [squareform(d) for d in layers]
    rho = np.zeros((len(probes), len(layers)))
    counts = np.zeros_like(rho)
    for row, p in enumerate(probes):
        rdm = np.abs(x[i, p] - x[j, p])
        ok = ~np.isnan(rdm)
        valid = ~np.isnan(x[:, p])
        for layer, d in enumerate(layers):
            rho[row, layer] = stats.spearmanr(rdm[ok], d[ok]).statistic
        for pi in perms:
            own = probe_permutation(pi, valid, null)
            for layer, sq in enumerate(squares):
                r = stats.spearmanr(rdm[ok], sq[np.ix_(own, own)][i, j][ok]).statistic
                counts[row, layer] += r >= rho[row, layer] - 1e-12
    return rho, (1 + counts) / (1 + len(perms))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stimuli", type=int, default=250)
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--layers", type=int, default=9)
    ap.add_argument("--permutations", type=int, default=10000)
    ap.add_argument("--ref-permutations", type=int, default=20,
                    help="permutations the scipy loop is timed on (default 20)")
    ap.add_argument("--ref-probes", type=int, default=None,
                    help="probes the scipy loop runs on (default: all)")
    ap.add_argument("--rejected-probes", type=int, default=0,
                    help="probes with rejected trials, each a different set (default 0)")
    ap.add_argument("--null", choices=("valid", "all"), default="valid",
                    help="permutation_test's null for probes with rejected trials (default valid)")
    ap.add_argument("--n-jobs", type=int, default=1, help="permutation_test's n_jobs (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    x, layers = make_subject(args.stimuli, args.probes, args.layers, args.rejected_probes, args.seed)
    n_perm, n_ref = args.permutations, args.ref_permutations
    ref_probes = np.arange(args.probes if args.ref_probes is None else min(args.ref_probes, args.probes))
    print(f"Kuzovkin 2018 permutation test: {args.stimuli} stimuli ({layers.shape[1]} pairs), "
          f"{args.probes} probes ({args.rejected_probes} with rejected trials, null={args.null!r}), "
          f"{args.layers} layers, {n_perm} permutations; {os.cpu_count()} CPUs")

    # ---- brainalign, full run
    w0, c0 = time.perf_counter(), time.process_time()
    kw = dict(seed=args.seed, min_valid=3, null=args.null)
    full = permutation_test(x, layers, n_permutations=n_perm, n_jobs=args.n_jobs, **kw)
    t_ours, c_ours = time.perf_counter() - w0, time.process_time() - c0
    print(f"  brainalign, {n_perm} permutations, n_jobs={args.n_jobs}: {t_ours:8.1f} s wall, "
          f"{c_ours:8.1f} s CPU "
          f"({t_ours / n_perm * 1e3:.2f} ms per permutation for all probes and layers)")
    print(f"    significant (p <= 0.001, rho > 0): {int(full.significant.sum())} of {full.rho.size} "
          f"probe-layer pairs; min p {np.nanmin(full.p):.5f}")

    # ---- same permutations, subset: brainalign vs scipy loop
    perms = stimulus_permutations(args.stimuli, n_ref, args.seed)
    assert np.array_equal(perms, stimulus_permutations(args.stimuli, n_perm, args.seed)[:n_ref])
    sub = permutation_test(x, layers, n_permutations=n_ref, **kw)
    w0 = time.perf_counter()
    rho_ref, p_ref = reference(x, layers, perms, ref_probes, args.null)
    t_ref = time.perf_counter() - w0
    t_ref_full = t_ref * (n_perm + 1) / (n_ref + 1) * args.probes / len(ref_probes)
    same_p = np.array_equal(sub.p[ref_probes], p_ref)
    d_rho = float(np.max(np.abs(sub.rho[ref_probes] - rho_ref)))
    print(f"  scipy loop, {n_ref} permutations x {len(ref_probes)} probes: {t_ref:8.1f} s wall; "
          f"extrapolated to {n_perm} permutations x {args.probes} probes: {t_ref_full / 3600:.1f} h")
    print(f"  same permutations (seed {args.seed}, first {n_ref}): identical p values: {same_p}; "
          f"max |rho difference| {d_rho:.1e}")
    print(f"  speed-up (extrapolated scipy loop / brainalign): {t_ref_full / t_ours:,.0f}x")

    # ---- memory
    n_mem = min(n_perm, 500)
    tracemalloc.start()
    permutation_test(x, layers, n_permutations=n_mem, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"  peak memory of permutation_test ({n_mem} permutations; batches bound it, not n_perm): "
          f"{peak / 2**20:.0f} MiB traced; process peak RSS {rss / 2**20:.0f} MiB")
    return t_ref_full / t_ours, same_p


if __name__ == "__main__":
    main()
