"""Batched exact two-class classifiers on stacks of tiny Gram matrices.

The engine behind :func:`brainalign.decoding.pairwise_decoding_rdm`. Every problem is one
pair of conditions (A, B) at one time point: ``m`` training pseudo-trials per class and
one test pseudo-trial per class. Problems arrive as inner products with the batch axis
*last* (each elementwise operation then runs over ``B`` contiguous numbers), laid out as
:func:`svm_layout` (SVM) or :func:`k12_layout` (LDA, correlation) say. Each classifier
returns the decision values of the two test pseudo-trials, shape ``(2, B)``; ``f > 0``
means class A. A is LibSVM's first label, so a tie (``f == 0``) is class B, as in
scikit-learn's ``SVC``.

- :func:`svm_decision` solves the soft-margin dual of LibSVM's C-SVC::

      min_a  1/2 a'Qa - 1'a   s.t.  y'a = 0,  0 <= a_i <= C,   Q_ij = y_i y_j K_ij

  exactly. Fast path: MEG pseudo-trials (10 points in ~300 dimensions) are almost always
  separable with every training point a free support vector; that solution is one
  Cholesky factorisation of the bordered matrix ``[K; 1'; y'; k_test']`` per problem,
  all problems at once, and is accepted when every multiplier lies in ``[0, C]``. The
  rest go to :func:`svm_fit`: a primal-dual active-set method (Hintermueller, Ito &
  Kunisch 2003) that solves the equality-constrained KKT system on a guessed free set F
  (multipliers at the bounds fixed), moves the indices that violate the KKT conditions
  and repeats until none moves. Problems whose rounds fail (a singular ``K_FF``, as with
  fewer channels than pseudo-trials) or cycle are handed to a batched SMO with LibSVM's
  second-order working-set selection, run to LibSVM's tolerance to find the active sets,
  then polished by exact rounds; the few left after that are run by SMO to a tight
  tolerance. The intercept is LibSVM's (``calculate_rho``): exact from the free support
  vectors or, when no multiplier is strictly inside ``(0, C)``, the midpoint of the
  feasible interval.
- :func:`lda_decision`: shrinkage LDA, Ledoit-Wolf shrinkage of the pooled within-class
  covariance towards a scaled identity, computed in kernel form (Woodbury).
- :func:`correlation_decision`: nearest class mean by Pearson correlation (expects the
  Gram matrix of channel-centred pseudo-trials).

Everything solves in float64. The code is written once for numpy and torch (any device)
through :class:`Backend`, which holds the few operations whose spellings differ.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Backend",
    "svm_layout",
    "k12_layout",
    "svm_decision",
    "svm_finish",
    "svm_fit",
    "lda_decision",
    "correlation_decision",
    "cholesky",
]

# Tolerances of the exact solver: margins in margin units, multipliers relative to the
# largest multiplier of the problem, pivots relative to the mean diagonal of K.
GRAD_TOL = 1e-9
ALPHA_RTOL = 1e-9
PIVOT_RTOL = 1e-13
SMO_LOOSE_TOL = 1e-3  # LibSVM's default eps: only to find the active sets
SMO_TIGHT_TOL = 1e-10
SMO_MAX_ITER = 100_000
MAX_PDAS = 30
TAU = 1e-12  # LibSVM's TAU for non-positive curvature in SMO


class Backend:
    """numpy (``device="cpu"``) or torch on ``device``: the operations spelled differently."""

    def __init__(self, device: str = "cpu", *, torch_cpu: bool = False):
        self.is_torch = device != "cpu" or torch_cpu
        if self.is_torch:
            import torch

            self.xp = torch
            self.device = torch.device(device)
            self._dtypes = {"float64": torch.float64, "float32": torch.float32,
                            "bool": torch.bool, "int64": torch.int64}
        else:
            self.xp = np
            self.device = "cpu"
            self._dtypes = {"float64": np.float64, "float32": np.float32, "bool": bool,
                            "int64": np.int64}

    def asarray(self, a, dtype: str | None = None):
        """From numpy (or a scalar list) to this backend, optionally cast."""
        if self.is_torch:
            t = self.xp.as_tensor(np.asarray(a), device=self.device)
            return t if dtype is None else t.to(self._dtypes[dtype])
        return np.asarray(a) if dtype is None else np.asarray(a, dtype=self._dtypes[dtype])

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy() if self.is_torch else np.asarray(a)

    def astype(self, a, dtype: str):
        return a.to(self._dtypes[dtype]) if self.is_torch else a.astype(self._dtypes[dtype], copy=False)

    def zeros(self, shape, dtype: str = "float64"):
        if self.is_torch:
            return self.xp.zeros(shape, dtype=self._dtypes[dtype], device=self.device)
        return np.zeros(shape, dtype=self._dtypes[dtype])

    def empty(self, shape, dtype: str = "float64"):
        if self.is_torch:
            return self.xp.empty(shape, dtype=self._dtypes[dtype], device=self.device)
        return np.empty(shape, dtype=self._dtypes[dtype])

    def arange(self, n: int):
        return self.xp.arange(n, device=self.device) if self.is_torch else np.arange(n)

    def take_along(self, a, idx, axis: int):
        if self.is_torch:
            return self.xp.take_along_dim(a, idx, axis)
        return np.take_along_axis(a, idx, axis)

    def take_flat(self, a, idx):
        """``a.ravel()[idx]``, shaped like ``idx``."""
        return self.xp.take(a, idx) if self.is_torch else np.take(a, idx)

    def flatnonzero(self, mask):
        return self.xp.nonzero(mask).flatten() if self.is_torch else np.flatnonzero(mask)

    def permute(self, a, axes):
        return a.permute(*axes) if self.is_torch else a.transpose(axes)

    def copy(self, a):
        return a.clone() if self.is_torch else a.copy()


def split_indices(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the training and test pseudo-trials in the ``2(m + 1)`` ordering."""
    L = m + 1
    train = np.r_[np.arange(m), L + np.arange(m)]
    return train, np.array([m, L + m])


