"""Statistics over results.csv and the markdown report (report.md).

Per cell (and per cos θ on the synthetic sweep): mean ± sample standard deviation (ddof = 1)
of each task's test AUC (and GAUC, per-user AUC weighted by the users' example counts, on a
dataset with a personalization user column) over seeds, Δ vs MMoE (difference of means), and
the paired t-test p-value (`scipy.stats.ttest_rel`, pairs matched by seed) against the best
baseline, the baseline cell with the highest mean test AUC on that task — the test of the
DRGrad paper's Table 3 ("* p ≤ 0.01 compared with the best baseline over paired t-test"). On
the synthetic sweep, Δ vs single-task compares each task with the cell trained on that task
alone.
"""
import math

import numpy as np

from drgrad.bench import paper


def fmt(value, digits=4):
    """Fixed-point text of a number; "—" for None / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def fmt_p(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3g}"


def mean_std(values):
    """``(mean, sample std)`` of a sequence; std is NaN for fewer than two values."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    std = float(np.std(values, ddof=1)) if values.size > 1 else float("nan")
    return float(np.mean(values)), std


def paired_ttest(a, b):
    """Two-sided paired t-test p-value of ``{seed: value}`` maps on their common seeds.

    NaN with fewer than two common seeds or when every paired difference is equal up to
    ``1e-12`` (float noise of identical runs; the statistic is undefined at zero variance).
    """
    from scipy import stats  # pylint: disable=g-import-not-at-top
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return float("nan")
    x = np.array([a[s] for s in seeds], np.float64)
    y = np.array([b[s] for s in seeds], np.float64)
    diff = x - y
    if np.ptp(diff) <= 1e-12:
        return float("nan")
    return float(stats.ttest_rel(x, y).pvalue)


def _group_cells(rows):
    """``{cos: {cell: [row, ...]}}`` of the finished rows, cells in first-seen order."""
    groups = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        groups.setdefault(row.get("cos"), {}).setdefault(row["cell"], []).append(row)
    return groups


def summarize(rows, tasks):
    """Per-group, per-cell statistics.

    Args:
      rows: result rows (dicts as in results.csv; AUC columns ``test_<task>``, ``val_<task>``
        as floats, ``seed`` as int, ``cos`` float or None).
      tasks: task names, primary first.

    Returns:
      ``{cos: {cell: {"role", "paper", "n", "seeds", "test": {task: (mean, std)},
      "gauc": {task: (mean, std)} (NaN without GAUC), "val_mean": float,
      "delta_mmoe": {task}, "p_best": {task}, "best_baseline": {task},
      "delta_single": {task}, "best_epoch", "train_seconds", "step_ms", "mu_final"}}}``.
    """
    out = {}
    for cos, cells in _group_cells(rows).items():
        by_seed = {name: {t: {int(r["seed"]): float(r[f"test_{t}"]) for r in cell_rows}
                          for t in tasks} for name, cell_rows in cells.items()}
        summary = {}
        for name, cell_rows in cells.items():
            first = cell_rows[0]
            entry = {"role": first.get("role", "baseline"), "paper": first.get("paper") or None,
                     "n": len(cell_rows), "seeds": sorted(int(r["seed"]) for r in cell_rows),
                     "test": {t: mean_std([float(r[f"test_{t}"]) for r in cell_rows])
                              for t in tasks}}
            entry["gauc"] = {t: mean_std([_float(r.get(f"gauc_{t}")) for r in cell_rows])
                             for t in tasks}
            entry["val_mean"] = mean_std([float(np.mean([float(r[f"val_{t}"]) for t in tasks]))
                                          for r in cell_rows])[0]
            for column in ("best_epoch", "train_seconds", "step_ms", "mu_final"):
                entry[column] = mean_std([_float(r.get(column)) for r in cell_rows])[0]
            summary[name] = entry
        mmoe = _find_mmoe(summary)
        for name, entry in summary.items():
            entry["delta_mmoe"], entry["p_best"], entry["best_baseline"] = {}, {}, {}
            entry["delta_single"] = {}
            for k, task in enumerate(tasks):
                mean = entry["test"][task][0]
                entry["delta_mmoe"][task] = (mean - summary[mmoe]["test"][task][0]
                                             if mmoe is not None and mmoe != name else None)
                best = _best_baseline(summary, task, exclude=name)
                entry["best_baseline"][task] = best
                entry["p_best"][task] = (paired_ttest(by_seed[name][task], by_seed[best][task])
                                         if best is not None else None)
                single = _single_task_cell(summary, cells, k)
                entry["delta_single"][task] = (mean - summary[single]["test"][task][0]
                                               if single is not None else None)
        out[cos] = summary
    return out


