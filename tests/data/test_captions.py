"""captions:PATH data and the synthetic captioned set."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from genzoo.data import ImageDataset, ImageInfo, every_tenth_split, load_dataset
from genzoo.data.captions import caption_tokens, caption_vocabulary, encode_captions
from genzoo.data.synthetic_captions import attribute_words, measure, write_captioned_set
from genzoo.data.tokens import PAD_ID, UNK_ID
from genzoo.errors import GenzooError


def write_folder(root, lines, images=("a.png", "b.png", "c.png"), grey=True):
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(images):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        value = 40 * (k + 1)
        arr = (
            np.full((6, 6), value, np.uint8)
            if grey
            else np.stack([np.full((6, 6), value, np.uint8)] * 2 + [np.zeros((6, 6), np.uint8)], -1)
        )
        Image.fromarray(arr).save(root / name)
    (root / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_images_captions_vocabulary_and_batches(tmp_path):
    lines = ["a.png\ta light bag", "b.png\tA dark coat.", "", "b.png\ta large coat", "c.png\tbag"]
    data = load_dataset(f"captions:{write_folder(tmp_path / 'set', lines)}")
    assert data.info.shape == (1, 6, 6) and data.info.num_values == 256  # grey images: one channel, native size
    assert data.x[:, 0, 0, 0].tolist() == [40, 80, 120]  # file order
    assert data.splits["test"].tolist() == [0]  # every tenth image from the first
    vocab = caption_vocabulary(data.info)
    assert vocab.tokens[:4] == ("<pad>", "<unk>", "<bos>", "<eos>")
    assert set(vocab.tokens[4:]) == {"a", "dark", "coat", ".", "large", "bag"}  # the train captions' words only
    assert data.captions_of("test", 0) == ["a <unk> bag"]
    assert sorted(data.captions_of("train", 0)) == ["a dark coat .", "a large coat"]
    torch.manual_seed(0)
    seen = {vocab.decode(data.batch("train", [0])["tokens"][0].tolist()) for _ in range(30)}
    assert seen == {"a dark coat .", "a large coat"}  # both captions of the image, drawn at random
    b = data.batch("train", [1, 0])
    assert b["x"].shape == (2, 1, 6, 6) and b["tokens"].dim() == 2
    assert vocab.decode(b["tokens"][0].tolist()) == "bag"
    assert (b["tokens"][0, 1:] == PAD_ID).all()  # padded after the last word


def test_rgb_images_keep_three_channels_and_size_option(tmp_path):
    root = write_folder(tmp_path / "set", ["a.png\tred", "b.png\tgreen", "c.png\tblue"], grey=False)
    data = load_dataset(f"captions:{root}", size=4)
    assert data.info.shape == (3, 4, 4)


def test_train_and_test_folders_are_the_splits(tmp_path):
    images = ("train/0.png", "train/1.png", "test/0.png")
    root = write_folder(tmp_path / "set", [f"{n}\ta coat" for n in images], images=images)
    data = load_dataset(f"captions:{root}")
    assert data.splits["train"].tolist() == [0, 1] and data.splits["test"].tolist() == [2]


def test_vocabulary_from_train_captions_only(tmp_path):
    images = ("train/0.png", "train/1.png", "test/0.png")
    root = write_folder(
        tmp_path / "set", ["train/0.png\ta coat", "train/1.png\ta bag", "test/0.png\ta hat"], images=images
    )
    data = load_dataset(f"captions:{root}")
    vocab = caption_vocabulary(data.info)
    assert "hat" not in vocab.tokens
    assert data.batch("test", [0])["tokens"][0].tolist()[:2] == [vocab.id("a"), UNK_ID]


@pytest.mark.parametrize(
    "lines,match",
    [
        (["a.png\ta coat", "b.png a coat"], r"captions.txt:2: expected FILE<TAB>caption"),
        (["a.png\ta coat", "b.png\t  "], r"captions.txt:2: empty caption"),
        (["a.png\ta coat", "\ta coat"], r"captions.txt:2: no image file"),
        (["a.png\ta coat", "z.png\ta coat"], r"captions.txt:2: no image 'z.png'"),
        (["../a.png\ta coat"], r"captions.txt:1: image path '../a.png' must be relative"),
        (["/etc/passwd\ta coat"], r"captions.txt:1: image path '/etc/passwd' must be relative"),
        (["a.png\t" + "word " * 70], r"captions.txt:1: caption of 70 tokens; the limit is 64"),
        ([], r"captions.txt: no captions"),
        (["captions.txt\ta coat"], r"captions.txt:1: .*cannot read image"),
    ],
)
def test_bad_caption_lines_are_one_line_errors_naming_the_line(tmp_path, lines, match):
    root = write_folder(tmp_path / "set", lines)
    with pytest.raises(GenzooError, match=match) as e:
        load_dataset(f"captions:{root}")
    assert "\n" not in str(e.value)


def test_bad_caption_files(tmp_path):
    root = write_folder(tmp_path / "set", ["a.png\ta coat"])
    (root / "captions.txt").write_bytes(b"a.png\ta coat\nb.png\ta \xff bag\n")
    with pytest.raises(GenzooError, match=r"captions.txt:2: not UTF-8"):
        load_dataset(f"captions:{root}")
    (root / "captions.txt").write_bytes(b"a.png\ta coat\n\x00\x01\x02")
    with pytest.raises(GenzooError, match=r"captions.txt:2: holds a NUL byte"):
        load_dataset(f"captions:{root}")
    (root / "captions.txt").unlink()
    with pytest.raises(GenzooError, match=r"captions.txt: no such file"):
        load_dataset(f"captions:{root}")
    with pytest.raises(GenzooError, match=r"not a folder"):
        load_dataset(f"captions:{root / 'a.png'}")
    with pytest.raises(GenzooError, match=r"do not apply"):
        load_dataset(f"captions:{root}", colors=8)


def test_cli_lists_the_kind_and_refuses_bad_captions_with_exit_2(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and "captions:PATH" in out
    root = write_folder(tmp_path / "set", ["a.png\ta coat", "oops"])
    code, _, err = run_cli(
        capsys,
        "train",
        "text2image",
        "--data",
        f"captions:{root}",
        "--out",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--steps",
        "1",
        "--quiet",
    )
    assert code == 2 and err.count("\n") == 1 and "captions.txt:2: expected FILE<TAB>caption" in err
    assert not (tmp_path / "run").exists()


def test_caption_tokens_and_encoding():
    assert caption_tokens("A T-shirt, dark!") == ["a", "t-shirt", ",", "dark", "!"]
    data_vocab = ("<pad>", "<unk>", "<bos>", "<eos>", "a", "dark", "coat")
    from genzoo.data.tokens import Vocabulary

    tokens, unknown = encode_captions(["a dark truck", "coat"], Vocabulary(data_vocab, "word"))
    assert tokens.tolist() == [[4, 5, UNK_ID], [6, PAD_ID, PAD_ID]] and unknown == ["truck"]
    with pytest.raises(GenzooError, match="empty"):
        encode_captions(["  "], Vocabulary(data_vocab, "word"))


def test_measured_attributes_follow_their_definitions():
    u = np.zeros((2, 1, 4, 4))
    u[0, 0, :2, :2] = 0.5  # 4 object pixels of 0.5
    u[1, 0, :, :3] = 0.9  # 12 object pixels of 0.9
    m = measure(u)
    assert m["brightness"].tolist() == pytest.approx([0.5, 0.9]) and m["area"].tolist() == pytest.approx([0.25, 0.75])
    b, a = attribute_words(m, np.array([0, 0]), {"brightness": [0.7], "area": [0.5]})
    assert b.tolist() == ["dark", "light"] and a.tolist() == ["small", "large"]
    rgb = np.zeros((1, 3, 4, 4))
    rgb[0, 0] = 0.8  # red
    assert measure(rgb)["colour"].tolist() == [0]


def test_synthetic_set_round_trips_through_the_captions_kind(tmp_path):
    n = 40
    x = torch.zeros((n, 1, 8, 8), dtype=torch.uint8)
    for i in range(n):
        x[i, 0, : 2 + i % 5, :4] = 60 + 4 * i  # areas and brightnesses vary within each class
    info = ImageInfo(channels=1, height=8, width=8, num_values=256, num_classes=2, class_names=("Coat", "Ankle boot"))
    source = ImageDataset(
        spec="toy", x=x, info=info, splits=every_tenth_split(n), labels=(torch.arange(n) // 10 + torch.arange(n)) % 2
    )
    summary = write_captioned_set(source, tmp_path / "syn", per_class={"train": 10, "test": 2}, per_image=3, seed=1)
    lines = (tmp_path / "syn" / "captions.txt").read_text().splitlines()
    assert len(lines) == 3 * 24 and len(summary["images"]) == 24
    data = load_dataset(f"captions:{tmp_path / 'syn'}")
    assert data.size("train") == 20 and data.size("test") == 4
    meta = json.loads((tmp_path / "syn" / "attributes.json").read_text())
    for line in lines:
        name, caption = line.split("\t")
        rec = meta["images"][name]
        words = caption.split()
        assert ("coat" in words) == (rec["class"] == 0) and ("boot" in words) == (rec["class"] == 1)
        assert rec["brightness"] in words or rec["attribute"] in words
    # the attribute words split each class at its train median
    train = [r for k, r in meta["images"].items() if k.startswith("train/")]
    for c in (0, 1):
        words = [r["brightness"] for r in train if r["class"] == c]
        assert words.count("dark") == words.count("light") == 5
    with pytest.raises(GenzooError, match="already holds captions.txt"):
        write_captioned_set(source, tmp_path / "syn", per_class={"train": 1})
