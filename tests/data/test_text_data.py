"""Token data: text:, tang:, ptb: kinds -- splits, vocabulary from train, round trips, one-line refusals."""
import json

import pytest
import torch

from conftest import SHARED_DATA, run_cli
from genzoo.data import load_dataset
from genzoo.data.text import poem_form_ok, rows_to_text, text_to_row
from genzoo.data.tokens import EOS_ID, PAD_ID, UNK_ID
from genzoo.errors import GenzooError

LINES = [f"{a} {b} sat" for a in ("the", "a", "one") for b in ("cat", "dog", "bird", "fox")]  # 12 lines


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_text_file_every_tenth_split_and_round_trip(tmp_path):
    f = write(tmp_path / "s.txt", "\n".join(LINES[:5]) + "\n\n" + "\n".join(LINES[5:]) + "\n")
    data = load_dataset(f"text:{f}", tokens="word")
    assert data.info.is_text and data.info.shape == (1, 1, 4)  # 3 words + <eos>
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 10, "test": 2}
    assert data.meta["blank_lines"] == 1
    train = rows_to_text(data.info, data.images("train"))
    assert train == [s for i, s in enumerate(LINES) if i % 10]
    rows = as_rows(data)
    assert torch.all(rows[:, -1] == EOS_ID)


def as_rows(data):
    return torch.cat([data.images(s) for s in data.splits]).flatten(1)


def test_char_tokens_vocab_limit_and_max_len(tmp_path):
    f = write(tmp_path / "s.txt", "\n".join(LINES) + "\n")
    data = load_dataset(f"text:{f}", vocab=8, max_len=5)
    assert data.info.tokens == "char" and data.info.num_values == 8
    assert data.meta["truncated"] == 12  # every line is longer than 4 characters
    rows = as_rows(data)
    assert rows.shape[1] == 5 and not torch.any(rows == EOS_ID) and torch.any(rows == UNK_ID)
    full = load_dataset(f"text:{f}")
    assert rows_to_text(full.info, full.images("train")) == [s for i, s in enumerate(LINES) if i % 10]


def test_folder_with_train_and_test_files_keeps_their_split(tmp_path):
    write(tmp_path / "train.txt", "\n".join(LINES[:8]))
    write(tmp_path / "test.txt", "\n".join(LINES[8:] + ["the zebra sat"]))
    data = load_dataset(f"text:{tmp_path}", tokens="word")
    assert data.size("train") == 8 and data.size("test") == 5
    assert "zebra" not in data.info.vocab  # the vocabulary comes from the training split only
    assert rows_to_text(data.info, data.images("test"))[-1] == "the <unk> sat"


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty file"),
        (b"\n  \n", "empty file"),
        (b"one line\nbin\x00ary\n", r":2: a NUL byte"),
        ("fine\nalso fine\ncaf\u00e9\n".encode("latin-1"), r":3: not UTF-8"),
    ],
)
def test_bad_text_files_are_one_line_errors_naming_file_and_line(tmp_path, capsys, content, match):
    f = write(tmp_path / "bad.txt", content)
    with pytest.raises(GenzooError, match=match) as e:
        load_dataset(f"text:{f}")
    assert str(f) in str(e.value) and "\n" not in str(e.value)
    code, out, err = run_cli(capsys, "train", "char_rnn", "--out", tmp_path / "run", "--data", f"text:{f}",
                             "--preset", "tiny", "--steps", "1", "--quiet")
    assert code == 2 and err.startswith("genzoo: error:") and err.count("\n") == 1 and str(f) in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_text_options_refused_where_they_do_not_apply(tmp_path, capsys):
    f = write(tmp_path / "s.txt", "\n".join(LINES))
    with pytest.raises(GenzooError, match="form"):
        load_dataset(f"text:{f}", form="quatrain5")
    with pytest.raises(GenzooError, match="unknown tokenizer"):
        load_dataset(f"text:{f}", tokens="bytes")
    code, _, err = run_cli(capsys, "train", "vae", "--out", tmp_path / "r", "--data", "pokemon", "--tokens", "word")
    assert code == 2 and "--tokens: applies to token data" in err


def test_prefix_and_sentence_rows(tmp_path):
    f = write(tmp_path / "s.txt", "\n".join(LINES))
    info = load_dataset(f"text:{f}", tokens="word").info
    row, unknown = text_to_row(info, "the zebra", sentence=False)
    assert unknown == ["zebra"] and row[0, 0, 0, 1] == UNK_ID and row[0, 0, 0, 2] == PAD_ID
    row, _ = text_to_row(info, "a dog sat", sentence=True)
    assert rows_to_text(info, row) == ["a dog sat"] and row[0, 0, 0, 3] == EOS_ID
    with pytest.raises(GenzooError, match="tokens; the run's rows hold"):
        text_to_row(info, "a dog sat on", sentence=True)


def test_poem_form_rule():
    assert poem_form_ok("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。", "quatrain5")
    assert not poem_form_ok("床前明月光，疑是地上霜。舉頭望明月低，頭思故鄉。", "quatrain5")
    assert not poem_form_ok("床前明月光，疑是地上霜。", "quatrain5")
    with pytest.raises(GenzooError, match="poem form"):
        poem_form_ok("x", "sonnet")


def test_tang_folder_forms(tmp_path):
    poems = [
        {"author": "a", "title": "t", "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]},
        {"author": "b", "title": "u", "paragraphs": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]},
        {"paragraphs": ["朝辭白帝彩雲間，千里江陵一日還。", "兩岸猿聲啼不住，輕舟已過萬重山。"]},
    ]
    write(tmp_path / "poet.tang.0.json", json.dumps(poems, ensure_ascii=False))
    assert load_dataset(f"tang:{tmp_path}").meta["poems"] == 3
    data = load_dataset(f"tang:{tmp_path}", form="quatrain5")
    assert data.meta["poems"] == 2 and data.info.shape == (1, 1, 25)
    write(tmp_path / "poet.tang.1000.json", '[{"paragraphs": 3}]')
    with pytest.raises(GenzooError, match=r"poet\.tang\.1000\.json: poem 0"):
        load_dataset(f"tang:{tmp_path}")


@pytest.mark.skipif(not (SHARED_DATA / "ptb" / "ptb.zip").exists(), reason="needs ../shared/data/ptb")
def test_ptb_is_mikolovs_split_read_from_the_zip():
    data = load_dataset(f"ptb:{SHARED_DATA / 'ptb' / 'ptb.zip'}")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 42068, "valid": 3370, "test": 3761}
    assert data.info.tokens == "word" and data.meta["out_of_vocabulary"] == 0 and data.meta["truncated"] == 0
    assert data.info.num_values == 10002  # its 10,000 word types (<unk> one of them) and <pad>, <bos>, <eos>


@pytest.mark.skipif(not (SHARED_DATA / "tang_poetry").exists(), reason="needs ../shared/data/tang_poetry")
def test_tang_quatrains_from_the_archive():
    data = load_dataset(f"tang:{SHARED_DATA / 'tang_poetry' / 'tang_poetry.tar.gz'}", form="quatrain5")
    assert data.meta["poems"] == 3935 and data.size("test") == 394
    ok = sum(poem_form_ok(s, "quatrain5") for s in rows_to_text(data.info, data.images("train")))
    assert ok / data.size("train") > 0.98
