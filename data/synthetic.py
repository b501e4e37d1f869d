"""The DRGrad synthetic two-task set (Liu et al., AAAI 2025, arXiv 2510.09643, "Artificially
Synthesized Dataset"), as printed (`paper`) and with tasks that share part of their signal
(`angle`, the default).

Common to both generators:

* 100,000 train, 10,000 eval (validation) and 10,000 test rows, drawn in that order from one
  `numpy.random.RandomState(seed)` stream, so a seed fixes every value.
* 32 features. 26 dense ones are N(0, 1) (`dense_0` ... `dense_25`, rounded to 6 decimals,
  which is what the labels are computed from and what the CSV holds). 6 "sparse" ones follow
  the printed formula, for i = 1..6:
  ``x_i = exp(rand(0,1) * randint(1, i+2)) + rand(0,1) * randint(1, i+2) ** (i/2 + 1)``
  (`randint` inclusive, every rand/randint an independent draw). The labels use these
  continuous values; the model sees each sparse feature as a categorical id (`sparse_0` ...
  `sparse_5`): its quantile bucket, 0 .. `sparse_buckets` - 1, with boundaries at the train
  quantiles k / `sparse_buckets` (default 10 buckets, as in docs/REFERENCE.md).
* The paper's per-feature terms, for the 32-vector x of one row (norms over that row):
  ``f_j(x) = 4 x_j^2 / ||x^2||_2 + 5 exp(x_j / ||x||_2) + 6 sin(x_j)``.
* Binary labels: a continuous label is 1 where it is above its **train** median (so each task
  is ~50 % positive), for AUC.

`paper` generator, exactly as printed: ``label1 = 10 * sum_j f_j(x) + N(0.01, 0.002)`` and
``label2 = cos(theta) * label1 + N(0.01, 0.002)``, N(mean, variance). The printed formula leaves
the sum over features, the axis of the norms and the place of the noise implicit; this code sums
the 32 terms, takes the norms over each row and adds the noise outside the factor 10.
Finding (docs/REFERENCE.md, checked by tests/test_data_synthetic.py): the noise is tiny next to
label1's spread, so after binarizing at the median, label2 with cos(theta) < 0 is NOT label1 on
every row (docs/REFERENCE.md; with this code and seed 0: all but 12 of the 100,000 train rows, those whose label1 lies within
the noise of the median). The "conflict" regime is then a mirror image that a model learns as
easily as cooperation (MMoE ≈ 0.930 test AUC on both tasks in both regimes, docs/REFERENCE.md); it
is kept for fidelity, not for benchmarks.

`angle` generator (default): the tasks share only part of their signal, as in the MMoE
paper's synthetic data (Ma et al., KDD 2018, Sec. 4). Each term f_j is z-scored with its train
mean and standard deviation (so no single feature dominates), giving f~(x) in R^32; two unit
vectors w1, w2 are drawn at angle theta (w2 = cos(theta) w1 + sin(theta) u, u a random unit
vector orthogonal to w1), and ``label_k = w_k . f~(x) + e_k`` with independent Gaussian noise
e_k whose standard deviation is `noise` (default 0.2) times the standard deviation of
w_k . f~(x) on train. Neither label is a function of the other; their correlation is about
cos(theta) / (1 + noise^2) and the binarized labels agree on about
1/2 + arcsin(corr) / pi of the rows. Measured (seed 0, train): cos 0.9 / 0.5 / 0 / -0.5 / -0.9 give
label correlation 0.870 / 0.503 / 0.030 / -0.464 / -0.864 and binary agreement
0.836 / 0.667 / 0.508 / 0.344 / 0.165 (docs/REFERENCE.md: 0.84 / 0.66 / 0.50 / 0.34 / 0.16).

Regimes: `cooperate` is cos(theta) = 0.5, `conflict` is cos(theta) = -0.5; `cos` sets any value
in [-1, 1]. `rows=N` keeps at most N rows per split (seeded sample of the full set, so labels
and bucket boundaries do not change with N).
"""
from typing import Dict, Optional

