"""Exact ROC AUC (rank statistic) for reports and early stopping; NumPy/SciPy only."""
import numpy as np
from scipy.stats import rankdata


def roc_auc(labels, scores):
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count ½.

    Raises ValueError when a class is missing (AUC undefined) or shapes/values are bad.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both positive and negative labels")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2.0)
                 / (positives * negatives))
