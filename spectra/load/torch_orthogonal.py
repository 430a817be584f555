"""The effective weight of ``torch.nn.utils.parametrizations.orthogonal``, in numpy.

torch stores ``parametrizations.<name>.original`` (``X``, the weight's shape) and,
with ``use_trivialization=True`` (the default), the buffer
``parametrizations.<name>.0.base`` (``B``, ``N x N`` with ``N = max(rows, cols)``).
The weight is (torch ``_Orthogonal.forward``; a wide ``X`` is transposed first and
the result transposed back)::

    matrix_exp   Q = B @ expm(S)[:, :k]                S = Y - Y^H, Y = [tril(X), 0] (N x N)
    cayley       Q = B @ ((I - S/2)^{-1} (I + S/2))[:, :k]
    householder  Q = B @ (H_1 ... H_k)[:, :k] diag(int(diag X)),
                 H_i = I - tau_i v_i v_i^H, v_i = e_i + (strictly lower column i of X),
                 tau_i = 2 / (1 + ||strictly lower column i||^2)

(``B @`` only when ``B`` is stored). Which map was used is *not* stored in a
state_dict: only a whole pickled model or the module itself records it. What the
state_dict alone decides is :func:`trivial_original`: torch's ``right_inverse``
(run when the parametrization is registered with ``use_trivialization=True``)
sets ``X`` to ``-I`` (zeros, ``-1`` on the diagonal) and every map then gives
``B[:, :k]``; after training, the maps give different weights.

The naming rules live in :mod:`spectra.load.torch_names`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["ORTHOGONAL_MAPS", "default_orthogonal_map", "orthogonal_weight", "trivial_original"]

OrthogonalMap = Literal["matrix_exp", "cayley", "householder"]
ORTHOGONAL_MAPS: tuple[str, ...] = ("matrix_exp", "cayley", "householder")


def default_orthogonal_map(shape: tuple[int, int], *, complex_: bool = False) -> str:
    """The map torch's ``orthogonal`` picks when none is given.

    ``matrix_exp`` for a square or complex weight, else ``householder``.
    """
    return "matrix_exp" if shape[0] == shape[1] or complex_ else "householder"


def _tall(X: np.ndarray) -> tuple[np.ndarray, bool]:
    return (X.T, True) if X.shape[0] < X.shape[1] else (X, False)


def trivial_original(original: np.ndarray) -> bool:
    """True when ``original`` is what ``right_inverse`` leaves: zero below the diagonal, ``-1`` on it.

    Then every map gives ``B[:, :k]`` (the strictly upper triangle is never read).

    Parameters
    ----------
    original : (M, K) ndarray
        The stored ``parametrizations.<name>.original``.

    Returns
    -------
    bool
    """
    X, _ = _tall(np.asarray(original))
    return bool(np.all(np.tril(X, -1) == 0) and np.all(np.diagonal(X) == -1))


def _householder_product(V: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """First ``k`` columns of ``H_1 ... H_k``, ``H_i = I - tau_i v_i v_i^H`` (LAPACK ``orgqr``).

    ``v_i`` is column ``i`` of `V` below the diagonal with an implicit 1 on it
    (``torch.linalg.householder_product``).
    """
    n, k = V.shape
    Q = np.eye(n, k, dtype=np.result_type(V, tau))
    for i in range(k - 1, -1, -1):  # Q <- H_i Q, innermost reflector last
        v = np.zeros(n, dtype=V.dtype)
        v[i] = 1
        v[i + 1 :] = V[i + 1 :, i]
        Q -= tau[i] * np.outer(v, v.conj() @ Q)
    return Q


def orthogonal_weight(
    original: np.ndarray, base: np.ndarray | None, orthogonal_map: OrthogonalMap
) -> np.ndarray:
    """The weight torch's ``orthogonal`` parametrization computes from what it stores.

    Parameters
    ----------
    original : (M, K) ndarray
        ``parametrizations.<name>.original``.
    base : (max(M, K), max(M, K)) ndarray or None
        ``parametrizations.<name>.0.base`` (``use_trivialization=True``), else None.
    orthogonal_map : {"matrix_exp", "cayley", "householder"}
        The map the parametrization was registered with.

    Returns
    -------
    (M, K) ndarray
        Orthonormal columns (``M >= K``) or rows, float64 or complex128.

    Raises
    ------
    ValueError
        An unknown map, householder on a complex weight, or a `base` of the wrong shape.
    """
    X = np.asarray(original)
    X = X.astype(np.complex128 if np.iscomplexobj(X) else np.float64)
    X, transposed = _tall(X)
    n, k = X.shape
    if base is not None and np.shape(base) != (n, n):
        raise ValueError(f"orthogonal base of shape {np.shape(base)} does not fit weight {original.shape}")
    if orthogonal_map in ("matrix_exp", "cayley"):
        Y = np.zeros((n, n), dtype=X.dtype)
        Y[:, :k] = np.tril(X)
        S = Y - Y.conj().T
        if orthogonal_map == "matrix_exp":
            import scipy.linalg  # Al-Mohy & Higham 2009 scaling and squaring, as torch.matrix_exp

            Q = scipy.linalg.expm(S)
        else:
            eye = np.eye(n)
            Q = np.linalg.solve(eye - 0.5 * S, eye + 0.5 * S)
        Q = Q[:, :k]
    elif orthogonal_map == "householder":
        if np.iscomplexobj(X):
            raise ValueError("the householder map does not support complex weights (nor does torch)")
        V = np.tril(X, -1)
        tau = 2.0 / (1.0 + (V * V).sum(axis=0))
        Q = _householder_product(V, tau)
        # torch: Q * X.diagonal().int(): the diagonal's signs, truncated toward zero
        Q = Q * np.trunc(np.diagonal(X))[None, :]
    else:
        raise ValueError(f"orthogonal_map={orthogonal_map!r}; expected one of {', '.join(ORTHOGONAL_MAPS)}")
    if base is not None:
        Q = np.asarray(base, dtype=np.result_type(base, Q, np.float64)) @ Q
    return Q.T if transposed else Q
