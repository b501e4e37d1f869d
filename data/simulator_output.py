"""Writing a simulation (`drgrad.data.simulator`) in the project's span layout.

    <out>/<name>/span-<N>/{train,eval,test}/part-<k>.<csv|tfrecord.gz|parquet>   one span a day
    <out>/<name>/manifest.json      as `drgrad.data.datasets.split_days` writes it
    <out>/<name>/<name>.yaml        the dataset file (`drgrad.data.dataset_file`), source: .
    <out>/<name>/generator.json     the true generating parameters, achieved rates, cold start

A part holds up to `PART_CHUNKS` chunks of a day; the work is the list of (day, part) units,
done in order by one process or dealt to `workers` spawned processes, each rebuilding the same
`World` from the config, so the bytes do not depend on `workers`. A span is written under
`.span-<N>.tmp/` and renamed when its last part is done, and the manifest, the dataset file and
generator.json are written last, so a killed run leaves no span that looks complete.

Formats: CSV (one header row; cells typed as CsvExampleGen infers them), gzip TFRecord of
`tf.train.Example` (int64 / float / bytes; encoded here in the deterministic serialization,
sorted keys, as `SerializeToString(deterministic=True)` gives), Parquet (pyarrow; int64,
double, string).
"""
import json
import multiprocessing
import os
import shutil
import struct
from typing import Dict, List

import numpy as np
import yaml

from drgrad.data import dataset_file, simulator, simulator_config
from drgrad.data.datasets import MANIFEST_NAME

