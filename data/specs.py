"""The datasets a `--dataset` can name: the four built-ins and any user dataset file.

The built-ins are dataset files under data/ (`census-income.yaml`, `synthetic.yaml`,
`movielens-100k.yaml`, `byterec.yaml`) whose `source.loader` names the code that reads their
raw files (the census protocol, the synthetic generators, the MovieLens / ByteRec readers), so
a built-in and a user's file take one path: `get_dataset(value)` reads either, `get_spec(value)`
gives its `DatasetSpec`. This module also keeps what only those loaders need: the column layout
of the raw files.
"""
import glob
import os
from typing import Dict, Sequence

from drgrad.data import dataset_file
from drgrad.data.dataset_spec import PERSONALIZATION_KEYS, RAW_DTYPES, DatasetSpec

__all__ = ["DatasetSpec", "RAW_DTYPES", "PERSONALIZATION_KEYS", "SPECS", "ALIASES",
           "get_dataset", "get_spec", "dataset_names"]

BUILTIN_DIR = os.path.dirname(os.path.abspath(__file__))


def _builtins() -> Dict[str, "dataset_file.DatasetFile"]:
    files = {}
    for path in sorted(glob.glob(os.path.join(BUILTIN_DIR, "*.yaml"))):
        parsed = dataset_file.load(path)
        if parsed.source.loader is None:
            raise ValueError(f"{path}: a built-in dataset file needs source.loader")
        files[parsed.name] = parsed
    return files


BUILTINS = _builtins()
SPECS: Dict[str, DatasetSpec] = {name: parsed.spec() for name, parsed in BUILTINS.items()}
CENSUS = SPECS["census-income"]
SYNTHETIC = SPECS["synthetic"]
MOVIELENS = SPECS["movielens-100k"]
BYTEREC = SPECS["byterec"]

# Accepted alternative spellings on the command line.
ALIASES = {"census": "census-income", "movielens": "movielens-100k", "ml-100k": "movielens-100k"}


def get_dataset(value: str) -> "dataset_file.DatasetFile":
    """A built-in's dataset file by name (or alias), or a user's dataset file by path."""
    if not isinstance(value, str):
        raise TypeError(f"dataset must be a name or a file path, got {type(value).__name__}")
    if dataset_file.is_dataset_file(value):
        return dataset_file.load(value)
    key = ALIASES.get(value, value)
    if key not in BUILTINS:
        raise ValueError(f"unknown dataset {value!r}; built-in datasets: "
                         f"{', '.join(sorted(BUILTINS))}, or give a dataset file "
                         f"(PATH.yaml)")
    return BUILTINS[key]


def get_spec(value: str) -> DatasetSpec:
    """The `DatasetSpec` of a built-in (by name or alias) or of a dataset file (by path); the
    raw types a file leaves open are read from its data (`drgrad.data.sources`)."""
    if isinstance(value, str) and not dataset_file.is_dataset_file(value):
        get_dataset(value)  # the error message for unknown names
        return SPECS[ALIASES.get(value, value)]
    dataset = get_dataset(value)
    if not dataset.open_dtypes:
        return dataset.spec()
    from drgrad.data import sources  # pylint: disable=g-import-not-at-top
    return dataset.spec(sources.infer_dtypes(dataset))


def dataset_names() -> Sequence[str]:
    return tuple(sorted(SPECS))


# --- raw-file layouts the built-in loaders read ----------------------------------------------
# census-income (UCI KDD): columns in file order (42, no header); names as in keras-mmoe.
CENSUS_RAW_COLUMNS = (
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour",
    "hs_college", "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin",
    "sex", "union_member", "unemp_reason", "full_or_part_emp", "capital_gains",
    "capital_losses", "stock_dividends", "tax_filer_stat", "region_prev_res",
    "state_prev_res", "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa",
    "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt", "num_emp",
    "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k",
)
# synthetic: the generator's feature counts (synthetic.yaml names them).
SYNTHETIC_NUM_SPARSE = 6
SYNTHETIC_NUM_DENSE = 26
# byterec sample: tab-separated columns in file order.
BYTEREC_RAW_COLUMNS = ("uid", "user_city", "item_id", "author_id", "item_city", "channel",
                       "finish", "like", "music_id", "device", "time", "duration_time")