def _labels(be: Backend, m: int):
    """``(n, 1)`` label vector: ``+1`` for class A's ``m`` points, ``-1`` for class B's."""
    return be.asarray(np.r_[np.ones(m), -np.ones(m)][:, None], "float64")


# ----------------------------------------------------------------------------- linear algebra
# A lower-triangular factor is kept as a list of columns: ``Lc[j]`` has shape (R - j, B),
# rows j .. R - 1 of column j (the diagonal first). Rows n .. R - 1 are a border.
def cholesky(be: Backend, cols, n: int, scale):
    """Cholesky factorisation of ``n x n`` SPD matrices given column by column, bordered.

    ``cols[j]`` (R - j, B) is column ``j`` of ``[M; R']`` from the diagonal down: the lower
    triangle of the SPD matrix ``M`` (n, n) followed by ``R - n`` border rows. Returns the
    columns of ``[L; Z']`` with ``L L' = M`` and ``Z = L^-1 R`` (the forward solves of the
    border rows), and the dropped rows (n, B): a pivot at or below ``PIVOT_RTOL * scale``
    (a row depending linearly on the rows before it) is factored as ``scale * e_j``
    instead, which leaves the other rows' factorisation unchanged.
    """
    xp = be.xp
    Lc = []
    dropped = be.zeros((n, cols[0].shape[-1]), "bool")
    floor = PIVOT_RTOL * scale
    for j in range(n):
        s = be.copy(cols[j])  # M[j:, j] - L[j:, :j] L[j, :j]
        for k in range(j):
            lk = Lc[k]
            s -= lk[j - k :] * lk[j - k]
        bad = ~(s[0] > floor)  # also catches NaN
        if bool(bad.any()):
            dropped[j] = bad
            s[0] = xp.where(bad, scale, s[0])
            s[1:] = xp.where(bad, 0.0, s[1:])
            for k in range(j):
                Lc[k][j - k] = xp.where(bad, 0.0, Lc[k][j - k])
        s[0] = xp.sqrt(s[0])
        s[1:] *= 1.0 / s[0]
        Lc.append(s)
    return Lc, dropped


def border(be: Backend, Lc, n: int, r: int):
    """Row ``n + r`` of the bordered factor, (n, B): ``L^-1`` applied to border row ``r``."""
    return be.xp.stack([Lc[j][n + r - j] for j in range(n)])


def forward_solve(be: Backend, Lc, rhs, n: int):
    """Solve ``L z = rhs`` for ``rhs`` (n, ...rest, B)."""
    z = be.empty(rhs.shape)
    for i in range(n):
        acc = be.copy(rhs[i])
        for k in range(i):
            acc -= Lc[k][i - k] * z[k]
        z[i] = acc / Lc[i][0]
    return z


