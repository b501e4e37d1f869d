"""`run_bench`: trains every cell × seed (× cos θ) of a grid on one protocol and writes
``results.csv``, ``report.md`` and the figures.

Protocol (the same for every cell): `drgrad.training.train.train` — Adam 1e-3, batch 1024, at most
``epochs`` epochs, early stopping on the exact validation mean AUC with ``patience``, best
weights restored, then ONE evaluation on the test split. The data seed is fixed (0) across
cells and seeds, so seed ``s`` of every cell sees the same data split and the t-tests pair
runs that differ only in the model/shuffle seed.

Layout of ``out``::

    results.csv      one row per cell × seed (× cos): test_<task>, val_<task>, best_epoch, ...
    report.md        tables (drgrad.bench.report)
    figures/*.png    (drgrad.bench.plots)
    runs/<cos>/<cell>/seed-<s>/   the `drgrad train` run directory of each run

Protocol ``authors`` (census only; `drgrad.bench.census_study.train_authors`): the released
DRGrad's own protocol instead: the 229,285 / 70,000 re-split, Adam 5e-4 β2 0.9999, batch 32,
16 epochs, positive weight 3 on income, no early stopping (``patience`` unused), the test AUC
both exact and as TF1's 200-threshold approximation (``auc200_<task>``); its ablations
``authors-pinned-split`` and ``authors-unweighted`` (`presets.AUTHORS_VARIANTS`).

Label noise (`Cell.flip_labels`; ``flip_labels`` flips every cell of the grid, renamed
``<cell> [task=fraction]``): each run flips that share of a task's training labels, drawn with
the run's seed (`drgrad.data.label_noise`), so every cell's seed ``s`` sees the same noisy
labels and the t-tests stay paired. ``results.csv`` records the level (``flip_labels``,
e.g. ``marital=0.2``) and report.md adds a table per task of each system's test AUC per level
with the paired t-test against MMoE at the same level.

A finished run (``metrics.json`` present) is read back instead of retrained, so an interrupted
benchmark resumes where it stopped; ``cell.json`` next to a cell's runs records its
configuration and protocol, and a mismatch is refused before any training. Each run in
progress holds ``<run>.lock`` (its process id), so several benchmark processes can share one
``out`` and split the work. Bad cells (unknown backbone or strategy, bad strategy arguments)
are refused up front; a run that still raises is recorded with status "failed" and its error,
and the benchmark goes on.
"""
import csv
import json
import os
import platform
import re
import shutil
import sys
import time
import traceback

import numpy as np

from drgrad.bench import events, report
from drgrad.bench.presets import parse_grid, system_name, with_flipped_labels
from drgrad.data import label_noise

DATASET_NAMES = {"census": "census", "census-income": "census", "synthetic": "synthetic",
                 "movielens": "movielens", "movielens-100k": "movielens"}
GENERATORS = ("angle", "paper")
MU_SATURATION = 0.99


def dataset_key(dataset):
    """What a run records as its dataset: a built-in's canonical name, or the absolute path of a
    dataset file (a user's logs, a simulated day)."""
    if dataset in DATASET_NAMES:
        return DATASET_NAMES[dataset]
    from drgrad.data import dataset_file  # pylint: disable=g-import-not-at-top
    return os.path.abspath(dataset) if dataset_file.is_dataset_file(dataset) else dataset


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.=+\-]+", "_", name).strip("_") or "cell"


def run_dir_for(out, cell, seed, cos):
    """Directory of one run: ``<out>/runs/<all|cos±c.cc>/<cell>/seed-<s>``."""
    group = "all" if cos is None else f"cos{cos:+.2f}"
    return os.path.join(out, "runs", group, _safe(cell.name), f"seed-{seed}")


def _cell_record(cell, dataset, rows, epochs, patience, batch_size, generator, source,
                 protocol="pinned"):
    """What must match for a finished run to be reused (written as ``cell.json``)."""
    record = {"cell": cell.to_dict(), "dataset": dataset_key(dataset), "rows": rows,
              "epochs": epochs, "patience": patience, "batch_size": batch_size,
              "generator": generator if dataset_key(dataset) == "synthetic" else None,
              "source": source}
    if protocol != "pinned":     # pinned records stay as they were written before protocols
        record.update(protocol=protocol, patience=None)
    return record


