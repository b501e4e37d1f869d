"""PNG figures of a benchmark (matplotlib, Agg backend), from results.csv and the run logs.

* ``auc_curves[_cos…].png``: validation AUC per epoch, per task, mean over seeds, per cell.
* ``gradients[_cos…].png``: the DRGrad paper's Figs. 4–7 quantities over training, seed 0, for
  the Split-MMoE cell and the DRGrad cells: cos(g1′, gk) (ξ1, the dedicated primary tower's
  gradient against each auxiliary task's), cos(g1″, gk), cos(g1′, g1″) (ξ2), and the norm
  ratio ‖gk‖ / ‖g1′‖.
* ``mu[_cos…].png``: the updater's μ′ and μ″ = 1 − μ′ over training (seed 0).
* ``sweep.png`` (synthetic cos sweep): each cell's Δ test AUC vs the single-task cell of that
  task, against cos θ.
"""
import os

import numpy as np

from drgrad.bench import events, report


def _pyplot():
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    return plt


def _save(plt, fig, path, title=None):
    """Titles (if given), lays out, writes `path` (110 dpi) and closes the figure."""
    if title is not None:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smooth(values, window=9):
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _suffix(cos):
    return "" if cos is None else f"_cos{cos:+.2f}"


def _groups(results):
    groups = {}
    for row in results:
        if row.get("status") == "ok":
            groups.setdefault(row.get("cos"), {}).setdefault(row["cell"], []).append(row)
    return groups


def auc_curves(path, cells, tasks, title):
    """Validation AUC per epoch (mean over seeds) per task; ``cells``: {name: [row, ...]}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for name, rows in cells.items():
        curves = [events.epoch_val_auc(r["run_dir"], tasks) for r in rows]
        for k, task in enumerate(tasks):
            series = [c[task] for c in curves if len(c[task])]
            if not series:
                continue
            length = max(len(s) for s in series)
            stacked = np.full((len(series), length), np.nan)
            for i, s in enumerate(series):
                stacked[i, :len(s)] = s
            with np.errstate(all="ignore"):
                mean = np.nanmean(stacked, axis=0)
            axes[0, k].plot(np.arange(1, length + 1), mean, marker="o", ms=3, label=name)
    for k, task in enumerate(tasks):
        axes[0, k].set_title(f"{task}: validation AUC")
        axes[0, k].set_xlabel("epoch")
        axes[0, k].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return _save(plt, fig, path, title)


def _stat_cells(cells):
    """Seed-0 (or first) run of every cell that logged router statistics."""
    out = {}
    for name, rows in cells.items():
        row = sorted(rows, key=lambda r: r["seed"])[0]
        stats = events.step_stats(row["run_dir"])
        if "xi2" in stats:
            out[name] = stats
    return out


def gradient_figure(path, stats_by_cell, tasks, title):
    """Figs. 4–7 quantities: cosines with the primary task's gradients and norm ratios."""
    plt = _pyplot()
    aux = tasks[1:]
    panels = [("xi2", "cos(g1′, g1″)")]
    for task in aux:
        panels += [(f"xi1/{task}", f"cos(g1′, g[{task}])"),
                   (f"cos_shared/{task}", f"cos(g1″, g[{task}])"),
                   (f"norm_ratio/{task}", f"‖g[{task}]‖ / ‖g1′‖")]
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for p, (stat, label) in enumerate(panels):
        ax = axes[p // columns, p % columns]
        for name, stats in stats_by_cell.items():
            if stat in stats:
                steps, values = stats[stat]
                ax.plot(steps, _smooth(values), lw=1, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.axhline(1.0 if stat.startswith("norm_ratio") else 0.0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    for p in range(len(panels), rows * columns):
        axes[p // columns, p % columns].axis("off")
    axes[0, 0].legend(fontsize=7)
    return _save(plt, fig, path, title + " (seed 0, moving average of 9 logged steps)")


def mu_figure(path, stats_by_cell, title):
    """μ′ and μ″ = 1 − μ′ over training."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, stats in stats_by_cell.items():
        if "mu_dedicated" not in stats:
            continue
        steps, values = stats["mu_dedicated"]
        line, = ax.plot(steps, values, lw=1.2, label=f"{name} μ′")
        ax.plot(steps, 1.0 - values, lw=1.0, ls="--", color=line.get_color(),
                label=f"{name} μ″")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_title("updater: μ′ (T1′) and μ″ (T1″)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(plt, fig, path, title)


def sweep_figure(path, results, tasks):
    """Δ test AUC vs single-task (or test AUC without a single-task cell) against cos θ."""
    plt = _pyplot()
    summaries = report.summarize(results, tasks)
    coses = sorted(c for c in summaries if c is not None)
    names = []
    for cos in coses:
        names += [n for n, e in summaries[cos].items()
                  if n not in names and e["role"] != "single_task"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for k, task in enumerate(tasks):
        ax = axes[0, k]
        has_single = any(e["delta_single"][task] is not None
                         for cos in coses for e in summaries[cos].values())
        for name in names:
            xs, ys = [], []
            for cos in coses:
                entry = summaries[cos].get(name)
                if entry is None:
                    continue
                value = entry["delta_single"][task] if has_single else entry["test"][task][0]
                if value is not None:
                    xs.append(cos)
                    ys.append(value)
            ax.plot(xs, ys, marker="o", ms=4, label=name)
        if has_single:
            ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xlabel("cos θ")
        ax.set_title(f"{task}: " + ("Δ test AUC vs single-task" if has_single else "test AUC"),
                     fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    return _save(plt, fig, path)


def make_figures(out, results, tasks):
    """Writes every figure the results support under ``out/figures``; returns their paths."""
    directory = os.path.join(out, "figures")
    os.makedirs(directory, exist_ok=True)
    paths = []
    groups = _groups(results)
    for cos, cells in groups.items():
        where = "" if cos is None else f", cos θ = {cos:+.2f}"
        suffix = _suffix(cos)
        paths.append(auc_curves(os.path.join(directory, f"auc_curves{suffix}.png"), cells,
                                tasks, f"validation AUC per epoch (mean over seeds){where}"))
        wanted = {n: r for n, r in cells.items()
                  if r[0].get("role") == "ours" or r[0].get("paper") == "split_mmoe"}
        stats = _stat_cells(wanted)
        if stats:
            paths.append(gradient_figure(os.path.join(directory, f"gradients{suffix}.png"),
                                         stats, tasks, f"task-gradient geometry{where}"))
            with_mu = {n: s for n, s in stats.items() if "mu_dedicated" in s}
            if with_mu:
                paths.append(mu_figure(os.path.join(directory, f"mu{suffix}.png"), with_mu,
                                       f"μ over training{where}"))
    if len([c for c in groups if c is not None]) > 1:
        paths.append(sweep_figure(os.path.join(directory, "sweep.png"), results, tasks))
    return paths