def back_solve(be: Backend, Lc, z, n: int):
    """Solve ``L' x = z`` for ``z`` (n, ...rest, B)."""
    x = be.empty(z.shape)
    for i in range(n - 1, -1, -1):
        acc = be.copy(z[i])
        for k in range(i + 1, n):
            acc -= Lc[i][k - i] * x[k]
        x[i] = acc / Lc[i][0]
    return x


def cho_solve(be: Backend, Lc, rhs, n: int):
    """Solve ``L L' x = rhs`` for ``rhs`` (n, ...rest, B)."""
    return back_solve(be, Lc, forward_solve(be, Lc, rhs, n), n)


def columns(A, n: int):
    """The column list :func:`cholesky` takes, from a full (R, n, B) array."""
    return [A[j:, j] for j in range(n)]


def _matvec(be: Backend, K, v):
    """``K v`` for every problem: (n, n, B) x (n, B) -> (n, B)."""
    return be.xp.einsum("ijb,jb->ib", K, v)


# ----------------------------------------------------------------------------- SVM
def _rho_bounds(be: Backend, yG, y, at_upper, at_lower):
    """LibSVM's ``ub``, ``lb`` from ``yG = y * gradient`` (used when no multiplier is free)."""
    xp = be.xp
    pos = y > 0
    to_ub = (at_upper & ~pos) | (at_lower & pos)
    to_lb = (at_upper & pos) | (at_lower & ~pos)
    ub = xp.amin(xp.where(to_ub, yG, np.inf), axis=0)
    lb = xp.amax(xp.where(to_lb, yG, -np.inf), axis=0)
    return ub, lb


def _kkt_step(be: Backend, K, y, C, free, upper, scale):
    """Solve the KKT system with ``a_F`` free, ``a_U = C`` and the rest ``0``, exactly.

    Rows of ``K_FF`` that depend linearly on earlier ones move from F to the lower bound.
    Returns ``beta = y * a`` (n, B), the intercept ``b`` (B,), the training decision values
    ``f`` (n, B), ``ok`` (B,) (the step is usable) and the free set actually used.
    """
    xp = be.xp
    n, _, B = K.shape
    beta_u = xp.where(upper, C * y, 0.0)  # (n, B)
    both = free[:, None, :] & free[None, :, :]
    # Adding scale * 1_F 1_F' to K_FF changes only b (by scale * 1'beta_F, which the
    # constraint fixes) and makes the system definite when K is singular along 1, as it
    # is for points centred on their own mean.
    A = xp.where(both, K + scale, 0.0)
    diag = be.arange(n)
    A[diag, diag] += xp.where(free, 0.0, scale)
    Lc, dropped = cholesky(be, columns(A, n), n, scale)
    free = free & ~dropped  # linearly dependent rows leave the free set (a = 0)
    rhs = be.empty((n, 2, B))
    rhs[:, 0] = be.astype(free, "float64")
    rhs[:, 1] = xp.where(free, y - _matvec(be, K, beta_u), 0.0)
    sol = cho_solve(be, Lc, rhs, n)
    u, v = sol[:, 0], sol[:, 1]  # K_FF u = 1_F,  K_FF v = y_F - K_FU beta_U
    has_free = free.any(axis=0)
    su = u.sum(axis=0)
    ok = ~has_free | (su > 0)
    s_u = beta_u.sum(axis=0)
    # 1'beta = 0 fixes b: sum(v - b u) + sum(beta_U) = 0
    b = (v.sum(axis=0) + s_u) / xp.where(has_free & (su > 0), su, 1.0)
    beta = xp.where(free, v - b * u, beta_u)
    b = b - scale * s_u
    Kb = _matvec(be, K, beta)
    if not bool(has_free.all()):  # no free multiplier: the midpoint of the feasible interval
        ub, lb = _rho_bounds(be, Kb - y, y, upper, ~free & ~upper)
        feasible = (lb <= ub + GRAD_TOL) & (xp.abs(s_u) <= 0.5 * C)
        b = xp.where(has_free, b, -0.5 * (xp.where(feasible, ub, 0.0) + xp.where(feasible, lb, 0.0)))
        ok = ok & (has_free | feasible)
    ok = ok & xp.isfinite(b) & xp.isfinite(beta).all(axis=0)
    return beta, b, Kb + b, ok, free