def _float(value):
    if value is None or value == "":
        return float("nan")
    return float(value)


def _find_mmoe(summary):
    for name, entry in summary.items():
        if entry["paper"] == "mmoe" and entry["role"] == "baseline":
            return name
    return None


def _best_baseline(summary, task, exclude):
    candidates = [(entry["test"][task][0], name) for name, entry in summary.items()
                  if entry["role"] == "baseline" and name != exclude
                  and not math.isnan(entry["test"][task][0])]
    return max(candidates)[1] if candidates else None


def _single_task_cell(summary, cells, index):
    for name, entry in summary.items():
        index_text = cells[name][0].get("single_task")
        if entry["role"] == "single_task" and index_text not in (None, "") and int(
                index_text) == index:
            return name
    return None


def _cos_label(cos):
    return "—" if cos is None else f"{cos:+.2f}"


def render(rows, tasks, dataset, header_lines=(), notes=()):
    """The markdown report as a string (see the module docstring)."""
    summaries = summarize(rows, tasks)
    lines = [f"# Benchmark report: {dataset}", ""]
    lines += list(header_lines)
    lines.append("")
    lines.append("Test AUC is mean ± sample std over seeds; Δ vs MMoE is the difference of "
                 "means; p is the two-sided paired t-test (scipy.stats.ttest_rel, pairs by "
                 "seed) against the best baseline on that task (named under each table); "
                 "'paper' is the DRGrad paper's own number for that row, for reference only.")
    lines.append("")
    for cos, summary in summaries.items():
        title = "Results" if cos is None else f"Results at cos θ = {_cos_label(cos)}"
        lines += [f"## {title}", ""]
        head = ["method", "role", "n"]
        for task in tasks:
            head += [f"{task} AUC", "Δ vs MMoE", "p vs best", "paper"]
        if any(e["delta_single"][t] is not None for e in summary.values() for t in tasks):
            head += [f"Δ {task} vs single-task" for task in tasks]
        has_gauc = any(not math.isnan(e["gauc"][t][0]) for e in summary.values() for t in tasks)
        if has_gauc:
            head += [f"{task} GAUC" for task in tasks]
        head += ["val mean AUC", "best epoch", "train s", "step ms", "μ′ final"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for name, entry in summary.items():
            ref = paper.reference(dataset, entry["paper"], cos)
            cols = [name, entry["role"], str(entry["n"])]
            for k, task in enumerate(tasks):
                mean, std = entry["test"][task]
                cols += [f"{fmt(mean)} ± {fmt(std)}", _signed(entry["delta_mmoe"][task]),
                         fmt_p(entry["p_best"][task]),
                         _paper_text(ref, k, dataset)]
            if "Δ " + tasks[0] + " vs single-task" in head:
                cols += [_signed(entry["delta_single"][t]) for t in tasks]
            if has_gauc:
                cols += [f"{fmt(entry['gauc'][t][0])} ± {fmt(entry['gauc'][t][1])}"
                         for t in tasks]
            cols += [fmt(entry["val_mean"]), fmt(entry["best_epoch"], 1),
                     fmt(entry["train_seconds"], 1), fmt(entry["step_ms"], 1),
                     fmt(entry["mu_final"], 3)]
            lines.append("| " + " | ".join(cols) + " |")
        refs = sorted({paper.reference(dataset, e["paper"], cos)[1] for e in summary.values()
                       if paper.reference(dataset, e["paper"], cos) is not None})
        if refs:
            lines.append("")
            lines.append("Paper columns from: " + "; ".join(refs) + ".")
        lines.append("")
        best = {t: next(iter({e["best_baseline"][t] for e in summary.values()
                              if e["role"] != "baseline"}), None) for t in tasks}
        lines.append("Best baseline per task: " + ", ".join(
            f"{t}: {best[t] or '—'}" for t in tasks) + ".")
        lines.append("")
        lines += _selection(summary)
    if len(summaries) > 1:
        lines += _sweep_table(summaries, tasks)
    if dataset == "synthetic":
        lines += _table2(summaries, tasks)
    failed = [r for r in rows if r.get("status") not in ("ok",)]
    if failed:
        lines += ["## Not run or failed", ""]
        for row in failed:
            lines.append(f"- {row['cell']} (seed {row['seed']}, cos {_cos_label(row.get('cos'))})"
                         f": {row.get('status')} — {row.get('error') or ''}".rstrip(" —"))
        lines.append("")
    lines += list(notes)
    return "\n".join(lines).rstrip() + "\n"


def _paper_text(ref, k, dataset):
    """The paper's number for task ``k``; marked "(T5, industry)" when it comes from Table 5
    (printed for the industrial data set only) instead of the dataset's own table."""
    if ref is None or k >= len(ref[0]):
        return "—"
    text = fmt(ref[0][k])
    if ref[1].startswith("Table 5") and dataset != "industry":
        text += " (T5, industry)"
    return text


def _signed(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}"


def _selection(summary):
    """Validation-only model selection among the non-baseline cells."""
    ours = [(e["val_mean"], name) for name, e in summary.items()
            if e["role"] == "ours" and not math.isnan(e["val_mean"])]
    if len(ours) < 2:
        return []
    value, name = max(ours)
    return [f"Selected on validation only (highest mean validation AUC among the DRGrad cells): "
            f"**{name}** ({fmt(value)}); its test AUC above is its single test evaluation.", ""]


def _table2(summaries, tasks):
    """The paper's Table 2 layout: tasks as rows; MMoE, Split-MMoE and DRGrad at cos θ = 0.5
    ("cooperate") and −0.5 ("conflict") as columns, the paper's value in parentheses."""
    columns = []
    for cos, regime in paper.TABLE2_COS.items():
        summary = summaries.get(cos)
        if summary is None:
            continue
        for key in ("mmoe", "split_mmoe", "drgrad"):
            name = next((n for n, e in summary.items() if e["paper"] == key), None)
            if name is not None:
                columns.append((cos, regime, key, name))
    if not columns:
        return []
    lines = ["## Table 2 layout (test AUC, the paper's value in parentheses)", "",
             "| task | " + " | ".join(f"{regime} (cos {cos:+.1f}): {name}"
                                     for cos, regime, _, name in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for k, task in enumerate(tasks):
        cols = []
        for cos, regime, key, name in columns:
            mean = summaries[cos][name]["test"][task][0]
            cols.append(f"{fmt(mean)} ({fmt(paper.TABLE2[regime][key][k])})")
        lines.append(f"| {task} | " + " | ".join(cols) + " |")
    lines.append("")
    return lines


def _sweep_table(summaries, tasks):
    """Δ vs single-task (or test AUC when there is no single-task cell) against cos θ."""
    coses = [c for c in summaries if c is not None]
    names = []
    for summary in summaries.values():
        names += [n for n, e in summary.items() if n not in names and e["role"] != "single_task"]
    lines = []
    for task in tasks:
        has_single = any(summary.get(n, {}).get("delta_single", {}).get(task) is not None
                         for summary in summaries.values() for n in names)
        what = "Δ test AUC vs single-task" if has_single else "test AUC"
        lines += [f"## Sweep: {task}, {what} against cos θ", ""]
        lines.append("| method | " + " | ".join(_cos_label(c) for c in coses) + " |")
        lines.append("|---|" + "---|" * len(coses))
        for name in names:
            cols = []
            for cos in coses:
                entry = summaries[cos].get(name)
                if entry is None:
                    cols.append("—")
                elif has_single:
                    cols.append(_signed(entry["delta_single"][task]))
                else:
                    cols.append(fmt(entry["test"][task][0]))
            lines.append(f"| {name} | " + " | ".join(cols) + " |")
        lines.append("")
    return lines
