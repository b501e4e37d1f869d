"""Tests for data.byterec on the shared 1,000-row ICME 2019 sample (not shipped)."""
import pytest

from conftest import SHARED_DATA
from drgrad.data import byterec, datasets
from drgrad.data.preprocessing import FeaturePreprocessor
from drgrad.data.specs import BYTEREC


SOURCE = SHARED_DATA / "byterec-icme2019-sample" / byterec.FILE_NAME
# The sample is read from the shared folder beside the checkout, never shipped.
pytestmark = pytest.mark.skipif(
    not SOURCE.is_file(), reason=f"ByteRec sample not present at {SOURCE} (research terms: not shipped)")


@pytest.fixture(scope="module")
def source():
    return SOURCE


def test_split_sizes_labels_and_determinism(source):
    frames = byterec.load(source, seed=0)
    assert {split: len(frame) for split, frame in frames.items()} == {
        "train": 800, "eval": 100, "test": 100}
    assert sum(int(frame["finish"].sum()) for frame in frames.values()) == 367
    assert sum(int(frame["like"].sum()) for frame in frames.values()) == 12
    again = byterec.load(source.parent, seed=0)  # A directory works too.
    assert frames["eval"].equals(again["eval"])
    other = byterec.load(source, seed=1)
    assert not frames["eval"].equals(other["eval"])


def test_personalization_groups_are_vocabularies(source):
    frames = datasets.load_frames("byterec", source=source)
    pre = FeaturePreprocessor(BYTEREC).fit(frames["train"])
    for group in ("user", "item", "author"):
        assert BYTEREC.personalization[group]
        for column in BYTEREC.personalization[group]:
            assert pre.vocab_sizes[column] >= 2
    ids = pre.transform(frames["test"])["author_id"]
    assert (ids == 0).mean() > 0.5  # Authors are nearly unique per video: mostly unseen.


def test_bad_lines(tmp_path, source):
    lines = source.read_text().splitlines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:4] + [lines[4] + "\t7"]) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 5: expected 12 fields"):
        byterec.load(bad)
    fields = lines[1].split("\t")
    fields[7] = "2"
    bad.write_text("\n".join([lines[0], "\t".join(fields)]) + "\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: label 'like' must be 0 or 1"):
        byterec.load(bad)
    with pytest.raises(FileNotFoundError, match="byterec sample file not found"):
        byterec.load(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="needs --source"):
        byterec.load(None)


def test_written_csv_types_match_the_spec(source, tmp_path):
    root = datasets.build("byterec", tmp_path, source=source)["path"]
    expected = {**BYTEREC.raw_dtypes, **{task: "int" for task in BYTEREC.tasks}}
    for split in datasets.SPLITS:
        assert datasets.infer_csv_types(f"{root}/span-1/{split}/part-00000.csv") == expected