def _pdas_update(be: Backend, beta, f, y, C, free, upper):
    """New (free, upper) sets and a converged flag per problem."""
    xp = be.xp
    alpha = y * beta
    tol_a = ALPHA_RTOL * xp.amax(xp.abs(alpha), axis=0)
    g = y * f - 1.0  # >= 0 wanted at a = 0, <= 0 at a = C, 0 in between (margin units)
    lower = ~free & ~upper
    go_lower = (free & (alpha < -tol_a)) | (lower & (g >= -GRAD_TOL))
    go_upper = (free & (alpha > C + tol_a)) | (upper & (g <= GRAD_TOL))
    new_free = ~go_lower & ~go_upper
    converged = ((new_free == free) & (go_upper == upper)).all(axis=0)
    return new_free, go_upper, converged


def _pdas(be: Backend, K, y, C, free, upper, scale, max_iter):
    """Active-set rounds from the sets ``free``/``upper``.

    Returns ``beta`` (n, B), ``b`` (B,) and ``solved`` (B,); unsolved columns are zero.
    """
    n, _, B = K.shape
    beta = be.zeros((n, B))
    b = be.zeros(B)
    solved = be.zeros(B, "bool")
    todo = be.arange(B)
    for _ in range(max_iter):
        if todo.shape[0] == 0:
            break
        with np.errstate(invalid="ignore", divide="ignore"):  # failed steps are flagged
            be_, bb, f, ok, used = _kkt_step(be, K, y, C, free, upper, scale)
        new_free, new_upper, conv = _pdas_update(be, be_, f, y, C, used, upper)
        conv = conv & ok
        hit = todo[conv]
        beta[:, hit], b[hit], solved[hit] = be_[:, conv], bb[conv], True
        # a failed step, or one asking again for the rows it just dropped, leaves the rounds
        stuck = ((new_free == free) & (new_upper == upper)).all(axis=0)
        keep = ~conv & ok & ~stuck
        todo = todo[keep]
        K, scale = K[:, :, keep], scale[keep]
        free, upper = new_free[:, keep], new_upper[:, keep]
    return beta, b, solved


def _smo(be: Backend, K, y, C, tol, alpha=None, G=None, max_iter=SMO_MAX_ITER):
    """LibSVM's SMO (WSS2, no shrinking) on every problem at once; returns ``alpha``, ``G``.

    Starts from ``alpha = 0`` or from a feasible ``alpha`` with its gradient ``G = Qa - 1``.
    """
    xp = be.xp
    n, _, B = K.shape
    if alpha is None:
        alpha = be.zeros((n, B))
        G = be.zeros((n, B)) - 1.0
    # working copies of the unfinished problems; finished ones are written back
    active = be.arange(B)
    a, g, Ka = be.copy(alpha), be.copy(G), K
    qd = xp.einsum("iib->ib", K)
    ypos = y > 0
    yv = y[:, 0]
    for _ in range(max_iter):
        yG = y * g
        up = (ypos & (a < C)) | (~ypos & (a > 0))
        low = (ypos & (a > 0)) | (~ypos & (a < C))
        score_up = xp.where(up, -yG, -np.inf)
        i = score_up.argmax(axis=0)
        gmax = be.take_along(score_up, i[None], 0)[0]
        gmax2 = xp.amax(xp.where(low, yG, -np.inf), axis=0)
        cols = be.arange(active.shape[0])
        # second-order choice of j among "low" with -yG_t < gmax
        b_it = gmax[None] + yG
        a_it = qd[i, cols][None] + qd - 2.0 * Ka[i, :, cols].T
        a_it = xp.where(a_it > 0, a_it, TAU)
        cand = low & (b_it > 0)
        obj = xp.where(cand, -(b_it * b_it) / a_it, np.inf)
        j = obj.argmin(axis=0)
        done = (gmax + gmax2 < tol) | ~cand.any(axis=0)
        if bool(done.any()):
            alpha[:, active[done]], G[:, active[done]] = a[:, done], g[:, done]
            keep = ~done
            active, i, j = active[keep], i[keep], j[keep]
            a, g, Ka, qd = a[:, keep], g[:, keep], Ka[:, :, keep], qd[:, keep]
            cols = be.arange(active.shape[0])
            if active.shape[0] == 0:
                return alpha, G
        yi, yj = yv[i], yv[j]
        ai, aj, gi, gj = a[i, cols], a[j, cols], g[i, cols], g[j, cols]
        qij = yi * yj * Ka[i, j, cols]
        qii, qjj = qd[i, cols], qd[j, cols]
        # y_i != y_j
        quad = qii + qjj + 2.0 * qij
        delta = (-gi - gj) / xp.where(quad > 0, quad, TAU)
        diff = ai - aj
        ai1, aj1 = ai + delta, aj + delta
        c = (diff > 0) & (aj1 < 0)
        ai1, aj1 = xp.where(c, diff, ai1), xp.where(c, 0.0, aj1)
        c = (diff <= 0) & (ai1 < 0)
        ai1, aj1 = xp.where(c, 0.0, ai1), xp.where(c, -diff, aj1)
        c = (diff > 0) & (ai1 > C)
        ai1, aj1 = xp.where(c, C, ai1), xp.where(c, C - diff, aj1)
        c = (diff <= 0) & (aj1 > C)
        ai1, aj1 = xp.where(c, C + diff, ai1), xp.where(c, C, aj1)
        # y_i == y_j
        quad = qii + qjj - 2.0 * qij
        delta = (gi - gj) / xp.where(quad > 0, quad, TAU)
        tot = ai + aj
        ai2, aj2 = ai - delta, aj + delta
        c = (tot > C) & (ai2 > C)
        ai2, aj2 = xp.where(c, C, ai2), xp.where(c, tot - C, aj2)
        c = (tot <= C) & (aj2 < 0)
        ai2, aj2 = xp.where(c, tot, ai2), xp.where(c, 0.0, aj2)
        c = (tot > C) & (aj2 > C)
        ai2, aj2 = xp.where(c, tot - C, ai2), xp.where(c, C, aj2)
        c = (tot <= C) & (ai2 < 0)
        ai2, aj2 = xp.where(c, 0.0, ai2), xp.where(c, tot, aj2)
        other = yi != yj
        new_i, new_j = xp.where(other, ai1, ai2), xp.where(other, aj1, aj2)
        # G += Q[:, i] da_i + Q[:, j] da_j  with  Q[:, i] = y y_i K[:, i]
        g = g + y * (Ka[:, i, cols] * (yi * (new_i - ai)) + Ka[:, j, cols] * (yj * (new_j - aj)))
        a[i, cols], a[j, cols] = new_i, new_j
    alpha[:, active], G[:, active] = a, g  # max_iter reached
    return alpha, G


