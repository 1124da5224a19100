"""Sparse LU without pivoting, planned once per Jacobian sparsity pattern, with generated numpy kernels.

:class:`SparseLUPlan` computes, once per sparsity pattern, a fill-reducing elimination order (minimum degree on
the symmetrised pattern by default), the symbolic fill-in, the factorisation and solves as operation lists (which
the numba and CUDA printers print too, in the same order), and straight-line numpy source for them. Every line of
that code is one numpy ufunc acting on a length-``N`` row, so the Python overhead per step is independent of ``N``
and the arithmetic is vectorised across trajectories. See :mod:`moa.solvers.rodas4.stepper_numpy` for why no
pivoting is done and how a step falls back to a pivoted dense solve.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["SparseLUPlan", "dense_jacobian"]


def _min_degree_order(n: int, pattern: set[tuple[int, int]]) -> list[int]:
    """Greedy minimum-degree elimination order on the symmetrised graph of ``pattern``.

    Exact elimination-graph update (neighbours of the eliminated node become a clique); fine for
    the tens-to-hundreds of states of a QSP model. Ties are broken by the lower index so the order
    is deterministic.
    """
    adj = [set() for _ in range(n)]
    for i, j in pattern:
        if i != j:
            adj[i].add(j)
            adj[j].add(i)
    remaining = set(range(n))
    order = []
    while remaining:
        v = min(remaining, key=lambda u: (len(adj[u]), u))
        order.append(v)
        remaining.remove(v)
        nb = adj[v]
        for u in nb:
            adj[u].discard(v)
            adj[u] |= nb - {u}
        adj[v] = set()
    return order


def _rcm_order(n: int, pattern: set[tuple[int, int]]) -> list[int]:
    """Reverse Cuthill-McKee order of the symmetrised pattern (scipy.sparse.csgraph)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    r = np.array([i for i, _ in pattern] + [j for _, j in pattern])
    c = np.array([j for _, j in pattern] + [i for i, _ in pattern])
    g = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    return [int(v) for v in reverse_cuthill_mckee(g, symmetric_mode=True)]


def _elimination_ops(n, perm, slot, Lcols, Urows):
    """The numeric LU and the solves as operation lists, for any code printer.

    Factorisation (on slots of the stored matrix): ``("pivot", k, kk)`` d_k = 1/a[kk];
    ``("scale", ik, k)`` a[ik] *= d_k; ``("update", ij, ik, kj)`` a[ij] -= a[ik] a[kj].
    Solve (on ``x`` in original component order): ``("sub", i, slot, k)`` x_i -= a[slot] x_k
    (forward, then backward); ``("diag", k, p)`` x_k *= d_p.
    """
    factor = []
    for k in range(n):
        factor.append(("pivot", k, slot[(k, k)]))
        factor += [("scale", slot[(i, k)], k) for i in Lcols[k]]
        factor += [("update", slot[(i, j)], slot[(i, k)], slot[(k, j)]) for i in Lcols[k] for j in Urows[k]]
    solve = [("sub", perm[i], slot[(i, k)], perm[k]) for k in range(n) for i in Lcols[k]]
    for k in reversed(range(n)):
        solve += [("sub", perm[k], slot[(k, j)], perm[j]) for j in Urows[k]]
        solve.append(("diag", perm[k], k))
    return factor, solve


