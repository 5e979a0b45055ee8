"""The translation and face data kinds: paired:PATH, unpaired:PATH_A,PATH_B, utkface:PATH."""

import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from genzoo.data import load_dataset
from genzoo.data.faces import AGE_GROUPS, age_group, parse_name
from genzoo.data.paired import unpaired_halves
from genzoo.errors import GenzooError


def write_pair(path, seed: int, side: int = 16):
    """A side-by-side pair: A random, B = 255 - A (so the halves are told apart)."""
    a = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(path)
    return a


@pytest.fixture
def pairs(tmp_path):
    root = tmp_path / "pairs"
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for i in range(n):
            write_pair(root / split / f"{i}.png", seed=hash((split, i)) % 1000)
    return root


def test_paired_splits_from_subfolders_and_direction(pairs):
    ab = load_dataset(f"paired:{pairs}", size=16)
    assert {k: len(v) for k, v in ab.splits.items()} == {"train": 6, "val": 2, "test": 3}
    batch = ab.batch("test", [0, 1])
    assert torch.equal(batch["target"], 255 - batch["x"])  # B is the right half, the counterpart of A
    ba = load_dataset(f"paired:{pairs}", size=16, direction="BtoA")
    assert torch.equal(ba.images("test"), ab.targets("test")) and torch.equal(ba.targets("test"), ab.images("test"))
    assert ab.info.shape == (3, 16, 16) and ab.info.num_values == 256
    assert ba.meta["options"] == {"size": 16, "direction": "BtoA"}


def test_paired_without_subfolders_splits_every_tenth(tmp_path):
    for i in range(12):
        write_pair(tmp_path / "flat" / f"{i:02d}.png", seed=i)
    data = load_dataset(f"paired:{tmp_path / 'flat'}", size=8)
    assert data.indices("test").tolist() == [0, 10] and data.size("train") == 10
    assert data.info.shape == (3, 8, 8)


def test_paired_bad_inputs_are_one_line_errors_naming_the_file(pairs, tmp_path):
    Image.new("RGB", (16, 16)).save(pairs / "train" / "square.png")  # not two halves
    with pytest.raises(GenzooError, match=r"square\.png: image of 16 x 16 pixels; .*twice its height"):
        load_dataset(f"paired:{pairs}", size=16)
    (pairs / "train" / "square.png").write_bytes(b"not an image")
    with pytest.raises(GenzooError, match=r"square\.png: cannot read image"):
        load_dataset(f"paired:{pairs}", size=16)
    with pytest.raises(GenzooError, match="direction must be AtoB or BtoA"):
        load_dataset(f"paired:{pairs}", direction="AtoC")
    with pytest.raises(GenzooError, match="not a folder"):
        load_dataset(f"paired:{tmp_path / 'missing'}")
    with pytest.raises(GenzooError, match=r"unknown options \['colors'\]"):
        load_dataset(f"paired:{pairs}", colors=8)


def test_unpaired_two_folders_and_halves(tmp_path, pairs):
    for name, n in (("a", 5), ("b", 12)):
        for i in range(n):
            Image.fromarray(np.full((9, 9, 3), i * 20 + (name == "b") * 5, dtype=np.uint8)).save(
                tmp_path / f"{name}{i}.png"
            )
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / f"{name}{i}.png").rename(tmp_path / name / f"{i:02d}.png")
    data = load_dataset(f"unpaired:{tmp_path / 'a'},{tmp_path / 'b'}", size=8)
    assert not data.paired and len(data.x) == 5 and len(data.target) == 12
    batch = data.batch("train", [0, 1, 2, 3])
    assert batch["x"].shape == batch["target"].shape == (4, 3, 8, 8)
    for bad in ("unpaired:only_one", f"unpaired:{tmp_path / 'a'},", f"unpaired:{tmp_path / 'a'},{tmp_path / 'a'},x"):
        with pytest.raises(GenzooError, match="two folders"):
            load_dataset(bad)
    halves = unpaired_halves(load_dataset(f"paired:{pairs}", size=16))
    assert not halves.paired
    assert set(halves.splits["train"].tolist()).isdisjoint(halves.target_splits["train"].tolist())


def test_age_groups_boundaries_and_names():
    assert [lo for lo, _ in AGE_GROUPS] == [0, 19, 30, 40, 50, 60]
    assert [age_group(a) for a in (0, 18, 19, 29, 30, 39, 40, 49, 50, 59, 60, 116)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
    ]
    assert parse_name("26_1_3_20170104.jpg") == (26, 1, 3)
    assert parse_name("39_1_20170116174525125.jpg") == (39, 1, None)  # one of the three short names
    for bad in ("x_1_2_2017.jpg", "200_0_0_2017.jpg", "30_7_1_2017.jpg"):
        with pytest.raises(GenzooError, match=bad.replace(".", r"\.")):
            parse_name(bad)


def _faces_tar(tmp_path, names):
    folder = tmp_path / "utk"
    folder.mkdir()
    for i, n in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), i * 10, dtype=np.uint8)).save(folder / n, format="JPEG")
    tar = tmp_path / "utk.tar"
    with tarfile.open(tar, "w") as t:
        t.add(folder, arcname="utkface64")
    return tar


def test_utkface_labels_from_names_skips_short_names_for_race(tmp_path):
    names = [f"{age}_{i % 2}_{i % 5}_2017010{i}.jpg" for i, age in enumerate((5, 20, 35, 45, 55, 70, 18, 19, 60, 30))]
    names.append("39_1_20170116174525125.jpg")
    tar = _faces_tar(tmp_path, names)
    data = load_dataset(f"utkface:{tar}", size=8)
    assert data.info.num_classes == 6 and data.info.class_names[-1] == "60+"
    assert len(data.x) == 11 and data.meta["skipped"] == 0
    assert sorted(data.labels.tolist()) == sorted([0, 1, 2, 3, 4, 5, 0, 1, 5, 2, 2])
    race = load_dataset(f"utkface:{tar}", size=8, label="race")
    assert len(race.x) == 10 and race.meta["skipped"] == 1 and race.info.num_classes == 5


def test_utkface_bad_name_is_one_line_naming_the_file(tmp_path):
    tar = _faces_tar(tmp_path, ["20_1_0_2017.jpg", "20_1_0_2018.jpg", "old_1_0_2017.jpg"])
    with pytest.raises(GenzooError, match=r"old_1_0_2017\.jpg: not a UTKFace name"):
        load_dataset(f"utkface:{tar}", size=8)
    with pytest.raises(GenzooError, match="label must be one of"):
        load_dataset(f"utkface:{tar}", label="identity")
