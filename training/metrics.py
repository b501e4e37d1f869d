"""Exact ROC AUC (rank statistic) and per-user GAUC for reports and early stopping; NumPy/SciPy
only."""
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


def gauc(labels, scores, groups):
    """Group AUC: the ROC AUC within each group (user), averaged over the groups that have both
    classes, each weighted by its number of examples (Zhou et al., "Deep Interest Network",
    KDD 2018, eq. 1 — the GAUC of the GradCraft paper's tables). Ties count ½ as in `roc_auc`.

    Raises ValueError on bad shapes/values or when no group has both classes.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if not labels.shape == scores.shape == groups.shape:
        raise ValueError(f"labels {labels.shape}, scores {scores.shape} and groups "
                         f"{groups.shape} differ in shape")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf")
    group_ids = np.unique(groups, return_inverse=True)[1].reshape(-1)
    # Sort by (group, score); a tied run of scores inside a group gets its average rank.
    order = np.lexsort((scores, group_ids))
    group_ids, scores, labels = group_ids[order], scores[order], labels[order]
    new_group = np.r_[True, group_ids[1:] != group_ids[:-1]]
    new_run = new_group | np.r_[True, scores[1:] != scores[:-1]]
    run_first = np.flatnonzero(new_run)
    run_last = np.r_[run_first[1:], labels.size] - 1
    run_of = np.cumsum(new_run) - 1
    group_of = np.cumsum(new_group) - 1
    ranks = (run_first[run_of] + run_last[run_of]) / 2.0 - np.flatnonzero(new_group)[group_of] + 1
    counts = np.bincount(group_of).astype(np.float64)
    positives = np.bincount(group_of, weights=labels)
    negatives = counts - positives
    both = (positives > 0) & (negatives > 0)
    if not both.any():
        raise ValueError("GAUC needs at least one group with both positive and negative labels")
    positive_rank_sums = np.bincount(group_of, weights=ranks * labels)
    aucs = ((positive_rank_sums[both] - positives[both] * (positives[both] + 1) / 2.0)
            / (positives[both] * negatives[both]))
    return float(np.sum(counts[both] * aucs) / np.sum(counts[both]))