def _sets(be: Backend, alpha, C):
    tol_a = ALPHA_RTOL * be.xp.amax(alpha, axis=0)
    at_upper = alpha >= C - tol_a
    at_lower = alpha <= tol_a
    return ~at_upper & ~at_lower, at_upper, at_lower


def svm_fit(be: Backend, K, y, C: float = 1.0, *, free=None, upper=None, scale=None, stats=None):
    """Exact C-SVC dual for a stack of Gram matrices ``K`` (n, n, B).

    Starts the active-set rounds from ``free``/``upper`` (default: all free). Returns
    ``beta`` (n, B), the signed dual coefficients ``y * alpha`` (LibSVM's ``dual_coef_``)
    and ``b`` (B,), the intercept (``-rho``): the decision value is ``f(x) = beta'k(x) + b``.
    ``stats`` (a dict) counts the problems that needed each fallback.
    """
    xp = be.xp
    n, _, B = K.shape
    if scale is None:
        scale = xp.einsum("iib->b", K) / n
        scale = xp.where(scale > 0, scale, 1.0)
    if free is None:
        free = be.zeros((n, B)) == 0
        upper = be.zeros((n, B), "bool")
    beta, b, solved = _pdas(be, K, y, C, free, upper, scale, MAX_PDAS)
    rest = be.flatnonzero(~solved)
    n_rest = int(rest.shape[0])
    if stats is not None:
        stats["smo"] = stats.get("smo", 0) + n_rest
    if n_rest:
        _finish_with_smo(be, K, y, C, scale, rest, beta, b, stats)
    return beta, _libsvm_intercept(be, K, y, C, beta, b)


def _libsvm_intercept(be: Backend, K, y, C, beta, b):
    """LibSVM's intercept where no multiplier is strictly inside ``(0, C)``.

    The optimal ``b`` is then any point of an interval; LibSVM's ``calculate_rho`` takes
    its midpoint. (With a free multiplier ``b`` is unique and already exact.)
    """
    xp = be.xp
    fr, up, lo = _sets(be, y * beta, C)
    has_free = fr.any(axis=0)
    if bool(has_free.all()):
        return b
    ub, lb = _rho_bounds(be, _matvec(be, K, beta) - y, y, up, lo)
    mid = 0.5 * (xp.where(xp.isfinite(ub), ub, 0.0) + xp.where(xp.isfinite(lb), lb, 0.0))
    return xp.where(has_free, b, -mid)