import numpy as np
import pandas as pd

from drgrad.data import readers
from drgrad.data.specs import SYNTHETIC, SYNTHETIC_NUM_DENSE, SYNTHETIC_NUM_SPARSE

SPEC = SYNTHETIC
SPLIT_SIZES = (("train", 100_000), ("eval", 10_000), ("test", 10_000))
GENERATORS = ("angle", "paper")
REGIMES = {"cooperate": 0.5, "conflict": -0.5}
DEFAULT_GENERATOR = "angle"
DEFAULT_REGIME = "cooperate"
DEFAULT_SPARSE_BUCKETS = 10
DEFAULT_NOISE = 0.2
PAPER_NOISE_MEAN = 0.01
PAPER_NOISE_VARIANCE = 0.002
DENSE_DECIMALS = 6


def resolve_cos(regime: Optional[str] = None, cos: Optional[float] = None) -> float:
    """cos(theta) from `regime` or `cos` (not both); default: the cooperate regime (0.5)."""
    if regime is not None and cos is not None:
        raise ValueError("give either regime or cos, not both")
    if cos is not None:
        try:
            value = float(cos)
        except (TypeError, ValueError):
            raise ValueError(f"cos must be a number in [-1, 1], got {cos!r}") from None
        if not -1.0 <= value <= 1.0:  # Also rejects NaN.
            raise ValueError(f"cos must be in [-1, 1], got {cos!r}")
        return value
    regime = DEFAULT_REGIME if regime is None else regime
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {sorted(REGIMES)}, got {regime!r}")
    return REGIMES[regime]


def sparse_values(rng: np.random.RandomState, num_rows: int) -> np.ndarray:
    """The 6 continuous sparse features, [num_rows, 6], by the paper's formula."""
    columns = []
    for i in range(1, SYNTHETIC_NUM_SPARSE + 1):
        u1 = rng.uniform(0.0, 1.0, num_rows)
        k1 = rng.randint(1, i + 3, num_rows)  # randint(1, i+2), inclusive.
        u2 = rng.uniform(0.0, 1.0, num_rows)
        k2 = rng.randint(1, i + 3, num_rows)
        columns.append(np.exp(u1 * k1) + u2 * k2.astype(np.float64) ** (i / 2.0 + 1.0))
    return np.stack(columns, axis=1)


def feature_terms(x: np.ndarray) -> np.ndarray:
    """The paper's per-feature terms f_j(x) = 4x_j^2/||x^2|| + 5exp(x_j/||x||) + 6sin(x_j)."""
    squares = x * x
    norm_of_squares = np.sqrt(np.sum(squares * squares, axis=1, keepdims=True))
    norm = np.sqrt(np.sum(squares, axis=1, keepdims=True))
    return 4.0 * squares / norm_of_squares + 5.0 * np.exp(x / norm) + 6.0 * np.sin(x)


def angle_weights(rng: np.random.RandomState, dim: int, cos_theta: float):
    """Two unit vectors in R^dim with w1 . w2 = cos_theta."""
    w1 = rng.normal(size=dim)
    w1 /= np.linalg.norm(w1)
    u = rng.normal(size=dim)
    u -= (u @ w1) * w1
    u /= np.linalg.norm(u)
    sin_theta = np.sqrt(max(0.0, 1.0 - cos_theta * cos_theta))
    return w1, cos_theta * w1 + sin_theta * u


def bucketize(values: np.ndarray, train_values: np.ndarray, buckets: int) -> np.ndarray:
    """Quantile bucket ids in [0, buckets) with boundaries at the train quantiles."""
    boundaries = np.quantile(train_values, np.arange(1, buckets) / buckets)
    return np.searchsorted(boundaries, values, side="right").astype(np.int64)


