"""Tests for data.specs: the registry, validation and the raw feature spec."""
import pytest

from drgrad.data import specs
from drgrad.data.specs import DatasetSpec


def _spec(**overrides):
    arguments = dict(name="toy", tasks=("click", "buy"), categorical=("user", "color"),
                     numeric=("price",), log_numeric=("price",),
                     raw_dtypes={"user": "int", "color": "string", "price": "float"},
                     personalization={"user": ("user",)}, partition_feature="user")
    arguments.update(overrides)
    return DatasetSpec(**arguments)


def test_registry_names_and_aliases():
    assert set(specs.SPECS) == {"census-income", "synthetic", "movielens-100k", "byterec"}
    assert specs.get_spec("census") is specs.get_spec("census-income")
    assert specs.get_spec("ml-100k").name == "movielens-100k"


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'.*census-income"):
        specs.get_spec("imagenet")


@pytest.mark.parametrize("name", sorted(specs.SPECS))
def test_registered_specs_are_consistent(name):
    spec = specs.get_spec(name)
    assert spec.columns == spec.categorical + spec.numeric + spec.tasks
    assert set(spec.raw_dtypes) == set(spec.features)
    assert DatasetSpec.from_dict(spec.to_dict()) == spec


def test_census_spec_has_the_protocol_columns():
    spec = specs.CENSUS
    assert spec.tasks == ("income", "marital")
    assert len(spec.categorical) == 32 and len(spec.numeric) == 7
    for dropped in ("instance_weight", "marital_stat", "income_50k"):
        assert dropped not in spec.columns
    assert spec.log_numeric == ("wage_per_hour", "capital_gains", "capital_losses",
                                "stock_dividends")
    assert spec.raw_dtypes["det_ind_code"] == "int"
    assert spec.raw_dtypes["education"] == "string"
    assert spec.raw_dtypes["age"] == "int"


def test_personalization_defaults_to_empty_groups():
    spec = _spec(personalization={})
    assert spec.personalization == {"user": (), "item": (), "author": ()}
    assert specs.BYTEREC.personalization["author"] == ("author_id",)


@pytest.mark.parametrize("overrides, message", [
    (dict(tasks=()), "at least one task"),
    (dict(log_numeric=("user",)), "log_numeric must be a subset"),
    (dict(raw_dtypes={"user": "int", "color": "string"}), "missing \\['price'\\]"),
    (dict(raw_dtypes={"user": "int", "color": "text", "price": "float"}), "one of"),
    (dict(raw_dtypes={"user": "float", "color": "string", "price": "float"}),
     "must be int or string"),
    (dict(raw_dtypes={"user": "int", "color": "string", "price": "string"}),
     "must be int or float"),
    (dict(personalization={"user": ("price",)}), "must be categorical"),
    (dict(personalization={"viewer": ("user",)}), "unknown personalization keys"),
    (dict(partition_feature="zip"), "partition_feature 'zip'"),
    (dict(tasks=("click", "user")), "listed twice"),
])
def test_invalid_specs_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        _spec(**overrides)


def test_raw_feature_spec_excludes_labels_and_maps_dtypes():
    import tensorflow as tf

    feature_spec = _spec().raw_feature_spec()
    assert feature_spec == {"user": tf.io.FixedLenFeature([], tf.int64),
                            "color": tf.io.FixedLenFeature([], tf.string),
                            "price": tf.io.FixedLenFeature([], tf.float32)}