PART_CHUNKS = 20
FORMATS = {"csv": "csv", "tfrecord": "tfrecord.gz", "parquet": "parquet"}
GENERATOR_NAME = "generator.json"
# Conflict users' ids are listed in generator.json up to this many (else: recompute them).
MAX_LISTED_IDS = 100_000


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf encodes it (two's complement).
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def _feature(kind: str, value) -> bytes:
    """A `tf.train.Feature` holding one value: bytes_list (1), float_list (2), int64_list (3)."""
    if kind == "int":
        return _field(0x1A, _field(0x0A, _varint(int(value))))
    if kind == "float":
        return _field(0x12, _field(0x0A, struct.pack("<f", value)))
    return _field(0x0A, _field(0x0A, str(value).encode("utf-8")))


def encode_examples(columns: Dict[str, np.ndarray], dtypes: Dict[str, str]) -> List[bytes]:
    """Serialized `tf.train.Example`s of the rows, map keys sorted (deterministic)."""
    entries = []
    for name in sorted(columns):
        uniques, inverse = np.unique(columns[name], return_inverse=True)
        key = _field(0x0A, name.encode("utf-8"))
        encoded = np.array([_field(0x0A, key + _field(0x12, _feature(dtypes[name], value)))
                            for value in uniques.tolist()], dtype=object)
        entries.append(encoded[inverse])
    return [_field(0x0A, b"".join(row)) for row in zip(*entries)]


class _Csv:
    def __init__(self, path, columns, dtypes):
        del dtypes  # CSV cells carry their type.
        import pandas as pd  # pylint: disable=g-import-not-at-top

        self._frame = pd.DataFrame
        self._columns = columns
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._file.write(",".join(columns) + "\n")

    def write(self, columns):
        self._frame({c: columns[c] for c in self._columns}).to_csv(
            self._file, header=False, index=False, lineterminator="\n")

    def close(self):
        self._file.close()


class _Parquet:
    def __init__(self, path, columns, dtypes):
        import pyarrow as pa  # pylint: disable=g-import-not-at-top
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

        types = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
        self._schema = pa.schema([(c, types[dtypes[c]]) for c in columns])
        self._table = pa.Table.from_arrays
        self._array = pa.array
        self._writer = pq.ParquetWriter(path, self._schema)

    def write(self, columns):
        self._writer.write_table(self._table(
            [self._array(columns[f.name], type=f.type) for f in self._schema],
            schema=self._schema))

    def close(self):
        self._writer.close()


class _TFRecord:
    def __init__(self, path, columns, dtypes):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        self._columns, self._dtypes = columns, dtypes
        self._writer = tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP"))

    def write(self, columns):
        for record in encode_examples({c: columns[c] for c in self._columns}, self._dtypes):
            self._writer.write(record)

    def close(self):
        self._writer.close()


_WRITERS = {"csv": _Csv, "tfrecord": _TFRecord, "parquet": _Parquet}


def describe(config: simulator_config.Config, name: str, fmt: str) -> Dict:
    """The dataset file of a simulation (`drgrad.data.dataset_file`), as a mapping."""
    return {
        "name": name,
        "tasks": config.task_names,
        "task_weights": {},
        "features": {"categorical": list(simulator_config.CATEGORICAL),
                     "numeric": list(simulator_config.NUMERIC),
                     "log_numeric": list(simulator_config.NUMERIC),
                     "dtypes": dict(simulator_config.DTYPES)},
        "transform": {"vocab_top_k": None, "vocab_frequency_threshold": 0, "num_oov_buckets": 1,
                      "embedding_dim": 8},
        "personalization": {"user": ["user_id"], "item": ["item_id"], "author": ["author_id"]},
        "partition_feature": "user_id",
        "timestamp": simulator_config.TIMESTAMP,
        "source": {"format": fmt, "path": "."},
    }


class _PartJob:
    """Writes one (day, part) unit into the day's staging folder; returns its counts."""

    def __init__(self, world: simulator.World, fmt: str, target: str):
        self.world, self.fmt, self.target = world, fmt, target
        tasks = self.world.config.task_names
        self.columns = (list(simulator_config.CATEGORICAL) + list(simulator_config.NUMERIC)
                        + [simulator_config.TIMESTAMP] + tasks)
        self.dtypes = {**simulator_config.DTYPES, simulator_config.TIMESTAMP: "int",
                       **{task: "int" for task in tasks}}

    def __call__(self, unit):
        day, part = unit
        world = self.world
        writers = {}
        for split in simulator.SPLITS:
            folder = os.path.join(self.target, f".span-{day + 1}.tmp", split)
            os.makedirs(folder, exist_ok=True)
            writers[split] = _WRITERS[self.fmt](
                os.path.join(folder, f"part-{part:05d}.{FORMATS[self.fmt]}"), self.columns,
                self.dtypes)
        new = world.new_ids(day)
        counts = {"rows": dict.fromkeys(simulator.SPLITS, 0),
                  "positives": [0] * len(world.config.tasks), "new_rows": dict.fromkeys(new, 0)}
        try:
            for chunk in range(part * PART_CHUNKS, min((part + 1) * PART_CHUNKS,
                                                       world.chunks())):
                columns, split_index = world.rows(day, chunk)
                for index, split in enumerate(simulator.SPLITS):
                    mask = split_index == index
                    writers[split].write({c: columns[c][mask] for c in self.columns})
                    counts["rows"][split] += int(mask.sum())
                for t, task in enumerate(world.config.task_names):
                    counts["positives"][t] += int(columns[task].sum())
                for column, (lo, hi) in new.items():
                    ids = columns[column]
                    counts["new_rows"][column] += int(((ids >= lo) & (ids < hi)).sum())
        finally:
            for writer in writers.values():
                writer.close()
        return counts


_JOB = None


def _start_worker(config, fmt, target):
    global _JOB  # pylint: disable=global-statement
    _JOB = _PartJob(simulator.World(simulator_config.Config.from_dict(config)), fmt, target)


def _run_unit(unit):
    return _JOB(unit)


def _write_text(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def simulate(config: simulator_config.Config, out_dir, name: str, fmt: str = "csv",
             workers: int = 2, overwrite: bool = False, preset: str = "default") -> Dict:
    """Writes the simulation to `<out_dir>/<name>/` (module docstring).

    Returns `{"path", "manifest", "generator", "description"}` (the last: the YAML's path).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    target = os.path.join(os.path.abspath(os.fspath(out_dir)), name)
    yaml_path = os.path.join(target, f"{name}.yaml")
    document = describe(config, name, fmt)
    dataset_file.parse(document, yaml_path)  # A bad name fails here, before any work.
    if os.path.lexists(target):
        if not overwrite:
            raise FileExistsError(f"{target} already exists; remove it or pass --overwrite")
        if not os.path.isdir(target):
            raise NotADirectoryError(f"output path exists and is not a directory: {target}")
        shutil.rmtree(target)
    world = simulator.World(config)
    os.makedirs(target)
    parts = -(-world.chunks() // PART_CHUNKS)
    units = [(day, part) for day in range(config.days) for part in range(parts)]
    days = [{"rows": dict.fromkeys(simulator.SPLITS, 0), "positives": [0] * len(config.tasks),
             "new_rows": dict.fromkeys(("user_id", "item_id"), 0)} for _ in range(config.days)]

    def collect(results):
        for (day, part), counts in zip(units, results):
            totals = days[day]
            for split, rows in counts["rows"].items():
                totals["rows"][split] += rows
            totals["positives"] = [a + b for a, b in zip(totals["positives"],
                                                         counts["positives"])]
            for column, rows in counts["new_rows"].items():
                totals["new_rows"][column] += rows
            if part == parts - 1:
                os.rename(os.path.join(target, f".span-{day + 1}.tmp"),
                          os.path.join(target, f"span-{day + 1}"))

    workers = min(workers, len(units))
    if workers == 1:
        collect(map(_PartJob(world, fmt, target), units))
    else:
        with multiprocessing.get_context("spawn").Pool(
                workers, initializer=_start_worker,
                initargs=(config.to_dict(), fmt, target)) as pool:
            collect(pool.imap(_run_unit, units))
    return _finish(world, target, name, fmt, preset, document, days)


def _finish(world, target, name, fmt, preset, document, days) -> Dict:
    config = world.config
    spec = dataset_file.parse(document, target).spec()
    manifest_spans, cold_start = {}, []
    total_rows = sum(sum(day["rows"].values()) for day in days)
    for day, totals in enumerate(days):
        date = world.date(day).isoformat()
        manifest_spans[str(day + 1)] = {"date": date, "rows": totals["rows"]}
        rows = sum(totals["rows"].values())
        new = world.new_ids(day)
        cold_start.append({"span": day + 1, "date": date, **{
            f"new_{column[:-3]}_ids": list(new[column]) for column in new}, **{
            f"new_{column[:-3]}_row_share": totals["new_rows"][column] / rows
            for column in new}})
    columns = list(spec.features) + [simulator_config.TIMESTAMP] + list(spec.tasks)
    manifest = {"dataset": name, "spans": manifest_spans, "tasks": list(spec.tasks),
                "columns": columns, "raw_dtypes": dict(spec.raw_dtypes), "source": None,
                "rows_per_split_limit": None, "seed": config.seed,
                "options": {"simulator": preset, "format": fmt}}
    conflict_ids = world.conflict_user_ids()
    generator = {
        "simulator": "drgrad.data.simulator", "preset": preset, "format": fmt,
        "config": config.to_dict(), "chunk_rows": simulator.CHUNK_ROWS,
        "part_rows": simulator.CHUNK_ROWS * PART_CHUNKS,
        "new_users_per_day": world.new_users_per_day,
        "new_items_per_day": world.new_items_per_day,
        "tasks": {task.name: {
            "requested_rate": task.rate,
            "achieved_rate": sum(day["positives"][t] for day in days) / total_rows,
            "cos": float(world.cos[t]), "noise": float(world.noise[t]),
            "bias": float(world.biases[t]), "parent": task.parent,
            "duration_effect": task.duration_effect,
            "hour_amplitude": float(world.hour_amplitude[t]),
            "hour_peak": float(world.hour_peak[t]),
            "device_effect": dict(zip(simulator.DEVICES, world.device_effect[t].tolist()))}
            for t, task in enumerate(config.tasks)},
        "conflict_users": {
            "task": config.conflict_task, "fraction": config.conflict_user_fraction,
            "count": len(conflict_ids),
            "ids": conflict_ids.tolist() if len(conflict_ids) <= MAX_LISTED_IDS else None,
            "recompute": "drgrad.data.simulator.World(drgrad.data.simulator_config.Config"
                         ".from_dict(generator['config'])).conflict_user_ids()"},
        "days": cold_start,
    }
    _write_text(os.path.join(target, GENERATOR_NAME), json.dumps(generator, indent=2) + "\n")
    _write_text(os.path.join(target, MANIFEST_NAME), json.dumps(manifest, indent=2) + "\n")
    yaml_path = os.path.join(target, f"{name}.yaml")
    _write_text(yaml_path, "# Written by `drgrad data simulate`; generator.json holds the "
                "generating parameters.\n"
                + yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
    return {"path": target, "manifest": manifest, "generator": generator,
            "description": yaml_path}
