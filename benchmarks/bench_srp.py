"""Benchmark: sparse random projection matrix generation and projection.

Times, in one run, the generation of the (k, p) SRP matrix for one wide layer by
brainalign's vectorised generator and by scikit-learn's SparseRandomProjection
(same law, k = 5920 = johnson_lindenstrauss_min_dim(1000, eps=0.1)), and the
projection of one batch of images' features.

    python benchmarks/bench_srp.py                 # p = 800,000, k = 5920, batch 32
    python benchmarks/bench_srp.py --p 3211264     # VGG16 conv1 width at 224 px
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from brainalign.projection import StreamingSRP, jl_min_dim


def _time(fn, repeats=1):
    best = np.inf
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--p", type=int, default=800_000, help="layer width (default 800000)")
    ap.add_argument(
        "--k", type=int, default=None, help="components (default JL dim for 1000 stimuli)"
    )
    ap.add_argument("--batch", type=int, default=32, help="images per projected batch (default 32)")
    ap.add_argument(
        "--repeats", type=int, default=3, help="repeats for brainalign timings (best of)"
    )
    ap.add_argument("--skip-sklearn", action="store_true", help="do not time scikit-learn")
    args = ap.parse_args(argv)

    p = args.p
    k = args.k or jl_min_dim(1000, 0.1)
    print(f"SRP benchmark: p = {p:,} features, k = {k} components, density = 1/sqrt(p)")

    def ours():
        srp = StreamingSRP(k, seed=0)
        return srp.matrix(p)

    t_ours, R = _time(ours, args.repeats)
    print(
        f"  brainalign generator : {t_ours:8.3f} s   nnz = {R.nnz:,}  "
        f"({R.nnz / (k * p):.2e} of entries)"
    )

    if not args.skip_sklearn:
        from sklearn.random_projection import SparseRandomProjection

        def theirs():
            srp = SparseRandomProjection(n_components=k, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                srp.fit(np.zeros((1, p), dtype=np.float32))
            return srp.components_

        t_sk, S = _time(theirs, 1)
        print(f"  scikit-learn         : {t_sk:8.3f} s   nnz = {S.nnz:,}")
        print(f"  speed-up             : {t_sk / t_ours:8.1f} x")

    X = np.random.default_rng(0).standard_normal((args.batch, p), dtype=np.float32)
    srp = StreamingSRP(k, seed=0)
    srp.matrix(p)
    srp.transform(X[:1])  # builds the cached torch view
    t_proj, Y = _time(lambda: srp.transform(X), args.repeats)
    print(
        f"  projection of {args.batch} x {p:,} -> {Y.shape}: {t_proj:.3f} s (brainalign, torch CSR)"
    )
    R = srp.matrix(p)
    t_sp, Y2 = _time(lambda: (R @ np.ascontiguousarray(X.T)).T, 1)
    print(
        f"  same product with scipy CSR: {t_sp:.3f} s; "
        f"max |difference| = {np.abs(Y - Y2).max():.3g}"
    )


if __name__ == "__main__":
    main()
