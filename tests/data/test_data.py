"""Data loaders: real data where it exists, small generated files for everything that can go wrong.

Every bad-data case must be a GenzooError whose message is one line and names the file.
"""
from __future__ import annotations

import gzip
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from conftest import SHARED_DATA
from genzoo.data import load_dataset
from genzoo.data.palette import kmeans_palette, quantize
from genzoo.errors import GenzooError

DATA = SHARED_DATA
FASHION = Path("/usr/share/datasets/fashion-mnist")
WHITE, BLACK, RED, BLUE, GREEN = (255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0)


def raises_one_line(names: object, fn, *args, **kwargs) -> str:
    """Call ``fn``, expect a GenzooError whose single-line message contains ``names``."""
    with pytest.raises(GenzooError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert str(names) in msg, msg
    return msg


def save(img: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def two_colour_images(n: int, side: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    colours = np.array([RED, BLUE], dtype=np.uint8)
    return [colours[rng.integers(0, 2, (side, side))] for _ in range(n)]  # each (side, side, 3)


@pytest.fixture(scope="module")
def binarized():
    return load_dataset(f"binarized-mnist:{DATA / 'binarized_mnist'}")


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(f"idx:{DATA / 'mnist'}")


# ---------------------------------------------------------------- palette


def test_kmeans_returns_exactly_the_distinct_colours_when_few():
    px = np.array([BLUE, RED, BLUE, GREEN, RED], dtype=np.uint8)
    pal = kmeans_palette(px, k=8)
    assert pal.dtype == np.uint8
    assert [tuple(c) for c in pal] == sorted([BLUE, RED, GREEN])


def test_kmeans_is_deterministic_sorted_and_finds_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[20, 30, 40], [200, 30, 40], [20, 220, 40], [100, 100, 250]])
    px = np.clip(centres[rng.integers(0, 4, 5000)] + rng.integers(-6, 7, (5000, 3)), 0, 255).astype(np.uint8)
    a = kmeans_palette(px, k=4, seed=3, max_points=1000)
    b = kmeans_palette(px, k=4, seed=3, max_points=1000)
    assert np.array_equal(a, b)
    assert a.shape == (4, 3)
    assert [tuple(c) for c in a] == sorted(tuple(c) for c in a)
    # every true centre is within a few levels of a fitted colour
    err = np.abs(centres[:, None, :] - a[None].astype(int)).max(-1).min(1)
    assert err.max() <= 3, (a, err)


def test_quantize_is_the_nearest_colour():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    pal = rng.integers(0, 256, (13, 3), dtype=np.uint8)
    q = quantize(rgb, pal)
    assert q.shape == (7, 9)
    d = ((rgb[..., None, :].astype(int) - pal.astype(int)) ** 2).sum(-1)  # (7, 9, 13)
    assert np.array_equal(d.min(-1), np.take_along_axis(d, q[..., None].astype(int), -1)[..., 0])


# ---------------------------------------------------------------- pokemon


def test_embedded_pokemon(pokemon):
    assert tuple(pokemon.x.shape) == (792, 1, 20, 20)
    assert pokemon.info.num_values == 167 and len(pokemon.info.palette) == 167
    assert int(pokemon.x.max()) < 167
    test, train = pokemon.splits["test"], pokemon.splits["train"]
    assert len(test) == 80 and bool((test % 10 == 0).all())
    assert len(train) == 712 and not bool((train % 10 == 0).any())
    assert sorted(torch.cat([test, train]).tolist()) == list(range(792))


def test_pokemon_folder_matches_embedded(pokemon):
    d = load_dataset(f"pokemon:{DATA / 'pokemon'}")
    assert torch.equal(d.x, pokemon.x) and d.info == pokemon.info


def _pokemon_dir(tmp_path: Path, rows: list[str]) -> Path:
    d = tmp_path / "poke"
    d.mkdir()
    (d / "colormap.txt").write_text("0 0 0\n255 255 255\n10 20 30")
    (d / "pixel_color.txt").write_text("\n".join(rows) + "\n")
    return d


def test_pokemon_dir_row_of_wrong_length(tmp_path):
    d = _pokemon_dir(tmp_path, [" ".join(["1"] * 400), " ".join(["1"] * 399)])
    msg = raises_one_line(d / "pixel_color.txt", load_dataset, f"pokemon:{d}")
    assert ":2:" in msg and "399" in msg


def test_pokemon_dir_index_out_of_range(tmp_path):
    d = _pokemon_dir(tmp_path, [" ".join(["1"] * 399 + ["3"])])
    msg = raises_one_line(d / "pixel_color.txt", load_dataset, f"pokemon:{d}")
    assert ":1:" in msg and "3" in msg


def test_pokemon_dir_non_integer(tmp_path):
    d = _pokemon_dir(tmp_path, [" ".join(["1"] * 400), " ".join(["1"] * 200 + ["x7"] + ["1"] * 199)])
    msg = raises_one_line(d / "pixel_color.txt", load_dataset, f"pokemon:{d}")
    assert ":2:" in msg and "x7" in msg


# ---------------------------------------------------------------- folder


def test_folder_two_colours_round_trip_exactly(tmp_path):
    imgs = two_colour_images(12, 8)
    for i, a in enumerate(imgs):
        save(Image.fromarray(a), tmp_path / f"img{i:02d}.png")
    d = load_dataset(f"folder:{tmp_path}", size=8, colors=2)
    assert d.info.palette == (BLUE, RED)  # sorted
    assert d.info.shape == (1, 8, 8) and d.info.num_values == 2 and d.labels is None
    assert np.array_equal(d.info.to_rgb(d.x), np.stack(imgs))
    assert d.meta["files"] == [f"img{i:02d}.png" for i in range(12)]
    assert d.meta["size"] == 8 and d.meta["colors"] == 2
    assert [len(d.splits["train"]), len(d.splits["test"])] == [10, 2]


def test_folder_reads_every_mode_and_composites_on_white(tmp_path):
    side = 6
    half = np.zeros((side, side), dtype=np.uint8)
    half[:, side // 2 :] = 255  # right half: opaque / "on"
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[..., 3] = half  # left half fully transparent black
    save(Image.fromarray(rgba, "RGBA"), tmp_path / "a_rgba.png")
    save(Image.fromarray(np.stack([np.zeros_like(half), half], -1), "LA"), tmp_path / "b_la.png")
    pmode = Image.fromarray((half > 0).astype(np.uint8), "P")
    pmode.putpalette([*RED, *BLACK])
    save(pmode, tmp_path / "c_ptrans.png", transparency=0)  # index 0 (left half) transparent
    save(pmode, tmp_path / "d_trans.gif", transparency=0)
    save(Image.fromarray(np.where(half > 0, 0, 255).astype(np.uint8), "L"), tmp_path / "e_grey.bmp")
    save(Image.fromarray(np.where(half > 0, 0, 65535).astype(np.uint16)), tmp_path / "f_grey16.png")
    rgb = np.zeros((side, side, 3), dtype=np.uint8)
    rgb[:, : side // 2] = 255
    save(Image.fromarray(rgb), tmp_path / "g_rgb.webp", lossless=True)
    save(Image.fromarray(rgb), tmp_path / "H_UPPER.PNG")

    d = load_dataset(f"folder:{tmp_path}", size=side, colors=8)
    assert len(d.x) == 8 and d.info.palette == (BLACK, WHITE)
    out = d.info.to_rgb(d.x)  # (N, H, W, 3)
    assert (out[:, :, : side // 2] == 255).all(), "transparent / white left halves"
    assert (out[:, :, side // 2 :] == 0).all(), "black right halves"


def test_folder_jpeg_gif_frames_resize_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(3):
            save(Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)), tmp_path / cls / f"{i}.jpg")
    frames = [Image.new("RGB", (8, 8), GREEN), Image.new("RGB", (8, 8), RED)]
    save(frames[0], tmp_path / "dogs" / "deep" / "anim.gif", save_all=True, append_images=frames[1:])
    d = load_dataset(f"folder:{tmp_path}", size=4, colors=5)
    assert d.meta["files"][:3] == ["cats/0.jpg", "cats/1.jpg", "cats/2.jpg"]
    assert d.info.class_names == ("cats", "dogs") and d.info.num_classes == 2
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]  # last: "dogs/deep/anim.gif"
    assert tuple(d.x.shape) == (7, 1, 4, 4) and d.info.num_values <= 5
    gif = d.info.to_rgb(d.x[-1:])[0]  # first frame only: green, quantised to the nearest colour
    assert (gif == gif[0, 0]).all() and int(gif[0, 0, 1]) >= int(gif[0, 0, 0])
    # a stray image at the top level means no classes
    save(frames[1], tmp_path / "stray.png")
    assert load_dataset(f"folder:{tmp_path}", size=4, colors=5).labels is None


def test_folder_centre_crop(tmp_path):
    for i in range(3):
        a = np.zeros((12, 16, 3), dtype=np.uint8)  # wide: 2-pixel strips left and right are cropped
        a[:] = BLUE
        a[:, 2:14] = RED
        save(Image.fromarray(a), tmp_path / f"{i}.png")
    d = load_dataset(f"folder:{tmp_path}", size=4, colors=4)
    assert d.info.palette == (RED,)
    assert int(d.x.max()) == 0


def test_folder_palette_fitted_on_train_only(tmp_path):
    imgs = two_colour_images(11, 4)
    imgs[0] = np.full((4, 4, 3), GREEN, dtype=np.uint8)  # index 0 is a test image
    for i, a in enumerate(imgs):
        save(Image.fromarray(a), tmp_path / f"{i:02d}.png")
    d = load_dataset(f"folder:{tmp_path}", size=4, colors=2)
    assert d.info.palette == (BLUE, RED)


def test_folder_reload_with_palette_is_identical(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(15):
        save(Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)), tmp_path / f"{i}.png")
    d = load_dataset(f"folder:{tmp_path}", size=5, colors=7)
    assert d.info.num_values == 7
    again = load_dataset(f"folder:{tmp_path}", size=5, colors=7)
    assert again.info.palette == d.info.palette and torch.equal(again.x, d.x)
    reloaded = load_dataset(f"folder:{tmp_path}", size=5, palette=[list(c) for c in d.info.palette])
    assert reloaded.info == d.info and torch.equal(reloaded.x, d.x)


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    msg = raises_one_line(empty, load_dataset, f"folder:{empty}")
    assert ".png" in msg and ".webp" in msg
    raises_one_line(empty / "notes.txt", load_dataset, f"folder:{empty / 'notes.txt'}")  # not a folder

    good = tmp_path / "good"
    for i, a in enumerate(two_colour_images(3, 4)):
        save(Image.fromarray(a), good / f"{i}.png")
    for opts, name in [({"size": 1}, "size"), ({"colors": 1}, "colors"), ({"colors": 65537}, "colors"),
                       ({"size": "8"}, "size"), ({"bogus": 3}, "bogus")]:
        assert name in raises_one_line(good, load_dataset, f"folder:{good}", **opts)
    msg = raises_one_line(good, load_dataset, f"folder:{good}", palette=[[0, 0, 0], [1, 2], [3, 4, 5]])
    assert "entry 1" in msg
    assert "entry 0" in raises_one_line(good, load_dataset, f"folder:{good}", palette=[[0, 0, 256]])
    assert load_dataset(f"folder:{good}", bogus=None).info.num_values == 2  # None options are "not given"

    (good / "broken.png").write_bytes(b"\x89PNG garbage, not an image")
    assert "cannot read image" in raises_one_line(good / "broken.png", load_dataset, f"folder:{good}")


# ---------------------------------------------------------------- binarized MNIST


def test_binarized_mnist_real(binarized):
    assert {k: len(v) for k, v in binarized.splits.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    assert tuple(binarized.x.shape) == (70000, 1, 28, 28)
    assert binarized.info.num_values == 2 and binarized.info.palette is None
    assert int(binarized.x.min()) == 0 and int(binarized.x.max()) == 1


def _amat_text(rows: np.ndarray) -> str:
    return "\n".join(" ".join(str(int(v)) for v in r) for r in rows) + "\n"


def test_binarized_mnist_amat_file_and_folder(binarized, tmp_path):
    rows = binarized.x[:23].reshape(23, 784).numpy()
    f = tmp_path / "mine.amat"
    f.write_text(_amat_text(rows))
    d = load_dataset(f"binarized-mnist:{f}")
    assert torch.equal(d.x, binarized.x[:23])
    assert [len(d.splits["train"]), len(d.splits["test"])] == [20, 3]

    folder = tmp_path / "bm"
    folder.mkdir()
    (folder / "binarized_mnist_valid.amat").write_text(_amat_text(rows[:5]))
    scipy.io.savemat(folder / "binarized_mnist_test.mat", {"X": rows[5:]})
    d = load_dataset(f"binarized-mnist:{folder}")
    assert {k: len(v) for k, v in d.splits.items()} == {"valid": 5, "test": 18}
    assert torch.equal(d.x, binarized.x[:23])


def test_binarized_mnist_errors(binarized, tmp_path):
    rows = binarized.x[:3].reshape(3, 784).numpy()
    text = _amat_text(rows).splitlines()
    short = tmp_path / "short.amat"
    short.write_text("\n".join([text[0], text[1], " ".join(text[2].split()[:-1])]))
    assert "783" in raises_one_line(f"{short}:3:", load_dataset, f"binarized-mnist:{short}")
    badval = tmp_path / "badval.amat"
    badval.write_text("\n".join([text[0], text[1].replace("0", "2", 1)]))
    raises_one_line(f"{badval}:2:", load_dataset, f"binarized-mnist:{badval}")

    nokey = tmp_path / "nokey.mat"
    scipy.io.savemat(nokey, {"images": rows})
    assert "images" in raises_one_line(nokey, load_dataset, f"binarized-mnist:{nokey}")
    notbin = tmp_path / "notbin.mat"
    scipy.io.savemat(notbin, {"X": rows * 255})
    raises_one_line(notbin, load_dataset, f"binarized-mnist:{notbin}")
    raises_one_line(tmp_path, load_dataset, f"binarized-mnist:{tmp_path}")  # no split files in the folder


# ---------------------------------------------------------------- IDX


def test_idx_real_mnist(mnist):
    assert tuple(mnist.x.shape) == (10000, 1, 28, 28) and mnist.x.dtype == torch.uint8
    assert mnist.info.num_values == 256 and mnist.info.palette is None
    assert mnist.info.num_classes == 10 and mnist.info.class_names == tuple("0123456789")
    assert mnist.labels.shape == (10000,) and mnist.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert [len(mnist.splits["train"]), len(mnist.splits["test"])] == [9000, 1000]
    assert int(mnist.x.max()) == 255


def test_idx_gzip_detected_by_magic_bytes(mnist, tmp_path):
    raw_images = gzip.decompress((DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    raw_labels = gzip.decompress((DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "t10k-images-idx3-ubyte").write_bytes(raw_images)
    (plain / "t10k-labels-idx1-ubyte").write_bytes(raw_labels)
    d = load_dataset(f"idx:{plain}")
    assert torch.equal(d.x, mnist.x) and torch.equal(d.labels, mnist.labels)
    # a gzip'd file without the .gz name, loaded as a single file: labels come from the sibling
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes((DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    shutil.copy(DATA / "mnist" / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz")
    d = load_dataset(f"idx:{tmp_path / 't10k-images-idx3-ubyte'}")
    assert torch.equal(d.x, mnist.x) and torch.equal(d.labels, mnist.labels)


def test_idx_train_and_test_splits(mnist, tmp_path):
    images = gzip.decompress((DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((DATA / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())

    def idx(header: bytes, n: int, per_item: int, body: bytes) -> bytes:
        return header[:4] + n.to_bytes(4, "big") + header[8:] + body[len(header) : len(header) + n * per_item]

    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(images[:16], 30, 784, images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(labels[:8], 30, 1, labels))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(images[:16], 7, 784, images)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx(labels[:8], 7, 1, labels))
    d = load_dataset(f"idx:{tmp_path}")
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 30, "test": 7}
    assert torch.equal(d.x, torch.cat([mnist.x[:30], mnist.x[:7]]))
    assert torch.equal(d.labels, torch.cat([mnist.labels[:30], mnist.labels[:7]]))


def test_idx_errors(tmp_path):
    labels_gz = DATA / "mnist" / "t10k-labels-idx1-ubyte.gz"
    msg = raises_one_line(labels_gz, load_dataset, f"idx:{labels_gz}")
    assert "wrong IDX magic 0x00000801; expected 0x00000803 (images)" in msg

    raw = gzip.decompress((DATA / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    cut = tmp_path / "cut" / "t10k-images-idx3-ubyte"
    cut.parent.mkdir()
    cut.write_bytes(raw[:-100])
    assert "truncated" in raises_one_line(cut, load_dataset, f"idx:{cut.parent}")

    mism = tmp_path / "mism"
    mism.mkdir()
    (mism / "t10k-images-idx3-ubyte").write_bytes(raw)
    lab = gzip.decompress(labels_gz.read_bytes())
    (mism / "t10k-labels-idx1-ubyte").write_bytes(lab[:4] + (9999).to_bytes(4, "big") + lab[8:-1])
    assert "9999" in raises_one_line(mism / "t10k-labels-idx1-ubyte", load_dataset, f"idx:{mism}")

    only_labels = tmp_path / "only_labels"
    only_labels.mkdir()
    shutil.copy(labels_gz, only_labels)
    raises_one_line(only_labels, load_dataset, f"idx:{only_labels}")


@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_idx_fashion_mnist():
    d = load_dataset(f"idx:{FASHION}")
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 60000, "test": 10000}
    assert d.labels.shape == (70000,) and d.info.class_names[0] == "T-shirt/top" and d.info.num_classes == 10


# ---------------------------------------------------------------- CIFAR-10 layout


def test_cifar_archive_and_folder_agree(tmp_path):
    import tarfile

    rng = np.random.default_rng(3)
    pictures = {f"{split}/{cls}/{i}.png": rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                for split in ("test", "train") for cls in ("dog", "cat") for i in range(2)}  # fmt: skip
    folder = tmp_path / "cifar"
    for name, a in pictures.items():
        save(Image.fromarray(a), folder / name)
    (folder / "train" / "cat" / "._0.png").write_bytes(b"macOS metadata, not an image")  # skipped
    archive = tmp_path / "cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(folder.rglob("*"), reverse=True):  # archive order is not the data order
            tar.add(f, arcname=f"cifar10/{f.relative_to(folder)}", recursive=False)
    a, b = load_dataset(f"cifar10:{archive}", size=4), load_dataset(f"cifar10:{folder}", size=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels) and a.info == b.info
    assert a.info.shape == (3, 4, 4) and a.info.num_values == 256 and a.info.class_names == ("cat", "dog")
    order = sorted((k for k in pictures if k.startswith("train")), key=lambda k: k.split("/"))
    order += sorted((k for k in pictures if k.startswith("test")), key=lambda k: k.split("/"))
    assert np.array_equal(a.x.permute(0, 2, 3, 1).numpy(), np.stack([pictures[k] for k in order]))
    assert a.labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert {k: v.tolist() for k, v in a.splits.items()} == {"train": [0, 1, 2, 3], "test": [4, 5, 6, 7]}
    assert tuple(load_dataset(f"cifar10:{archive}", size=2).x.shape) == (8, 3, 2, 2)


# ---------------------------------------------------------------- CLI


def test_cli_bad_data_exits_2_and_writes_nothing(tmp_path, capsys):
    assert importlib.util.find_spec("genzoo.cli") is not None
    from genzoo.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "RUN"
    assert main(["train", "pixelrnn", "--data", f"folder:{empty}", "--out", str(run), "--steps", "1"]) == 2
    assert not run.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(empty) in err
