"""The binomial pmf and quantile the verdicts and intervals need, without importing scipy.stats.

``scipy.stats.binom`` computes both with two of scipy.special's ufuncs, ``_binom_pmf`` and
``_binom_ppf`` (Boost's binomial distribution): its ``pmf`` clips the first to [0, 1] for k in 0..n,
its ``ppf`` returns the second for a level strictly between 0 and 1, the only arguments used here.
Importing scipy.stats loads every distribution it has, about 0.6 s in each process that judges a
cell (every ``run``, ``check`` and ``bench``); scipy.special alone about 0.15 s. The ufuncs are
private names (scipy 1.14 to 1.17 at least; pyproject.toml asks for 1.14 or later):
tests/test_binomial.py checks every value against ``scipy.stats.binom`` bit for bit, and where a
scipy no longer has them, ``scipy.stats.binom`` itself is used. Outside the arguments above (k past
n or not whole, a level of 0 or 1) they are not scipy.stats' answers: nothing here asks for those.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

BinomFunction = Callable[..., Any]  # a ufunc, or the fallback's bound method


@functools.cache
def _functions() -> tuple[BinomFunction, BinomFunction]:
    """(pmf, ppf), imported on first use: scipy is not needed by every command."""
    try:
        from scipy.special._ufuncs import _binom_pmf, _binom_ppf
    except ImportError:  # a later scipy that moved them: the public distribution, slower to import
        from scipy.stats import binom

        return binom.pmf, binom.ppf
    return _binom_pmf, _binom_ppf


def pmf(k: npt.ArrayLike, n: int, p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """P(X = k) for X ~ Binomial(n, p), each k an integer in 0..n, each p in [0, 1] (broadcast)."""
    return np.asarray(np.clip(_functions()[0](k, n, p), 0.0, 1.0), dtype=np.float64)


def ppf(level: float, n: int, p: float) -> float:
    """The smallest k with P(X <= k) >= ``level``, for X ~ Binomial(n, p) and 0 < level < 1."""
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    return float(_functions()[1](level, n, p))
