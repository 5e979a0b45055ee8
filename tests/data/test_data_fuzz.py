"""Malformed data files of every kind, through the CLI and through ``load_dataset``.

Each case builds a bad file in ``tmp_path`` and runs ``genzoo train`` on it: exit status 2, exactly
one line on stderr naming the offending file (and line or member where there is one) or option,
and nothing created. Seeded byte-level mutations of good files then check that no input at all
gets past the loaders as anything other than a one-line :class:`GenzooError`.
"""
from __future__ import annotations

import gzip
import io
import random
import struct
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from conftest import run_cli
from genzoo.data import ImageDataset, ImageInfo, dataset_kinds, every_tenth_split, load_dataset
from genzoo.data import base as data_base
from genzoo.data.base import MAX_IMAGE_SIDE, MAX_SOURCE_PIXELS
from genzoo.errors import GenzooError

# ---------------------------------------------------------------- builders of good and bad files


def png_bytes(side: int = 6, seed: int = 0, fmt: str = "PNG") -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def idx_bytes(shape: tuple[int, ...], body: bytes | None = None, magic: int | None = None) -> bytes:
    magic = (0x800 | len(shape)) if magic is None else magic
    if body is None:
        body = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8).tobytes()
    return magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape) + body


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar_members(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    good = {f"{s}/{c}/{i}.png": png_bytes(4, seed=i)
            for s in ("train", "test") for c in ("cat", "dog") for i in range(2)}  # fmt: skip
    return {**good, **(extra or {})}


def amat_bytes(n: int = 12, seed: int = 0) -> bytes:
    rows = np.random.default_rng(seed).integers(0, 2, (n, 784))
    return ("\n".join(" ".join(map(str, r)) for r in rows) + "\n").encode()


def mat_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays)
    return buf.getvalue()


COLORMAP = "0 0 0\n255 255 255\n10 20 30\n"
ROW = " ".join(["1"] * 16)  # one 4x4 image
PIXELS = "\n".join([ROW] * 12) + "\n"


def pokemon_dir(root: Path, pixels: str | bytes = PIXELS, colormap: str | bytes = COLORMAP,
                pixels_name: str = "pixel_color.txt") -> Path:
    d = root / "poke"
    d.mkdir()
    for name, content in ((pixels_name, pixels), ("colormap.txt", colormap)):
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return d


def image_folder(root: Path, extra: dict[str, bytes] | None = None, n: int = 3) -> Path:
    d = root / "imgs"
    d.mkdir()
    for i in range(n):
        (d / f"{i}.png").write_bytes(png_bytes(6, seed=i))
    for name, data in (extra or {}).items():
        (d / name).write_bytes(data)
    return d


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def pixels_with(line2: str) -> str:
    return "\n".join([ROW, line2] + [ROW] * 10) + "\n"


BAD_GZIP = b"\x1f\x8b\x08\x00" + bytes(40)  # gzip magic, then nothing that inflates
BIG_PNG = png_header(10_000, 10_000)  # 100 megapixels: over MAX_SOURCE_PIXELS, under Pillow's own error
BOMB_PNG = png_header(30_000, 30_000)  # 900 megapixels: Pillow itself refuses it


def broken_link(path: Path) -> Path:
    path.symlink_to(path.parent / "no such file.png")
    return path.parent


def good_cifar(t: Path) -> str:
    return f"cifar10:{write(t / 'c.tar', tar_bytes(cifar_members(), 'w'))}"


def no_colormap(t: Path):
    d = pokemon_dir(t)
    (d / "colormap.txt").unlink()
    return ["--data", f"pokemon:{d}"], [str(d / "colormap.txt"), "not found"]


def pokemon_folder_file(t: Path) -> Path:
    d = pokemon_dir(t)
    (d / "pixel_color.txt").unlink()
    (d / "pixel_color.txt").mkdir()
    return d


def idx_folder(t: Path, files: dict[str, bytes], needles: list[str]):
    for name, data in files.items():
        write(t / "m" / name, data)
    return ["--data", f"idx:{t / 'm'}"], [str(t / "m" / n) if n in files else n for n in needles]


def cifar_folder(t: Path, extra: dict[str, bytes]) -> Path:
    for name, data in cifar_members(extra).items():
        write(t / "c" / name, data)
    return t / "c"


def pair_folder(t: Path, files: dict[str, bytes]) -> Path:
    """A paired:PATH folder holding ``files`` (relative names -> bytes)."""
    for name, data in files.items():
        write(t / "p" / name, data)
    return t / "p"


CAPTION_FILES = {
    "no-tab": b"a.png a coat",
    "missing-image": b"a.png\ta coat\nz.png\tbag",
    "escaping-path": b"../a.png\ta coat",
    "non-utf8": b"a.png\ta \xff coat",
    "empty-caption": b"a.png\t \n",
}