def _finish_with_smo(be: Backend, K, y, C, scale, rest, beta, b, stats):
    """Problems ``rest`` the active-set rounds left: fill ``beta[:, rest]``, ``b[rest]``."""
    xp = be.xp
    # SMO to LibSVM's own tolerance finds the active sets; exact rounds from there.
    Kr, sr = K[:, :, rest], scale[rest]
    alpha, G = _smo(be, Kr, y, C, SMO_LOOSE_TOL)
    fr, up, _ = _sets(be, alpha, C)
    be_, bb, ok = _pdas(be, Kr, y, C, fr, up, sr, MAX_PDAS)
    beta[:, rest[ok]], b[rest[ok]] = be_[:, ok], bb[ok]
    bad = ~ok
    n_bad = int(bad.sum())
    if stats is not None:
        stats["smo_tight"] = stats.get("smo_tight", 0) + n_bad
    if n_bad:  # last resort: SMO to a tight tolerance and LibSVM's intercept
        alpha, G = _smo(be, Kr[:, :, bad], y, C, SMO_TIGHT_TOL, alpha[:, bad], G[:, bad])
        fr, up, lo = _sets(be, alpha, C)
        yG = y * G
        nfree = fr.sum(axis=0)
        ub, lb = _rho_bounds(be, yG, y, up, lo)
        mid = 0.5 * (xp.where(xp.isfinite(ub), ub, 0.0) + xp.where(xp.isfinite(lb), lb, 0.0))
        mean_free = xp.where(fr, yG, 0.0).sum(axis=0) / xp.where(nfree > 0, nfree, 1)
        rho = xp.where(nfree > 0, mean_free, mid)
        idx = rest[bad]
        beta[:, idx], b[idx] = y * alpha, -rho


def svm_layout(m: int) -> list:
    """The entries of the packed bordered matrix :func:`svm_decision` takes.

    ``n = 2m`` training points ``[A_0 .. A_{m-1}, B_0 .. B_{m-1}]`` (columns) and rows
    ``[training points, "one", "y", A_test, B_test]``; the lower triangle of the training
    Gram matrix and the four border rows, column by column from the diagonal down: a list
    of ``(row point, column point)`` with points ``(side, l)`` (side 0: the pair's first
    condition, 1: its second; pseudo-trial ``l``, ``m`` being the test one) or the
    constants ``"one"`` (1) and ``"y"`` (+1 for side 0, -1 for side 1).
    """
    train = [(0, l) for l in range(m)] + [(1, l) for l in range(m)]
    rows = train + ["one", "y", (0, m), (1, m)]
    return [(rows[i], train[j]) for j in range(2 * m) for i in range(j, len(rows))]


def _packed_columns(packed, n: int, R: int):
    offsets = np.cumsum([0] + [R - j for j in range(n)])
    return [packed[offsets[j] : offsets[j + 1]] for j in range(n)]


