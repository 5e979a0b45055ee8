import json

import pytest

from genzoo.data.tokens import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    Vocabulary,
    detokenize,
    tokenize,
)
from genzoo.errors import GenzooError

POEM = ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]
PTB = ["the cat sat on the mat", "a <unk> of N dollars", "the dog"]


@pytest.mark.parametrize("text", ["床前明月光，疑是地上霜。", "a b  c\t", "", "\u00e9\u0301 \U0001f600"])
def test_char_tokenize_round_trips_exactly(text):
    assert detokenize(tokenize(text, "char"), "char") == text
    assert len(tokenize(text, "char")) == len(text)


@pytest.mark.parametrize("text", ["the cat sat", "  the   cat\tsat \n", ""])
def test_word_tokenize_round_trips_up_to_whitespace(text):
    assert detokenize(tokenize(text, "word"), "word") == " ".join(text.split())


@pytest.mark.parametrize("tokenizer,lines", [("char", POEM), ("word", PTB)])
def test_encode_decode_round_trip(tokenizer, lines):
    vocab = Vocabulary.build([tokenize(s, tokenizer) for s in lines], tokenizer)
    for s in lines:
        ids = vocab.encode(s, bos=True, eos=True)
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID
        assert UNK_ID not in ids[1:-1] or "<unk>" in s
        assert vocab.decode(ids) == s
        assert vocab.decode(ids + [PAD_ID, PAD_ID]) == s  # stops at <eos>


def test_specials_first_then_frequency_and_max_size():
    vocab = Vocabulary.build([list("aaabbc"), list("ab")], "char", max_size=6)
    assert vocab.tokens[:4] == SPECIALS
    assert vocab.tokens[4:] == ("a", "b")  # c (rarest) is cut by max_size
    assert len(vocab) == 6
    assert vocab.encode("abc") == [4, 5, UNK_ID]
    assert vocab.decode(vocab.encode("abc")) == "ab<unk>"


def test_ptb_unk_is_the_special_unk():
    vocab = Vocabulary.build([s.split() for s in PTB], "word")
    assert vocab.id("<unk>") == UNK_ID
    assert vocab.tokens.count("<unk>") == 1


def test_ties_keep_first_seen_order():
    vocab = Vocabulary.build([["z", "y", "x"]], "word")
    assert vocab.tokens[4:] == ("z", "y", "x")


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build([tokenize(s, "char") for s in POEM], "char", max_size=20)
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))["tokens"][:4] == list(SPECIALS)


@pytest.mark.parametrize(
    "doc,match",
    [
        ({"format": "genzoo-vocab-1", "tokenizer": "char", "tokens": ["a"]}, "must start with"),
        ({"format": "genzoo-vocab-1", "tokenizer": "byte", "tokens": list(SPECIALS)}, "tokenizer"),
        ({"format": "other", "tokenizer": "char", "tokens": list(SPECIALS)}, "format"),
        ({"format": "genzoo-vocab-1", "tokenizer": "char", "tokens": [*SPECIALS, "a", "a"]}, "twice"),
        ({"format": "genzoo-vocab-1", "tokenizer": "char", "tokens": [*SPECIALS, "ab"]}, "one character"),
        ({"format": "genzoo-vocab-1", "tokenizer": "word", "tokens": [*SPECIALS, "a b"]}, "one word"),
        ({"format": "genzoo-vocab-1", "tokenizer": "word", "tokens": [*SPECIALS, 3]}, "non-empty strings"),
        ({"format": "genzoo-vocab-1", "tokenizer": "word", "tokens": list(SPECIALS), "x": 1}, "unknown"),
    ],
)
def test_bad_vocab_file_is_one_line_naming_it(tmp_path, doc, match):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GenzooError, match=match) as e:
        Vocabulary.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_bad_options():
    with pytest.raises(GenzooError, match="unknown tokenizer"):
        tokenize("abc", "bpe")
    with pytest.raises(GenzooError, match="vocabulary size"):
        Vocabulary.build([["a"]], "word", max_size=3)
    vocab = Vocabulary.build([["a"]], "word")
    with pytest.raises(GenzooError, match="token id 9"):
        vocab.decode([9])