def generate(seed: int = 0, generator: str = DEFAULT_GENERATOR, cos_theta: float = 0.5,
             sparse_buckets: int = DEFAULT_SPARSE_BUCKETS, noise: float = DEFAULT_NOISE):
    """Returns `(frame, continuous_labels)` for all 120,000 rows (train, eval, test order).

    `continuous_labels` is a [rows, 2] float64 array of label1/label2 before binarization.
    """
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
    if isinstance(sparse_buckets, bool) or not isinstance(sparse_buckets, (int, np.integer)) \
            or sparse_buckets < 2:
        raise ValueError(f"sparse_buckets must be an integer >= 2, got {sparse_buckets!r}")
    if not (isinstance(noise, (int, float)) and 0.0 <= noise < np.inf):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    cos_theta = resolve_cos(cos=cos_theta)
    num_rows = sum(size for _, size in SPLIT_SIZES)
    num_train = SPLIT_SIZES[0][1]
    rng = np.random.RandomState(seed)
    sparse = sparse_values(rng, num_rows)
    dense = np.round(rng.normal(size=(num_rows, SYNTHETIC_NUM_DENSE)), DENSE_DECIMALS)
    terms = feature_terms(np.concatenate([sparse, dense], axis=1))
    if generator == "paper":
        std = np.sqrt(PAPER_NOISE_VARIANCE)
        label1 = 10.0 * terms.sum(axis=1) + rng.normal(PAPER_NOISE_MEAN, std, num_rows)
        label2 = cos_theta * label1 + rng.normal(PAPER_NOISE_MEAN, std, num_rows)
    else:
        mean = terms[:num_train].mean(axis=0)
        scale = terms[:num_train].std(axis=0)
        scale[scale == 0.0] = 1.0
        standardized = (terms - mean) / scale
        w1, w2 = angle_weights(rng, standardized.shape[1], cos_theta)
        labels = []
        for w in (w1, w2):
            signal = standardized @ w
            sigma = noise * signal[:num_train].std()
            labels.append(signal + rng.normal(0.0, 1.0, num_rows) * sigma)
        label1, label2 = labels
    continuous = np.stack([label1, label2], axis=1)
    columns = {}
    for j, name in enumerate(SPEC.categorical):
        columns[name] = bucketize(sparse[:, j], sparse[:num_train, j], sparse_buckets)
    for j, name in enumerate(SPEC.numeric):
        columns[name] = dense[:, j]
    for k, task in enumerate(SPEC.tasks):
        median = np.median(continuous[:num_train, k])
        columns[task] = (continuous[:, k] > median).astype(np.int64)
    return pd.DataFrame(columns), continuous


def load(source=None, rows: Optional[int] = None, seed: int = 0,
         generator: str = DEFAULT_GENERATOR, regime: Optional[str] = None,
         cos: Optional[float] = None, sparse_buckets: int = DEFAULT_SPARSE_BUCKETS,
         noise: float = DEFAULT_NOISE) -> Dict[str, pd.DataFrame]:
    """Returns `{"train", "eval", "test"}` DataFrames of the synthetic set.

    Args:
      source: must be None (the data is generated).
      rows: keep at most this many rows per split (seeded sample); None = all.
      seed: the generator seed (features, weights, noise and the `rows` sample).
      generator: "angle" (default) or "paper".
      regime: "cooperate" (cos 0.5) or "conflict" (cos -0.5); default cooperate.
      cos: cos(theta) in [-1, 1] instead of a regime.
      sparse_buckets: quantile buckets per sparse feature.
      noise: `angle` only: noise standard deviation relative to the signal's.
    """
    if source is not None:
        raise ValueError("the synthetic dataset is generated; it takes no --source")
    rows = readers.check_rows(rows)
    cos_theta = resolve_cos(regime, cos)
    frame, _ = generate(seed, generator, cos_theta, sparse_buckets, noise)
    frames, start = {}, 0
    for split, size in SPLIT_SIZES:
        frames[split] = readers.subsample(frame.iloc[start:start + size], rows, seed)
        start += size
    return frames