def _check_reuse(out, cells, groups, record_of):
    """Raises ValueError (before any training) if ``out`` holds runs of a cell of the same
    name under another configuration or protocol."""
    for cos in groups:
        for cell in cells:
            path = os.path.join(os.path.dirname(run_dir_for(out, cell, 0, cos)), "cell.json")
            if os.path.isfile(path):
                with open(path) as f:
                    existing = json.load(f)
                if existing != json.loads(json.dumps(record_of(cell))):
                    raise ValueError(
                        f"{path} holds cell {cell.name!r} under another configuration or "
                        f"protocol ({existing}); use another --out or another cell name")


def _check_args(dataset, seeds, epochs, patience, rows, cos_values, generator, batch_size,
                protocol="pinned"):
    from drgrad.data.specs import get_dataset  # pylint: disable=g-import-not-at-top
    try:
        get_dataset(dataset)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    from drgrad.bench.presets import AUTHORS_VARIANTS  # pylint: disable=g-import-not-at-top
    protocols = ("pinned", *AUTHORS_VARIANTS)
    if protocol not in protocols:
        raise ValueError(f"protocol must be one of {protocols}, got {protocol!r}")
    if protocol != "pinned" and dataset_key(dataset) != "census":
        raise ValueError(f"the authors' protocol is census's: --protocol {protocol} needs "
                         "--dataset census")
    for name, value, low in (("seeds", seeds, 1), ("epochs", epochs, 1),
                             ("patience", patience, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ValueError(f"rows must be a positive int, got {rows!r}")
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
    if cos_values is not None:
        if dataset_key(dataset) != "synthetic":
            raise ValueError("--cos applies to the synthetic dataset only")
        for cos in cos_values:
            if not isinstance(cos, (int, float)) or isinstance(cos, bool) or not -1 <= cos <= 1:
                raise ValueError(f"cos values must be numbers in [-1, 1], got {cos!r}")
        if len(set(cos_values)) != len(cos_values):
            raise ValueError(f"duplicate cos values: {list(cos_values)}")


def _check_cells(cells, tasks):
    """Raises ValueError before any training if a cell names an unknown backbone or strategy,
    gives its strategy bad arguments, or trains (or flips labels of) a task the dataset does
    not have."""
    from drgrad.model.backbones import get_backbone_class  # pylint: disable=g-import-not-at-top
    from drgrad.model.strategies import get_strategy  # pylint: disable=g-import-not-at-top
    for cell in cells:
        cell.task_weights(tasks)
        backbone, strategy, strategy_args = cell.resolved()
        try:
            label_noise.check_flips(cell.flip_labels, tasks)
            get_backbone_class(backbone)
            get_strategy(strategy, **strategy_args)
        except (TypeError, ValueError) as error:
            raise ValueError(f"cell {cell.name!r}: {error}") from None


def _mu_saturation_step(stats):
    """First logged step where μ′ ≥ 0.99 or ≤ 0.01 (the literal updater's runaway), or None."""
    if "mu_dedicated" not in stats:
        return None
    steps, values = stats["mu_dedicated"]
    for step, value in zip(steps, values):
        if value >= MU_SATURATION or value <= 1.0 - MU_SATURATION:
            return int(step)
    return None


def run_gauc(run_dir, test_frame, user_column):
    """``{task: GAUC}`` of a finished run on the test split (`drgrad.training.metrics.gauc`,
    users = ``test_frame[user_column]``; None for a task where no user has both classes),
    computed once from the saved model and cached in ``<run_dir>/gauc.json``."""
    path = os.path.join(run_dir, "gauc.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    from drgrad.training.callbacks import predict_arrays  # pylint: disable=g-import-not-at-top
    from drgrad.training.metrics import gauc  # pylint: disable=g-import-not-at-top
    from drgrad.training.run_dir import load_trained  # pylint: disable=g-import-not-at-top
    model, preprocessor, _ = load_trained(run_dir, compile_model=False)
    predictions, labels = predict_arrays(model, preprocessor.to_dataset(test_frame, 4096))
    users = test_frame[user_column].to_numpy()
    values = {}
    for task in model.task_names:
        try:
            values[task] = gauc(labels[task], predictions[task], users)
        except ValueError:       # no test user with both classes: GAUC undefined
            values[task] = None
    with open(path, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
    return values


def _row_head(cell, seed, cos, run_dir, status, error):
    """The columns every results row starts with, finished or not."""
    return {"cell": cell.name, "seed": seed, "cos": cos, "status": status, "role": cell.role,
            "flip_labels": label_noise.flip_text(cell.flip_labels),
            "paper": cell.paper or "", "single_task": "" if cell.single_task is None else
            cell.single_task, "run_dir": run_dir, "error": error}


def _row_from_metrics(cell, seed, cos, run_dir, metrics, tasks, gaucs=None):
    row = _row_head(cell, seed, cos, run_dir, "ok", "")
    backbone, strategy, strategy_args = cell.resolved()
    row.update(backbone=backbone, strategy=strategy,
               strategy_args=json.dumps(metrics.get("strategy_args", strategy_args),
                                        sort_keys=True),
               backbone_args=json.dumps(cell.backbone_args, sort_keys=True))
    for task in tasks:
        row[f"test_{task}"] = float(metrics["test"][task])
        row[f"val_{task}"] = float(metrics["val"][task])
        row[f"gauc_{task}"] = (gaucs or {}).get(task)
        row[f"auc200_{task}"] = metrics.get("test_auc200", {}).get(task)
    row["best_epoch"] = int(metrics["best_epoch"])
    row["epochs"] = int(metrics["epochs"])
    row["train_seconds"] = float(metrics["seconds"])
    row["skipped_steps"] = int(metrics.get("skipped_steps", 0))
    row["step_ms"] = round(events.mean_step_ms(run_dir), 3)
    mu = metrics.get("mu")
    row["mu_final"] = float(mu[0]) if mu else ""
    stats = events.step_stats(run_dir)
    saturation = _mu_saturation_step(stats) if mu else None
    row["mu_saturation_step"] = "" if saturation is None else saturation
    row.update(router_dynamics(stats))
    return row


def router_dynamics(stats):
    """Summary of the logged router statistics of one run (empty values without a router):

    * ``xi1_negative_share``: share of logged steps with ξ1 = cos(g1′, g_aux) < 0 (first
      auxiliary task), the steps where the literal router amplifies g1″ into T1′;
    * ``shared_norm_ratio_end``: median ‖g1″‖ / ‖g1′‖ over the last 20 % of logged steps
      (≈ 0 when the literal updater has starved T1″).
    """
    out = {"xi1_negative_share": "", "shared_norm_ratio_end": ""}
    xi1 = sorted(name for name in stats if name.startswith("xi1/"))
    if xi1:
        values = stats[xi1[0]][1]
        out["xi1_negative_share"] = round(float(np.mean(values < 0)), 4)
    if "norm_shared" in stats and "norm_dedicated" in stats:
        shared, dedicated = stats["norm_shared"][1], stats["norm_dedicated"][1]
        tail = max(1, len(shared) // 5)
        ratio = shared[-tail:] / np.maximum(dedicated[-tail:], 1e-12)
        out["shared_norm_ratio_end"] = round(float(np.median(ratio)), 6)
    return out


def _failed_row(cell, seed, cos, run_dir, status, error, tasks):
    row = _row_head(cell, seed, cos, run_dir, status, error)
    backbone, strategy, strategy_args = cell.resolved()
    row.update(backbone=backbone, strategy=strategy,
               strategy_args=json.dumps(strategy_args, sort_keys=True),
               backbone_args=json.dumps(cell.backbone_args, sort_keys=True))
    for task in tasks:
        row[f"test_{task}"] = ""
        row[f"val_{task}"] = ""
        row[f"gauc_{task}"] = ""
        row[f"auc200_{task}"] = ""
    return row


def result_columns(tasks):
    return (["cell", "seed", "cos", "flip_labels", "status", "role"]
            + [f"test_{t}" for t in tasks]
            + [f"val_{t}" for t in tasks] + [f"gauc_{t}" for t in tasks]
            + [f"auc200_{t}" for t in tasks]
            + ["best_epoch", "epochs", "train_seconds", "step_ms", "mu_final",
               "mu_saturation_step", "xi1_negative_share", "shared_norm_ratio_end",
               "skipped_steps", "backbone", "strategy", "strategy_args",
               "backbone_args", "paper", "single_task", "run_dir", "error"])


def write_results(path, rows, tasks):
    """Writes results.csv atomically (temporary file, then rename)."""
    columns = result_columns(tasks)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    os.replace(tmp, path)


def read_results(path):
    """results.csv -> list of row dicts with numbers parsed (empty cells -> None)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for key, value in raw.items():
                if value == "":
                    row[key] = None
                elif key == "seed":
                    row[key] = int(value)
                elif key == "cos" or key.startswith(
                        ("test_", "val_", "gauc_", "auc200_")) or key in (
                        "train_seconds", "step_ms", "mu_final"):
                    row[key] = float(value)
                else:
                    row[key] = value
            rows.append(row)
    return rows


def run_bench(dataset, grid, out, seeds=5, epochs=15, patience=2, rows=None, cos_values=None,
              generator="angle", source=None, batch_size=1024, log_every=10, command=None,
              plots=True, verbose=True, train_missing=True, protocol="pinned", flip_labels=None):
    """Runs the benchmark (see the module docstring); returns the result rows.

    With ``train_missing=False`` nothing is trained: finished runs are read back and the others
    are reported as "not run" (a report of a benchmark still in progress). ``flip_labels``
    (``{task: fraction}``): every cell flips those training labels (`with_flipped_labels`).
    """
    _check_args(dataset, seeds, epochs, patience, rows, cos_values, generator, batch_size,
                protocol)
    cells = parse_grid(grid) if isinstance(grid, str) else tuple(grid)
    if not cells:
        raise ValueError("the grid has no cells")
    if flip_labels:
        cells = tuple(with_flipped_labels(cell, flip_labels) for cell in cells)
    from drgrad import data  # pylint: disable=g-import-not-at-top
    spec = data.get_spec(dataset)
    tasks = list(spec.tasks)
    _check_cells(cells, tasks)
    has_personalization = any(spec.personalization.get(k) for k in ("user", "item", "author"))
    # GAUC groups the test rows by the dataset's (first) personalization user column.
    user_column = (spec.personalization.get("user") or (None,))[0]
    test_frames = {}
    synthetic = dataset_key(dataset) == "synthetic"
    if synthetic and cos_values is None:
        cos_values = [0.5]
    groups = list(cos_values) if synthetic else [None]

    def record_of(cell):
        return _cell_record(cell, dataset, rows, epochs, patience, batch_size, generator, source,
                            protocol)

    _check_reuse(out, cells, groups, record_of)
    os.makedirs(out, exist_ok=True)
    results_path = os.path.join(out, "results.csv")
    started = time.time()
    results = []
    from drgrad.training.train import train  # pylint: disable=g-import-not-at-top
    # Seed-major order: after each round every cell (at every cos θ) has one more seed, so an
    # interrupted benchmark still compares all cells.
    plan = [(cos, seed, cell) for seed in range(seeds) for cos in groups for cell in cells]
    for done, (cos, seed, cell) in enumerate(plan, 1):
        run_dir = run_dir_for(out, cell, seed, cos)
        label = f"[{done}/{len(plan)}] {cell.name} seed {seed}" + (
            "" if cos is None else f" cos {cos:+.2f}")
        if cell.needs_personalization and not has_personalization:
            results.append(_failed_row(
                cell, seed, cos, run_dir, "skipped",
                f"{spec.name} has no personalization features: same model as the "
                "w/o-PPNet cell", tasks))
            continue
        metrics_path = os.path.join(run_dir, "metrics.json")
        lock = None
        options = {"generator": generator, "cos": float(cos)} if synthetic else None
        try:
            if os.path.isfile(metrics_path):
                with open(metrics_path) as f:
                    metrics = json.load(f)
                how = "reused"
            elif not train_missing:
                results.append(_failed_row(cell, seed, cos, run_dir, "not run",
                                           "no finished run (--no-train)", tasks))
                continue
            else:
                lock = _acquire(run_dir)
                if lock is None:
                    results.append(_failed_row(cell, seed, cos, run_dir, "running",
                                               "being trained by another process", tasks))
                    continue
                if os.path.isdir(run_dir):   # an interrupted run: start it again
                    shutil.rmtree(run_dir)
                os.makedirs(os.path.dirname(run_dir), exist_ok=True)
                with open(os.path.join(os.path.dirname(run_dir), "cell.json"), "w") as f:
                    json.dump(record_of(cell), f, indent=2, sort_keys=True)
                if protocol != "pinned":
                    # pylint: disable-next=g-import-not-at-top
                    from drgrad.bench.census_study import train_authors
                    metrics = train_authors(run_dir, cell, seed, epochs=epochs,
                                            batch_size=batch_size, rows=rows,
                                            log_every=log_every, variant=protocol)
                else:
                    metrics = train(dataset, run_dir, epochs=epochs, batch_size=batch_size,
                                    seed=seed, rows=rows, source=source, patience=patience,
                                    task_weights=cell.task_weights(tasks), log_every=log_every,
                                    verbose=0, data_options=options, **cell.train_kwargs())
                how = "trained"
            gaucs = None
            if user_column is not None:
                if cos not in test_frames:
                    test_frames[cos] = data.load_frames(dataset, source=source, rows=rows,
                                                        seed=0, **(options or {}))["test"]
                gaucs = run_gauc(run_dir, test_frames[cos], user_column)
            row = _row_from_metrics(cell, seed, cos, run_dir, metrics, tasks, gaucs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # pylint: disable=broad-except
            row = _failed_row(cell, seed, cos, run_dir, "failed",
                              f"{type(error).__name__}: {error}".replace("\n", " "), tasks)
            how = "FAILED"
            if verbose:
                traceback.print_exc()
        finally:
            if lock is not None:
                os.remove(lock)
            _clear_session()
        results.append(row)
        write_results(results_path, _ordered(results, cells), tasks)
        if verbose:
            aucs = " ".join(f"{t} {row[f'test_{t}']:.4f}" for t in tasks
                            if row.get(f"test_{t}") not in ("", None))
            print(f"{label}: {how} {aucs} ({time.time() - started:.0f} s)", flush=True)
    results = _ordered(results, cells)
    write_results(results_path, results, tasks)
    wall = time.time() - started
    finish(out, dataset, tasks, wall=wall, command=command, epochs=epochs,
           patience=patience, seeds=seeds, rows=rows, generator=generator if synthetic else None,
           batch_size=batch_size, plots=plots, protocol=protocol)
    return results


def _acquire(run_dir):
    """Creates ``<run_dir>.lock`` holding this process id; None if a live process holds it
    (two benchmarks sharing an --out never train the same run twice)."""
    path = run_dir.rstrip(os.sep) + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or 0)
                os.kill(pid, 0)
                return None              # held by a live process
            except (ValueError, ProcessLookupError):
                os.remove(path)          # stale lock of a dead process
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    return None


def _ordered(results, cells):
    """Rows sorted by (cos, cell order, seed) for results.csv and the tables."""
    order = {cell.name: i for i, cell in enumerate(cells)}
    return sorted(results, key=lambda r: (-(r["cos"] or 0.0) if r["cos"] is not None else 0.0,
                                          order[r["cell"]], r["seed"]))


def _clear_session():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.keras.backend.clear_session()


def header_lines(dataset, seeds, epochs, patience, rows, generator, wall, command,
                 batch_size=1024, protocol="pinned"):
    if protocol != "pinned":
        described = (f"- protocol: {protocol} (docs/REFERENCE.md; authors': census 229,285 / "
                     f"70,000 re-split, income positives ×3), {seeds} seed(s), {epochs} "
                     f"epoch(s), no early stopping, Adam 5e-4 β2 0.9999, batch {batch_size}, "
                     f"test evaluated once per run (exact AUC; auc200_*: TF1's 200-threshold "
                     f"AUC)")
    else:
        described = (f"- protocol: {seeds} seed(s), at most {epochs} epoch(s), early stopping "
                     f"on validation mean AUC (patience {patience}), Adam 1e-3, batch "
                     f"{batch_size}, test evaluated once per run")
    lines = [f"- command: `{command}`" if command else None,
             f"- hardware: {platform.machine()}, {os.cpu_count()} CPU cores "
             f"({platform.processor() or platform.platform()}); Python "
             f"{sys.version.split()[0]}",
             described,
             f"- rows per split: {rows if rows else 'all'}"
             + (f"; generator: {generator}" if generator else ""),
             f"- wall time: {wall / 60:.1f} min" if wall is not None else None]
    return [line for line in lines if line]


def refresh_derived(out, tasks):
    """Recomputes the columns derived from the run logs (step_ms, μ saturation, router
    dynamics) of every finished row of ``out/results.csv`` whose run directory still exists,
    and rewrites the CSV (for results written by an older harness)."""
    path = os.path.join(out, "results.csv")
    rows = read_results(path)
    for row in rows:
        run_dir = row.get("run_dir")
        if row.get("status") != "ok" or not run_dir or not os.path.isdir(run_dir):
            continue
        stats = events.step_stats(run_dir)
        row["step_ms"] = round(events.mean_step_ms(run_dir), 3)
        if row.get("mu_final") is not None:
            saturation = _mu_saturation_step(stats)
            row["mu_saturation_step"] = "" if saturation is None else saturation
        row.update(router_dynamics(stats))
    write_results(path, rows, tasks)
    return rows


def finish(out, dataset, tasks, wall=None, command=None, epochs=None, patience=None,
           seeds=None, rows=None, generator=None, batch_size=1024, plots=True,
           protocol="pinned"):
    """Writes report.md and the figures from ``out/results.csv`` (read back from the file, so
    the report shows exactly the CSV's numbers); returns the report text."""
    from drgrad.bench import plots as plotting  # pylint: disable=g-import-not-at-top
    results = read_results(os.path.join(out, "results.csv"))
    figures = []
    if plots:
        figures = plotting.make_figures(out, results, tasks)
    notes = []
    if figures:
        notes += ["## Figures", ""]
        notes += [f"![{os.path.basename(p)}]({os.path.relpath(p, out)})" for p in figures]
        notes.append("")
    notes += _mu_notes(results)
    notes += noise_notes(results, tasks)
    text = report.render(results, tasks, dataset,
                         header_lines=header_lines(dataset, seeds, epochs, patience, rows,
                                                   generator, wall, command, batch_size,
                                                   protocol),
                         notes=notes)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text)
    return text


def _mu_notes(results):
    """μ′ dynamics per DRGrad cell: final μ′ and the step where it saturated (if it did)."""
    lines = []
    for row in results:
        if row.get("status") != "ok" or row.get("mu_final") is None:
            continue
        if not lines:
            lines = ["## μ′ (updater) and router dynamics", "",
                     "| method | seed | cos | μ′ final | first step with μ′ ≥ 0.99 or ≤ 0.01 "
                     "| share of steps with ξ1 < 0 | ‖g1″‖/‖g1′‖, last 20 % of steps |",
                     "|---|---|---|---|---|---|---|"]
        sat = row.get("mu_saturation_step")
        lines.append(f"| {row['cell']} | {row['seed']} | "
                     f"{'—' if row.get('cos') is None else format(row['cos'], '+.2f')} | "
                     f"{row['mu_final']:.4f} | {'never' if sat in (None, '') else sat} | "
                     f"{row.get('xi1_negative_share') or '—'} | "
                     f"{row.get('shared_norm_ratio_end') or '—'} |")
    if lines:
        lines.append("")
        lines.append("(steps are logged every `log_every` steps, so the saturation step is "
                     "rounded up to that grid.)")
        lines.append("")
    return lines


def noise_notes(results, tasks):
    """Per task, a table of each system's test AUC (mean ± sample std over seeds) per label
    noise level (the ``flip_labels`` column), with the difference of means and the paired
    t-test p (`report.paired_ttest`) against MMoE at the same level; none without flips."""
    cells = {}      # (system, level) -> rows; dicts keep the first-seen order
    for row in results:
        if row.get("status") == "ok" and row.get("flip_labels"):
            level = row["flip_labels"]
            flips = dict(label_noise.parse_flip(item) for item in level.split(","))
            cells.setdefault((system_name(row["cell"], flips), level), []).append(row)
    if not cells:
        return []
    systems = list(dict.fromkeys(system for system, _ in cells))
    levels = list(dict.fromkeys(level for _, level in cells))
    mmoe = {level: next((rows for (_, at), rows in cells.items() if at == level
                         and rows[0].get("paper") == "mmoe" and rows[0].get("role") == "baseline"),
                        None) for level in levels}
    lines = []
    for task in tasks:
        lines += [f"## Label noise: {task} test AUC by flipped training labels", "",
                  "Mean ± sample std over seeds; (Δ vs MMoE at the same level, paired t-test "
                  "p by seed). The main table's p compares across levels; this one does not.",
                  "", "| method | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
        for system in systems:
            texts = []
            for level in levels:
                rows = cells.get((system, level))
                if rows is None:
                    texts.append("—")
                    continue
                by_seed = {row["seed"]: row[f"test_{task}"] for row in rows}
                mean, std = report.mean_std(by_seed.values())
                text = f"{report.fmt(mean)} ± {report.fmt(std)}"
                if mmoe[level] is not None and mmoe[level] is not rows:
                    reference = {row["seed"]: row[f"test_{task}"] for row in mmoe[level]}
                    delta = mean - report.mean_std(reference.values())[0]
                    text += (f" ({delta:+.4f}, p "
                             f"{report.fmt_p(report.paired_ttest(by_seed, reference))})")
                texts.append(text)
            lines.append(f"| {system} | " + " | ".join(texts) + " |")
        lines.append("")
    return lines


__all__ = ["run_bench", "finish", "refresh_derived", "read_results", "write_results",
           "run_dir_for", "router_dynamics", "run_gauc", "dataset_key", "noise_notes"]