def svm_decision(be: Backend, packed, m: int, C: float = 1.0, stats=None, pending=None):
    """Test decision values (2, B) of LibSVM's C-SVC trained on each problem.

    ``packed`` (n_entries, B) holds each problem's training Gram matrix ``K`` bordered by
    rows ``[1, y, k(A_test, .), k(B_test, .)]``, laid out as :func:`svm_layout` says.

    Fast path, all problems at once: "every training point is a free support vector".
    The Cholesky factorisation of the bordered matrix gives ``z = L^-1 [1, y, k_t]`` and
    ``b = z_1'z_y / z_1'z_1``, ``beta = L^-T (z_y - b z_1)``,
    ``f_t = z_t'z_y - b (z_t'z_1 - 1)``. Problems where a multiplier then leaves ``[0, C]``,
    none is strictly inside, or ``K`` is singular go to :func:`svm_fit`: now, or, when a
    list ``pending`` is given, later (appended to it; their ``f`` is filled in place by
    :func:`svm_finish`), so that the few problems of many batches share one call.
    """
    xp = be.xp
    n, R = 2 * m, 2 * m + 4
    B = packed.shape[-1]
    y = _labels(be, m)
    cols = _packed_columns(packed, n, R)
    scale = sum(c[0] for c in cols) / n
    scale = xp.where(scale > 0, scale, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # singular K: caught below
        f, alpha, dropped = _all_free(be, cols, n, scale, y)
    tol_a = ALPHA_RTOL * xp.amax(xp.abs(alpha), axis=0)
    ok = ~dropped.any(axis=0) & ((alpha >= -tol_a) & (alpha <= C + tol_a)).all(axis=0)
    # b is LibSVM's only if some multiplier is strictly free (else: the midpoint rule)
    ok = ok & ((alpha > tol_a) & (alpha < C - tol_a)).any(axis=0) & xp.isfinite(f).all(axis=0)
    if stats is not None:
        stats["problems"] = stats.get("problems", 0) + B
        stats["all_free"] = stats.get("all_free", 0) + int(ok.sum())
    if not bool(ok.all()):
        rest = be.flatnonzero(~ok)
        K, kt = _unpack(be, packed[:, rest], n, R)
        a_r, t_r = alpha[:, rest], tol_a[rest]
        free = (a_r > t_r) & (a_r < C - t_r) & ~dropped[:, rest]
        upper = (a_r >= C - t_r) & ~dropped[:, rest]
        job = {"f": f, "rest": rest, "K": K, "kt": kt, "free": free, "upper": upper,
               "scale": scale[rest]}
        if pending is None:
            svm_finish(be, [job], m, C, stats)
        else:
            pending.append(job)
    return f


def svm_finish(be: Backend, pending: list, m: int, C: float = 1.0, stats=None):
    """Solve the problems :func:`svm_decision` left in ``pending``, all in one call."""
    if not pending:
        return
    xp = be.xp
    cat = (lambda key, axis: xp.cat([p[key] for p in pending], axis)) if be.is_torch else (
        lambda key, axis: np.concatenate([p[key] for p in pending], axis))
    beta, b = svm_fit(be, cat("K", 2), _labels(be, m), C, free=cat("free", 1), upper=cat("upper", 1),
                      scale=cat("scale", 0), stats=stats)
    f = xp.einsum("tib,ib->tb", cat("kt", 2), beta) + b
    start = 0
    for p in pending:
        stop = start + p["rest"].shape[0]
        p["f"][:, p["rest"]] = f[:, start:stop]
        start = stop


def _all_free(be: Backend, cols, n: int, scale, y):
    """Decision values, multipliers and dropped pivots with every point a free SV."""
    xp = be.xp
    Lc, dropped = cholesky(be, cols, n, scale)
    z1, zy = border(be, Lc, n, 0), border(be, Lc, n, 1)
    zt = xp.stack([border(be, Lc, n, 2), border(be, Lc, n, 3)])  # (2, n, B)
    b = (z1 * zy).sum(axis=0) / (z1 * z1).sum(axis=0)  # 1'K^-1 y / 1'K^-1 1
    beta = back_solve(be, Lc, zy - b * z1, n)  # K^-1 (y - b 1)
    f = (zt * zy).sum(axis=1) - b * ((zt * z1).sum(axis=1) - 1.0)  # k_t'beta + b
    return f, y * beta, dropped


def _unpack(be: Backend, packed, n: int, R: int):
    """Full symmetric ``K`` (n, n, B) and test rows ``kt`` (2, n, B) from the packed layout."""
    offsets = np.cumsum([0] + [R - j for j in range(n)])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    hi, lo = np.maximum(i, j), np.minimum(i, j)
    K = packed[be.asarray(offsets[lo] + hi - lo, "int64")]
    t = np.arange(2)[:, None]
    kt = packed[be.asarray(offsets[None, :n] + n + 2 + t - np.arange(n)[None, :], "int64")]
    return K, kt


# ----------------------------------------------------------------------------- other classifiers
def k12_layout(m: int) -> list:
    """The entries, row by row, of the full Gram matrix of a pair's ``2(m + 1)``
    pseudo-trials ``[A_0 .. A_{m-1}, A_test, B_0 .. B_{m-1}, B_test]``, which the LDA and
    correlation classifiers take (points as in :func:`svm_layout`)."""
    points = [(0, l) for l in range(m + 1)] + [(1, l) for l in range(m + 1)]
    return [(r, c) for r in points for c in points]


def _lda_map(m: int, n_test: int = 2) -> np.ndarray:
    """Coefficients of residuals, mean difference and centred test points over the 2L points."""
    L = m + 1
    n = 2 * m
    train, test = split_indices(m)
    E = np.zeros((n + 1 + n_test, 2 * L))
    for k, row in enumerate(train):  # residual x_k - mean of its class
        start = 0 if k < m else L
        E[k, start : start + m] -= 1.0 / m
        E[k, row] += 1.0
    E[n, :m] = 1.0 / m  # mean A - mean B
    E[n, L : L + m] = -1.0 / m
    for r, row in enumerate(test):  # test point - midpoint of the class means
        E[n + 1 + r, :m] = -0.5 / m
        E[n + 1 + r, L : L + m] = -0.5 / m
        E[n + 1 + r, row] += 1.0
    return E


def lda_decision(be: Backend, K12, m: int, n_features: int):
    """Shrinkage-LDA decision values (2, B): ``f(t) = d' S^-1 (t - (mu_A + mu_B) / 2)``.

    ``S = (1 - lam) R'R / n + lam * mu * I`` is the Ledoit-Wolf shrinkage (the formula of
    ``sklearn.covariance.ledoit_wolf``) of the pooled within-class covariance of the ``n``
    training residuals ``R``, ``mu = trace(R'R) / (n p)``; ``d = mu_A - mu_B``. Computed
    with the Woodbury identity from inner products only.
    """
    xp = be.xp
    n = 2 * m
    p = float(n_features)
    E = be.asarray(_lda_map(m), "float64")
    B = K12.shape[2]
    # Z[a, c] = E[a] K12 E[c]' for every problem, as two matrix products
    P = 2 * m + 2
    Z = (E @ K12.reshape(P, P * B)).reshape(n + 3, P, B)
    Z = E[None] @ Z  # (n + 3, n + 3, B): Z[a, c, b] = sum_j E[c, j] (E K12)[a, j, b]
    RR, Rd, Rt = Z[:n, :n], Z[:n, n], Z[:n, n + 1 :]  # (n,n,B), (n,B), (n,2,B)
    dt = Z[n, n + 1 :]  # (2, B)
    idx = be.arange(n)
    diag = RR[idx, idx]  # squared norms of the residuals
    trace = diag.sum(axis=0)
    mu = trace / (n * p)
    delta_ = (RR * RR).sum(axis=(0, 1)) / n**2
    beta_ = (diag * diag).sum(axis=0)
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace / n + p * mu**2) / p
    beta = xp.where(beta < delta, beta, delta)
    lam = xp.where((beta > 0) & (delta > 0), beta / xp.where(delta > 0, delta, 1.0), 0.0)
    tiny = 1e-12 * xp.where(mu > 0, mu, 1.0)
    gamma = lam * mu
    gamma = xp.where(gamma > tiny, gamma, tiny)
    rho = (1.0 - lam) / n
    # (gamma I + rho RR') x = R d  ->  f(t) = d't - rho x'(R t)   (times 1/gamma > 0, dropped)
    A = be.empty((n + 1, n, B))
    A[:n] = rho * RR
    A[idx, idx] += gamma
    A[n] = Rd
    Lc, _ = cholesky(be, columns(A, n), n, gamma)
    x = back_solve(be, Lc, border(be, Lc, n, 0), n)
    return dt - rho * xp.einsum("ib,itb->tb", x, Rt)


def correlation_decision(be: Backend, K12, m: int):
    """Nearest class mean by Pearson correlation: ``corr(t, mu_A) - corr(t, mu_B)`` up to a
    positive factor. ``K12`` must be the Gram of channel-centred pseudo-trials."""
    xp = be.xp
    L = m + 1
    tA, tB = m, L + m
    a, bb = slice(0, m), slice(L, L + m)
    nA = K12[a, a].sum(axis=(0, 1)) / m**2  # |mu_A|^2
    nB = K12[bb, bb].sum(axis=(0, 1)) / m**2
    # 1 / |mu|, and 0 for a zero mean (its correlation is undefined: counted as 0)
    iA = xp.where(nA > 0, 1.0 / xp.sqrt(xp.where(nA > 0, nA, 1.0)), 0.0)
    iB = xp.where(nB > 0, 1.0 / xp.sqrt(xp.where(nB > 0, nB, 1.0)), 0.0)
    test = [tA, tB]
    return K12[test, a].sum(axis=1) / m * iA - K12[test, bb].sum(axis=1) / m * iB