class SparseLUPlan:
    """Symbolic sparse LU (no pivoting) of an ``n x n`` pattern, with generated numeric kernels.

    Build once per Jacobian sparsity pattern and reuse for every call of :func:`integrate_batch`.
    The factored matrix always contains the full diagonal (the solver adds ``1/(gamma h)`` there).

    Parameters
    ----------
    n : number of states.
    rows, cols : int arrays of length ``nnz``; the pattern ``J[rows[k], cols[k]]`` (duplicates are
        summed).
    ordering : ``"min_degree"`` (default), ``"rcm"`` or ``"natural"``; the elimination order.

    Attributes
    ----------
    perm : (n,) elimination order, ``perm[k]`` = original index of the k-th pivot.
    nnz_fill : number of stored entries of L+U (pattern + diagonal + fill-in).
    fill_rows, fill_cols : (nnz_fill,) original row/column index of each stored slot.
    n_factor_ops, n_solve_ops : numbers of length-``N`` multiply/subtract pairs in one
        factorisation / one solve (a measure of cost).

    Storage: a matrix is held as an array ``a`` of shape ``(nnz_fill, N)`` -- one row per slot,
    one column per trajectory. :meth:`factor` overwrites it in place with L (unit lower, strictly
    below the diagonal, multipliers) and U (upper, with the diagonal), and returns the inverse
    pivots ``(n, N)``.
    """

    def __init__(self, n: int, rows, cols, ordering: str = "min_degree"):
        rows = np.asarray(rows, dtype=np.intp).ravel()
        cols = np.asarray(cols, dtype=np.intp).ravel()
        if rows.shape != cols.shape:
            raise ValueError("jac_rows and jac_cols must have the same length")
        if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n or cols.max() >= n):
            raise ValueError("Jacobian pattern index out of range")
        self.n = int(n)
        self.jac_rows, self.jac_cols = rows, cols
        pattern = set(zip(rows.tolist(), cols.tolist())) | {(i, i) for i in range(n)}
        if ordering == "min_degree":
            perm = _min_degree_order(n, pattern)
        elif ordering == "rcm":
            perm = _rcm_order(n, pattern)
        elif ordering == "natural":
            perm = list(range(n))
        else:
            raise ValueError(f"unknown ordering {ordering!r}")
        self.ordering = ordering
        self.perm = np.array(perm, dtype=np.intp)
        pinv = np.empty(n, dtype=np.intp)
        pinv[self.perm] = np.arange(n)

        # Symbolic elimination in permuted index space (right-looking, no pivoting).
        row_sets = [set() for _ in range(n)]
        col_sets = [set() for _ in range(n)]
        for i, j in pattern:
            pi, pj = int(pinv[i]), int(pinv[j])
            row_sets[pi].add(pj)
            col_sets[pj].add(pi)
        Lcols, Urows = [], []
        for k in range(n):
            Lk = sorted(i for i in col_sets[k] if i > k)
            Uk = sorted(j for j in row_sets[k] if j > k)
            for i in Lk:
                for j in Uk:
                    if j not in row_sets[i]:
                        row_sets[i].add(j)
                        col_sets[j].add(i)
            Lcols.append(Lk)
            Urows.append(Uk)
        # Slots in row-major permuted order (good locality for the solves).
        slot = {}
        for i in range(n):
            for j in sorted(row_sets[i]):
                slot[(i, j)] = len(slot)
        self.nnz_fill = len(slot)
        keys = list(slot.keys())
        self.fill_rows = self.perm[np.array([k[0] for k in keys], dtype=np.intp)]
        self.fill_cols = self.perm[np.array([k[1] for k in keys], dtype=np.intp)]
        self.jac_slot = np.array([slot[(int(pinv[r]), int(pinv[c]))] for r, c in zip(rows, cols)], dtype=np.intp)
        self.jac_has_duplicates = len(set(self.jac_slot.tolist())) != len(self.jac_slot)
        self.diag_slot = np.array([slot[(int(pinv[i]), int(pinv[i]))] for i in range(n)], dtype=np.intp)
        self.l_slot = np.array([slot[(i, k)] for k in range(n) for i in Lcols[k]], dtype=np.intp)
        self.n_factor_ops = sum(len(Lcols[k]) * (len(Urows[k]) + 1) for k in range(n))
        self.n_solve_ops = sum(len(Lcols[k]) + len(Urows[k]) for k in range(n))
        self.factor_ops, self.solve_ops = _elimination_ops(n, self.perm.tolist(), slot, Lcols, Urows)
        self._build_kernels()

    # -- code generation ----------------------------------------------------------------------

    def _build_kernels(self):
        """numpy kernels from the operation lists: one ufunc call on a length-N row per line."""
        n = self.n

        def unpack(prefix, count, src):
            names = ", ".join(f"{prefix}{s}" for s in range(count))
            return f"    ({names},) = {src}"

        # Numeric factorisation: a (nnz_fill, N) in place, d (n, N) inverse pivots, t (N,) scratch.
        f = ["def factor(a, d, t):", unpack("a", self.nnz_fill, "a"), unpack("d", n, "d")]
        for op in self.factor_ops:
            if op[0] == "pivot":  # d_k = 1 / a_kk
                f.append(f"    _div(1.0, a{op[2]}, out=d{op[1]})")
            elif op[0] == "scale":  # l_ik = a_ik d_k
                f.append(f"    _mul(a{op[1]}, d{op[2]}, out=a{op[1]})")
            else:  # a_ij -= l_ik u_kj
                f.append(f"    _mul(a{op[2]}, a{op[3]}, out=t)")
                f.append(f"    _sub(a{op[1]}, t, out=a{op[1]})")
        f.append("    return d")

        # Solve L U x = b in place on b (n, N) in ORIGINAL component order (the permutation is in the
        # operations' indices, so no permuted copies are made).
        s = ["def solve(a, d, b, t):", unpack("a", self.nnz_fill, "a"), unpack("d", n, "d"), unpack("x", n, "b")]
        for op in self.solve_ops:
            if op[0] == "sub":  # x_i -= a_slot x_k
                s.append(f"    _mul(a{op[2]}, x{op[3]}, out=t)")
                s.append(f"    _sub(x{op[1]}, t, out=x{op[1]})")
            else:  # x_k *= d_pivot
                s.append(f"    _mul(x{op[1]}, d{op[2]}, out=x{op[1]})")
        s.append("    return b")

        self.source = "\n".join(f) + "\n\n" + "\n".join(s) + "\n"
        ns = {"_mul": np.multiply, "_sub": np.subtract, "_div": np.divide}
        exec(compile(self.source, f"<SparseLUPlan n={n} nnz_fill={self.nnz_fill}>", "exec"), ns)
        self.factor_kernel = ns["factor"]
        self.solve_kernel = ns["solve"]

    # -- numeric interface --------------------------------------------------------------------

    def assemble(self, values: np.ndarray, diag=0.0, sign: float = 1.0) -> np.ndarray:
        """Scatter pattern values into a fresh ``(nnz_fill, N)`` array: ``diag*I + sign*A``.

        ``values`` is ``(nnz, N)`` on ``(jac_rows, jac_cols)``; ``diag`` a scalar or ``(N,)``.
        The Rosenbrock iteration matrix is ``assemble(J, 1/(gamma h), sign=-1)``.
        """
        values = np.asarray(values, dtype=float)
        a = np.zeros((self.nnz_fill, values.shape[1]))
        if self.jac_has_duplicates:
            np.add.at(a, self.jac_slot, sign * values)
        else:
            a[self.jac_slot] = values if sign == 1.0 else sign * values
        a[self.diag_slot] += diag
        return a

    def factor(self, a: np.ndarray) -> np.ndarray:
        """Factor ``a`` (nnz_fill, N) in place; return inverse pivots ``(n, N)``."""
        N = a.shape[1]
        d = np.empty((self.n, N))
        return self.factor_kernel(a, d, np.empty(N))

    def solve(self, a: np.ndarray, d: np.ndarray, b: np.ndarray, t: np.ndarray | None = None):
        """Solve ``A x = b`` with the factors from :meth:`factor`; ``b`` (n, N) is overwritten."""
        return self.solve_kernel(a, d, b, np.empty(b.shape[1]) if t is None else t)

    def to_dense(self, a: np.ndarray, col: int) -> np.ndarray:
        """The unfactored matrix of trajectory ``col`` as a dense ``(n, n)`` array (for checks)."""
        m = np.zeros((self.n, self.n))
        m[self.fill_rows, self.fill_cols] = a[:, col]
        return m


def dense_jacobian(jac_dense: Callable, n: int):
    """Wrap ``jac_dense(t, Y, P) -> (n, n, N)`` as ``(jac_values, jac_rows, jac_cols)`` (full pattern).

    Convenient for tests and tiny models; the fast path is a genuinely sparse pattern.
    """
    rows, cols = np.divmod(np.arange(n * n), n)

    def jac_values(t, Y, P):
        return np.asarray(jac_dense(t, Y, P)).reshape(n * n, -1)

    return jac_values, rows, cols