def caption_folder(t: Path, case: str) -> Path:
    """A captions:PATH folder: one image a.png and the captions.txt ``CAPTION_FILES[case]``."""
    write(t / "cap" / "a.png", png_bytes(6))
    write(t / "cap" / "captions.txt", CAPTION_FILES[case])
    return t / "cap"


# Each case: tmp -> (train arguments after --data, strings the one error line must contain)
def _poke(**kw):
    return lambda t: (["--data", f"pokemon:{pokemon_dir(t, **kw)}"], ["pixel_color.txt"])


def _poke_at(needles, **kw):
    def build(t):
        d = pokemon_dir(t, **kw)
        return ["--data", f"pokemon:{d}"], [str(d / n) if n.endswith((".txt", ".gz")) else n for n in needles]
    return build


def ptb_zip(t: Path, members: dict[str, bytes]) -> Path:
    """A ``ptb.zip`` holding ``members`` (name -> bytes)."""
    path = t / "ptb.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


CASES = {
    # ---- pokemon:DIR
    "pokemon-double-minus": _poke_at(["pixel_color.txt", ":2:", "'--1'"], pixels=pixels_with(ROW[:-1] + "--1")),
    "pokemon-superscript": _poke_at(["pixel_color.txt", ":2:", "'²'"], pixels=pixels_with(ROW[:-1] + "²")),
    "pokemon-arabic-digit": _poke_at(["pixel_color.txt", ":2:"], pixels=pixels_with(ROW[:-1] + "١")),
    "pokemon-negative": _poke_at(["pixel_color.txt", ":2:", "'-1'"], pixels=pixels_with(ROW[:-1] + "-1")),
    "pokemon-float": _poke_at(["pixel_color.txt", ":2:", "'1.0'"], pixels=pixels_with(ROW[:-1] + "1.0")),
    "pokemon-index-out-of-range": _poke_at(["pixel_color.txt", ":2:", "palette index 3"],
                                           pixels=pixels_with(ROW[:-1] + "3")),
    "pokemon-row-lengths-differ": _poke_at(["pixel_color.txt", ":2:", "15 values"], pixels=pixels_with(ROW[:-2])),
    "pokemon-not-square": _poke_at(["pixel_color.txt", ":1:", "not a square"], pixels="1 1 1 1 1\n"),
    "pokemon-one-image": _poke_at(["pixel_color.txt", "1 image"], pixels=ROW + "\n"),
    "pokemon-no-images": _poke_at(["pixel_color.txt", "no images"], pixels="\n\n"),
    "pokemon-empty-file": _poke_at(["pixel_color.txt", "no images"], pixels=""),
    "pokemon-non-utf8": _poke_at(["pixel_color.txt", ":2:", "not UTF-8"], pixels=ROW.encode() + b"\n1 \xff 1\n"),
    "pokemon-binary-garbage": _poke_at(["pixel_color.txt"], pixels=bytes(range(256)) * 4),
    "pokemon-image-too-large": _poke_at(["pixel_color.txt", ":1:", "MAX_IMAGE_SIDE"],
                                        pixels=" ".join(["0"] * (MAX_IMAGE_SIDE + 1) ** 2) + "\n"),
    "pokemon-corrupt-gzip": _poke_at(["pixel_color.txt.gz", "cannot read"], pixels=b"\x1f\x8b\x08\x00" + b"\0" * 40,
                                     pixels_name="pixel_color.txt.gz"),
    "pokemon-truncated-gzip": _poke_at(["pixel_color.txt.gz", "cannot read"],
                                       pixels=gzip.compress(PIXELS.encode())[:-12], pixels_name="pixel_color.txt.gz"),
    "pokemon-colormap-empty": _poke_at(["colormap.txt", "empty colour map"], colormap=""),
    "pokemon-colormap-256": _poke_at(["colormap.txt", ":2:", "0-255"], colormap="0 0 0\n256 0 0\n1 1 1\n"),
    "pokemon-colormap-two-values": _poke_at(["colormap.txt", ":3:"], colormap="0 0 0\n1 1 1\n2 2\n"),
    "pokemon-colormap-blank-line": _poke_at(["colormap.txt", ":2:", "blank line"], colormap="0 0 0\n\n1 1 1\n2 2 2\n"),
    "pokemon-colormap-word": _poke_at(["colormap.txt", ":1:", "'red'"], colormap="red 0 0\n1 1 1\n2 2 2\n"),
    "pokemon-too-many-colours": _poke_at(["colormap.txt", ":65537:", "MAX_VALUES"], colormap="1 2 3\n" * 65537),
    "pokemon-colormap-non-utf8": _poke_at(["colormap.txt", ":2:", "not UTF-8"], colormap=b"0 0 0\n\xfe\xff\n"),
    "pokemon-colormap-missing": no_colormap,
    "pokemon-path-is-a-file": lambda t: (["--data", f"pokemon:{write(t / 'f.txt', b'x')}"], [str(t / "f.txt")]),
    "pokemon-empty-path": lambda t: (["--data", "pokemon:"], ["pokemon:", "needs a path"]),
    "path-name-too-long": lambda t: (["--data", f"folder:{t}/{'a' * 300}"], ["aaaa", "name too long"]),
    "pixel-file-is-a-folder": lambda t: (["--data", f"pokemon:{pokemon_folder_file(t)}"],
                                         [str(t / "poke" / "pixel_color.txt"), "cannot read"]),
    "spec-with-newline": lambda t: (["--data", f"folder:{t}/a\nb"], ["control character"]),
    # ---- folder:PATH
    "folder-empty": lambda t: (["--data", f"folder:{image_folder(t, n=0)}"], [str(t / "imgs"), "no images"]),
    "folder-broken-png": lambda t: (["--data", f"folder:{image_folder(t, {'x.png': b'garbage'})}"],
                                    [str(t / "imgs" / "x.png"), "cannot read image"]),
    "folder-empty-jpg": lambda t: (["--data", f"folder:{image_folder(t, {'x.jpg': b''})}"],
                                   [str(t / "imgs" / "x.jpg")]),
    "folder-truncated-png": lambda t: (["--data", f"folder:{image_folder(t, {'x.png': png_bytes(30)[:200]})}"],
                                       [str(t / "imgs" / "x.png")]),
    "folder-text-as-webp": lambda t: (["--data", f"folder:{image_folder(t, {'x.webp': b'RIFF0000WEBPxxxx'})}"],
                                      [str(t / "imgs" / "x.webp")]),
    "folder-100-megapixels": lambda t: (["--data", f"folder:{image_folder(t, {'big.png': BIG_PNG})}"],
                                        [str(t / "imgs" / "big.png"), "MAX_SOURCE_PIXELS", f"{MAX_SOURCE_PIXELS:,}"]),
    "folder-pillow-bomb": lambda t: (["--data", f"folder:{image_folder(t, {'bomb.png': BOMB_PNG})}"],
                                     [str(t / "imgs" / "bomb.png"), "MAX_SOURCE_PIXELS"]),
    "folder-zero-width": lambda t: (["--data", f"folder:{image_folder(t, {'z.png': png_header(0, 5)})}"],
                                    [str(t / "imgs" / "z.png")]),
    "folder-broken-symlink": lambda t: (["--data", f"folder:{broken_link(image_folder(t) / 'gone.png')}"],
                                        [str(t / "imgs" / "gone.png"), "cannot read image"]),
    "folder-one-image": lambda t: (["--data", f"folder:{image_folder(t, n=1)}"], [str(t / "imgs"), "only one image"]),
    "folder-size-100000": lambda t: (["--data", f"folder:{image_folder(t)}", "--size", "100000"],
                                     ["size", "100000", str(MAX_IMAGE_SIDE)]),
    "folder-colors-70000": lambda t: (["--data", f"folder:{image_folder(t)}", "--colors", "70000"],
                                      ["colors", "70000"]),
    "folder-path-missing": lambda t: (["--data", f"folder:{t / 'nope'}"], [str(t / "nope")]),
    # ---- idx:PATH (MNIST, Fashion-MNIST)
    "idx-width-0": lambda t: (["--data", f"idx:{write(t / 'm' / 't10k-images-idx3-ubyte', idx_bytes((5, 28, 0)))}"],
                              [str(t / "m" / "t10k-images-idx3-ubyte"), "(5, 28, 0)"]),
    "idx-count-0": lambda t: (["--data", f"idx:{write(t / 'm' / 't10k-images-idx3-ubyte', idx_bytes((0, 4, 4)))}"],
                              [str(t / "m" / "t10k-images-idx3-ubyte")]),
    "idx-wrong-magic": lambda t: (["--data", f"idx:{write(t / 'm' / 'x-images-idx3-ubyte', idx_bytes((3,)))}"],
                                  [str(t / "m" / "x-images-idx3-ubyte"), "wrong IDX magic 0x00000801"]),
    "idx-float-type": lambda t: (
        ["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((3, 4, 4), bytes(192), magic=0x0D03))}"],
        [str(t / "m" / "x"), "wrong IDX magic 0x00000d03"]),
    "idx-truncated-body": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((5, 4, 4))[:-3])}"],
                                     [str(t / "m" / "x"), "truncated"]),
    "idx-overlong-body": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((5, 4, 4)) + b'xx')}"],
                                    [str(t / "m" / "x"), "overlong"]),
    "idx-header-only": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((5, 4, 4))[:10])}"],
                                  [str(t / "m" / "x"), "truncated"]),
    "idx-empty-file": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', b'')}"], [str(t / "m" / "x"), "truncated"]),
    "idx-garbage": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', bytes(range(256)))}"], [str(t / "m" / "x")]),
    "idx-corrupt-gzip": lambda t: (["--data", f"idx:{write(t / 'm' / 'x.gz', BAD_GZIP)}"],
                                   [str(t / "m" / "x.gz"), "cannot read"]),
    "idx-truncated-gzip": lambda t: (
        ["--data", f"idx:{write(t / 'm' / 'x.gz', gzip.compress(idx_bytes((5, 4, 4)))[:-10])}"],
        [str(t / "m" / "x.gz"), "cannot read"]),
    "idx-gzip-bomb": lambda t: (  # the header says 5 small images; the gzip holds 8 MB more
        ["--data", f"idx:{write(t / 'm' / 'x.gz', gzip.compress(idx_bytes((5, 4, 4)) + bytes(8 << 20), 1))}"],
        [str(t / "m" / "x.gz"), "overlong"]),
    "idx-side-too-large": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((1, 4000, 4000), b''))}"],
                                     [str(t / "m" / "x"), "MAX_IMAGE_SIDE"]),
    "idx-too-many-bytes": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((60_000, 1000, 1000), b''))}"],
                                     [str(t / "m" / "x"), "MAX_DATA_BYTES"]),
    "idx-one-image": lambda t: (["--data", f"idx:{write(t / 'm' / 'x', idx_bytes((1, 4, 4)))}"],
                                [str(t / "m" / "x"), "1 image"]),
    "idx-label-count": lambda t: idx_folder(
        t, {"t10k-images-idx3-ubyte": idx_bytes((5, 4, 4)), "t10k-labels-idx1-ubyte": idx_bytes((4,))},
        ["t10k-labels-idx1-ubyte", "4 labels"]),
    "idx-labels-of-an-empty-file": lambda t: idx_folder(
        t, {"t10k-images-idx3-ubyte": idx_bytes((5, 4, 4)), "t10k-labels-idx1-ubyte": b""},
        ["t10k-labels-idx1-ubyte", "truncated"]),
    "idx-sizes-differ": lambda t: idx_folder(
        t, {"t10k-images-idx3-ubyte": idx_bytes((5, 4, 4)), "train-images-idx3-ubyte": idx_bytes((5, 5, 5))},
        ["differ in size"]),
    # ---- binarized-mnist:PATH
    "amat-short-row": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.amat', amat_bytes() + b'0 1 0')}"],
                                 [f"{t / 'b.amat'}:13:", "3 values"]),
    "amat-value-2": lambda t: (
        ["--data", f"binarized-mnist:{write(t / 'b.amat', amat_bytes().replace(b'1', b'2', 1))}"],
        [f"{t / 'b.amat'}:1:", "'2'"]),
    "amat-non-utf8": lambda t: (
        ["--data", f"binarized-mnist:{write(t / 'b.amat', amat_bytes().replace(b'1', bytes([255]), 1))}"],
        [f"{t / 'b.amat'}:1:"]),
    "amat-empty": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.amat', b'')}"],
                             [str(t / "b.amat"), "no images"]),
    "amat-one-row": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.amat', amat_bytes(1))}"],
                               [str(t / "b.amat"), "1 image"]),
    "mat-no-X": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.mat', mat_bytes(Y=np.zeros((3, 784))))}"],
                           [str(t / "b.mat"), "no key 'X'", "Y"]),
    "mat-wrong-shape": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.mat', mat_bytes(X=np.zeros((3, 100))))}"],
                                  [str(t / "b.mat"), "(3, 100)"]),
    "mat-values-255": lambda t: (
        ["--data", f"binarized-mnist:{write(t / 'b.mat', mat_bytes(X=np.full((3, 784), 255, np.uint8)))}"],
        [str(t / "b.mat"), "X[0, 0]"]),
    "mat-text-X": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.mat', mat_bytes(X='not pixels'))}"],
                             [str(t / "b.mat"), "X"]),
    "mat-garbage": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.mat', bytes(range(256)) * 2)}"],
                              [str(t / "b.mat"), "cannot read .mat"]),
    "mat-truncated": lambda t: (
        ["--data", f"binarized-mnist:{write(t / 'b.mat', mat_bytes(X=np.zeros((30, 784), np.uint8))[:3000])}"],
        [str(t / "b.mat")]),
    "binarized-wrong-suffix": lambda t: (["--data", f"binarized-mnist:{write(t / 'b.txt', amat_bytes())}"],
                                         [str(t / "b.txt"), ".amat"]),
    "binarized-empty-folder": lambda t: (["--data", f"binarized-mnist:{t}"], [str(t), "binarized_mnist_"]),
    # ---- cifar10:PATH
    "cifar-truncated-tar-gz": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar.gz', tar_bytes(cifar_members())[:-200])}"],
        [str(t / "c.tar.gz"), "not a readable tar archive"]),
    "cifar-broken-tar-gz": lambda t: (["--data", f"cifar10:{write(t / 'c.tar.gz', BAD_GZIP + b'garbage')}"],
                                      [str(t / "c.tar.gz"), "not a readable tar archive"]),
    "cifar-not-an-archive": lambda t: (["--data", f"cifar10:{write(t / 'c.tar.gz', b'hello')}"],
                                       [str(t / "c.tar.gz"), "not a readable tar archive"]),
    "cifar-truncated-tar-xz": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar.xz', tar_bytes(cifar_members(), 'w:xz')[:-100])}"],
        [str(t / "c.tar.xz"), "not a readable tar archive"]),
    "cifar-no-test-split": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar', tar_bytes({'train/cat/0.png': png_bytes(4)}, 'w'))}"],
        [str(t / "c.tar"), "test/<class>"]),
    "cifar-empty-archive": lambda t: (["--data", f"cifar10:{write(t / 'c.tar', tar_bytes({}, 'w'))}"],
                                      [str(t / "c.tar"), "train/<class>"]),
    "cifar-garbage-member": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar.gz', tar_bytes(cifar_members({'test/cat/x.jpg': b'junk'})))}"],
        [str(t / "c.tar.gz"), "test/cat/x.jpg", "cannot read image"]),
    "cifar-decompression-bomb": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar.gz', tar_bytes(cifar_members({'train/cat/b.png': BOMB_PNG})))}"],
        [str(t / "c.tar.gz"), "train/cat/b.png", "MAX_SOURCE_PIXELS"]),
    "cifar-100-megapixels": lambda t: (
        ["--data", f"cifar10:{write(t / 'c.tar', tar_bytes(cifar_members({'train/cat/b.png': BIG_PNG}), 'w'))}"],
        [str(t / "c.tar"), "train/cat/b.png", "MAX_SOURCE_PIXELS"]),
    "cifar-folder-garbage-image": lambda t: (["--data", f"cifar10:{cifar_folder(t, {'train/cat/x.png': b'junk'})}"],
                                            [str(t / "c" / "train" / "cat" / "x.png"), "cannot read image"]),
    "cifar-size-0": lambda t: (["--data", good_cifar(t), "--size", "0"], ["size", "0"]),
    "cifar-size-negative": lambda t: (["--data", good_cifar(t), "--size", "-4"], ["size", "-4"]),
    "cifar-size-too-large": lambda t: (["--data", good_cifar(t), "--size", "5000"], ["size", "5000", "1024"]),
    "cifar-colors": lambda t: (["--data", good_cifar(t), "--colors", "8"], ["cifar10:", "only --size applies"]),
    "cifar-missing": lambda t: (["--data", f"cifar10:{t / 'nope.tar.gz'}"], [str(t / "nope.tar.gz")]),
    # ---- olivetti:PATH
    "olivetti-garbage": lambda t: (["--data", f"olivetti:{write(t / 'o.mat', bytes(range(256)) * 2)}"],
                                   [str(t / "o.mat"), "cannot read .mat"]),
    "olivetti-no-faces": lambda t: (["--data", f"olivetti:{write(t / 'o.mat', mat_bytes(X=np.zeros((3, 3))))}"],
                                    [str(t / "o.mat"), "'faces'"]),
    "olivetti-wrong-shape": lambda t: (
        ["--data", f"olivetti:{write(t / 'o.mat', mat_bytes(faces=np.zeros((4096, 3), np.uint8)))}"],
        [str(t / "o.mat"), "(4096, 3)"]),
    "olivetti-empty-folder": lambda t: (["--data", f"olivetti:{t}"], [str(t / "olivettifaces.mat")]),
    # ---- cifar-patches:PATH
    "patches-truncated-tar-gz": lambda t: (
        ["--data", f"cifar-patches:{write(t / 'c.tar.gz', tar_bytes(cifar_members())[:-200])}"],
        [str(t / "c.tar.gz"), "not a readable tar archive"]),
    "patches-garbage-member": lambda t: (
        ["--data", f"cifar-patches:{write(t / 'c.tar', tar_bytes(cifar_members({'test/cat/x.jpg': b'junk'}), 'w'))}"],
        [str(t / "c.tar"), "test/cat/x.jpg"]),
    "patches-size-too-large": lambda t: (["--data", "cifar-patches:" + good_cifar(t).partition(":")[2], "--size", "40"],
                                         ["size=40"]),
    # ---- mixture:NAME
    "mixture-unknown": lambda t: (["--data", "mixture:ring9"], ["unknown mixture 'ring9'", "ring8"]),
    "mixture-no-name": lambda t: (["--data", "mixture"], ["mixture", "needs a path"]),
    "mixture-with-size": lambda t: (["--data", "mixture:ring8", "--size", "8"], ["mixture:ring8", "size"]),
    # ---- text:PATH, tang:PATH, ptb:PATH (token sequences)
    "text-empty-file": lambda t: (["--data", f"text:{write(t / 'e.txt', b'')}"], [str(t / "e.txt"), "empty file"]),
    "text-binary": lambda t: (["--data", f"text:{write(t / 'b.txt', b'one line' + bytes([10]) + b'bin' + bytes(1))}"],
                              [str(t / "b.txt") + ":2:", "NUL byte"]),
    "text-not-utf8": lambda t: (["--data", f"text:{write(t / 'u.txt', b'ok' + bytes([10, 99, 97, 102, 233]))}"],
                                [str(t / "u.txt") + ":2:", "not UTF-8"]),
    "text-folder-without-txt": lambda t: (["--data", f"text:{image_folder(t)}"], [str(t / "imgs"), "no .txt file"]),
    "text-with-size": lambda t: (["--data", f"text:{write(t / 's.txt', b'a b' + bytes([10]) + b'c d')}", "--size", "8"],
                                 ["text:", "size", "do not apply"]),
    "tang-not-json": lambda t: (["--data", f"tang:{write(t / 'poet.tang.0.json', b'[{').parent}"],
                                [str(t / "poet.tang.0.json"), "not valid JSON"]),
    "tang-no-poem-files": lambda t: (["--data", f"tang:{image_folder(t)}"], [str(t / "imgs"), "poet.tang.N.json"]),
    "ptb-not-a-zip": lambda t: (["--data", f"ptb:{write(t / 'ptb.zip', b'junk')}"],
                                [str(t / "ptb.zip"), "cannot read the zip archive"]),
    "ptb-missing-member": lambda t: (["--data", f"ptb:{ptb_zip(t, {'ptb.train.txt': b'a b', 'ptb.test.txt': b'c'})}"],
                                     [str(t / "ptb.zip"), "ptb.valid.txt"]),
    # ---- paired:PATH, unpaired:PATH_A,PATH_B, utkface:PATH
    "paired-not-side-by-side": lambda t: (
        ["--data", f"paired:{pair_folder(t, {'train/x.png': png_bytes(6), 'test/y.png': png_bytes(6)})}"],
        [str(t / "p" / "train" / "x.png"), "twice its height"]),
    "paired-broken-image": lambda t: (["--data", f"paired:{pair_folder(t, {'x.jpg': b'junk', 'y.jpg': b'junk'})}"],
                                      [str(t / "p" / "x.jpg"), "cannot read image"]),
    "unpaired-one-folder": lambda t: (["--data", f"unpaired:{image_folder(t)}"], ["unpaired:", "two folders"]),
    "unpaired-missing-b": lambda t: (["--data", f"unpaired:{image_folder(t)},{t / 'nope'}"], [str(t / "nope")]),
    "utkface-bad-name": lambda t: (["--data", f"utkface:{image_folder(t, {'old_1_0_2017.jpg': png_bytes(6)})}"],
                                   ["old_1_0_2017.jpg", "not a UTKFace name"]),
    # ---- captions:PATH (images + captions.txt)
    "captions-no-tab": lambda t: (["--data", f"captions:{caption_folder(t, 'no-tab')}"],
                                  [str(t / "cap" / "captions.txt") + ":1:", "no tab"]),
    "captions-missing-image": lambda t: (["--data", f"captions:{caption_folder(t, 'missing-image')}"],
                                         [str(t / "cap" / "captions.txt") + ":2:", "no image 'z.png'"]),
    "captions-escaping-path": lambda t: (["--data", f"captions:{caption_folder(t, 'escaping-path')}"],
                                         ["captions.txt:1:", "without '..'"]),
    "captions-non-utf8": lambda t: (["--data", f"captions:{caption_folder(t, 'non-utf8')}"],
                                    ["captions.txt:1:", "not UTF-8"]),
    "captions-empty-caption": lambda t: (["--data", f"captions:{caption_folder(t, 'empty-caption')}"],
                                         ["captions.txt:1:", "empty caption"]),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_data_is_one_line_exit_2_and_creates_nothing(case, tmp_path, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    args, needles = CASES[case](data_dir)
    before = _tree(tmp_path)
    out = tmp_path / "RUN"
    code, stdout, err = run_cli(capsys, "train", "pixelcnn", "--preset", "tiny", *args, "--out", out, "--steps", "1",
                                "--device", "cpu", "--quiet")
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("genzoo: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()
    assert _tree(tmp_path) == before  # nothing written anywhere (no extraction, no half-made run)


def test_every_data_kind_has_malformed_cases(tmp_path):
    covered = set()
    for i, build in enumerate(CASES.values()):
        (tmp_path / str(i)).mkdir()
        args, _ = build(tmp_path / str(i))
        covered.add(args[args.index("--data") + 1].partition(":")[0])
    assert {k.name for k in dataset_kinds()} <= covered  # a new kind brings its own bad files here


def test_a_large_image_is_refused_without_a_pillow_warning(tmp_path):
    d = image_folder(tmp_path, {"big.png": png_header(10_000, 10_000)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not reach the user
        with pytest.raises(GenzooError, match="MAX_SOURCE_PIXELS"):
            load_dataset(f"folder:{d}", size=4)
    assert MAX_SOURCE_PIXELS == 8192 * 8192  # the limit the README states


def test_memory_limit_is_checked_before_reading_any_image(tmp_path, monkeypatch):
    d = image_folder(tmp_path, {"zz_broken.png": b"never read"})
    monkeypatch.setattr(data_base, "MAX_DATA_BYTES", 1000)
    msg = str(pytest.raises(GenzooError, load_dataset, f"folder:{d}", size=8).value)
    assert "MAX_DATA_BYTES" in msg and "4 images of 8 x 8" in msg  # refused before the broken file is opened


def test_file_size_limit_is_checked_while_reading(tmp_path, monkeypatch):
    d = pokemon_dir(tmp_path, pixels=gzip.compress(PIXELS.encode()), pixels_name="pixel_color.txt.gz")
    monkeypatch.setattr(data_base, "MAX_FILE_BYTES", 100)  # the gunzipped text is 396 bytes
    msg = str(pytest.raises(GenzooError, load_dataset, f"pokemon:{d}").value)
    assert "pixel_color.txt.gz" in msg and "MAX_FILE_BYTES" in msg


def test_archive_members_are_sized_before_they_are_read(tmp_path, monkeypatch):
    from genzoo.data import cifar

    archive = write(tmp_path / "c.tar", tar_bytes(cifar_members({"train/cat/big.png": png_bytes(40)}), "w"))
    monkeypatch.setattr(cifar, "MAX_FILE_BYTES", 1000)  # the 40x40 PNG is over, the 4x4 ones under
    msg = str(pytest.raises(GenzooError, load_dataset, f"cifar10:{archive}").value)
    assert str(archive) in msg and "train/cat/big.png" in msg and "MAX_FILE_BYTES" in msg
    monkeypatch.setattr(cifar, "MAX_DATA_BYTES", 2000)  # the members together
    monkeypatch.setattr(cifar, "MAX_FILE_BYTES", 1 << 30)
    assert "MAX_DATA_BYTES" in str(pytest.raises(GenzooError, load_dataset, f"cifar10:{archive}").value)


# ---------------------------------------------------------------- the ImageDataset contract


INFO = ImageInfo(channels=1, height=2, width=2, num_values=3, num_classes=2)


def dataset(**kw) -> ImageDataset:
    args = {"spec": "made:here", "x": torch.zeros(10, 1, 2, 2, dtype=torch.uint8), "info": INFO,
            "splits": every_tenth_split(10), "labels": torch.zeros(10, dtype=torch.long)}
    return ImageDataset(**{**args, **kw})


@pytest.mark.parametrize("kw, needle", [
    ({"x": torch.full((10, 1, 2, 2), 3, dtype=torch.uint8)}, "image 0 holds the value 3, outside 0-2"),
    ({"x": torch.full((10, 1, 2, 2), -1, dtype=torch.int32)}, "value -1"),
    ({"x": torch.zeros(10, 1, 2, 2)}, "integers"),
    ({"x": torch.zeros(10, 1, 2, 3, dtype=torch.uint8)}, "expected (N, *(1, 2, 2))"),
    ({"x": torch.zeros(0, 1, 2, 2, dtype=torch.uint8), "splits": {"train": torch.arange(0)}}, "no images"),
    ({"labels": torch.tensor([0] * 9 + [2])}, "image 9 has the label 2, outside 0-1"),
    ({"labels": torch.tensor([0] * 9 + [-1])}, "label -1"),
    ({"labels": torch.zeros(9, dtype=torch.long)}, "10 integers"),
    ({"labels": torch.zeros(10)}, "10 integers"),
    ({"splits": every_tenth_split(1) | {"test": torch.arange(1)}}, "split 'train' is empty"),
    ({"splits": {"train": torch.arange(11)}}, "outside the 10 images"),
    ({"splits": {}}, "no splits"),
    ({"info": ImageInfo(1, 2, 2, 0), "x": torch.full((10, 1, 2, 2), float("nan")), "labels": None}, "finite"),
    ({"info": ImageInfo(1, 2, 2, 3, palette=((0, 0, 0),))}, "palette has 1 colours but num_values=3"),
    ({"info": ImageInfo(1, 2, 2, 3, num_classes=2, class_names=("a",))}, "names 1 classes"),
    ({"info": ImageInfo(1, 0, 2, 3, num_classes=2), "x": torch.zeros(10, 1, 0, 2, dtype=torch.uint8)}, "height=0"),
])
def test_every_data_set_meets_the_contract(kw, needle):
    with pytest.raises(GenzooError) as e:
        dataset(**kw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("made:here: ") and needle in msg, msg


def test_a_good_data_set_passes_the_contract():
    d = dataset(x=torch.full((10, 1, 2, 2), 2, dtype=torch.uint8), labels=torch.arange(10) % 2)
    assert d.size("train") == 9 and d.size("test") == 1


@pytest.mark.parametrize("change, needle", [
    ({"height": -20}, "height=-20"),
    ({"height": 16.5}, "height=16.5"),
    ({"num_values": "many"}, "num_values='many'"),
    ({"width": MAX_IMAGE_SIDE + 1}, f"width={MAX_IMAGE_SIDE + 1}"),
    ({"palette": [[0, 0, 0], [1, 1, 300]]}, "palette entry 1"),
    ({"palette": "red"}, "palette must be a list"),
    ({"palette": [[0, 0, 0]]}, "palette has 1 colours"),
    ({"bogus": 1}, "unknown image info key 'bogus'"),
    ({"class_names": "ab"}, "class_names must be a list"),
])
def test_image_info_from_a_file_is_checked(change, needle):
    d = {**ImageInfo(1, 4, 4, 2, palette=((0, 0, 0), (255, 255, 255))).to_dict(), **change}
    with pytest.raises(GenzooError) as e:
        ImageInfo.from_dict(d, source="run/checkpoint.pt")
    assert str(e.value).startswith("run/checkpoint.pt: ") and needle in str(e.value), str(e.value)


def test_image_info_round_trips():
    info = ImageInfo(3, 5, 6, 4, palette=None, num_classes=2, class_names=("a", "b"))
    assert ImageInfo.from_dict(info.to_dict()) == info


# ---------------------------------------------------------------- seeded byte-level mutations


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(b[: rng.randrange(len(b))])
    if kind == 1:
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:
        i = rng.randrange(len(b) + 1)
        return bytes(b[:i] + rng.randbytes(rng.randrange(1, 20)) + b[i:])
    if kind == 3:
        i = rng.randrange(len(b))
        return bytes(b[:i] + b[i + rng.randrange(1, 50):])
    return bytes(b + rng.randbytes(rng.randrange(1, 30)))


def _pokemon_layout(t: Path, data: bytes, which: int) -> str:
    return f"pokemon:{pokemon_dir(t, **({'pixels': data} if which else {'colormap': data}))}"


MUTATED = {  # name -> (good bytes, how to lay a mutated copy out and name its spec)
    "pokemon-pixels": (PIXELS.encode(), lambda t, b: _pokemon_layout(t, b, 1)),
    "pokemon-colormap": (COLORMAP.encode(), lambda t, b: _pokemon_layout(t, b, 0)),
    "idx": (idx_bytes((12, 5, 4)), lambda t, b: f"idx:{write(t / 'x-images-idx3-ubyte', b)}"),
    "idx-gz": (gzip.compress(idx_bytes((12, 5, 4))), lambda t, b: f"idx:{write(t / 'x-images-idx3-ubyte.gz', b)}"),
    "amat": (amat_bytes(), lambda t, b: f"binarized-mnist:{write(t / 'b.amat', b)}"),
    "mat": (mat_bytes(X=np.eye(12, 784, dtype=np.uint8)), lambda t, b: f"binarized-mnist:{write(t / 'b.mat', b)}"),
    **{f"folder-{fmt.lower()}": (png_bytes(7, fmt=fmt), lambda t, b, e=ext: f"folder:{image_folder(t, {'m' + e: b})}")
       for fmt, ext in [("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"), ("WEBP", ".webp")]},
    **{f"cifar-{mode}": (tar_bytes(cifar_members(), f"w:{mode}"), lambda t, b: f"cifar10:{write(t / 'c.tar', b)}")
       for mode in ("", "gz", "bz2", "xz")},
}


@pytest.mark.parametrize("name", list(MUTATED))
def test_mutated_files_load_or_fail_in_one_line(name, tmp_path):
    good, layout = MUTATED[name]
    rng = random.Random(name)
    outcomes = set()
    for i in range(25):
        t = tmp_path / str(i)
        t.mkdir()
        spec = layout(t, _mutate(good, rng))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                load_dataset(spec, size=4) if spec.startswith(("folder:", "cifar10:")) else load_dataset(spec)
                outcomes.add("loaded")
            except GenzooError as e:
                assert "\n" not in str(e), str(e)
                outcomes.add("refused")
    assert "refused" in outcomes
