"""The FID Inception network, its safe loader, the extractor registry and the feature cache.

The forward pass of the 299x299 network costs ~6 GFLOPs per image, so the whole file runs it on
six single images, all through one module-scoped saved network.
"""
import hashlib
import os
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from genzoo.errors import GenzooError
from genzoo.features import (
    FIDInceptionV3,
    ModuleExtractor,
    PixelExtractor,
    available_extractors,
    build_extractor,
    cached_features,
    cached_stats,
    load_inception,
    register_extractor,
)
from genzoo.features import extractors as ex
from genzoo.features.inception import FID_WEIGHTS_NAME, check_state
from genzoo.metrics.distances import GaussianStats


def random_inception(seed=0) -> FIDInceptionV3:
    """Random weights whose features vary with the input (He init, random BN statistics)."""
    g = torch.Generator().manual_seed(seed)
    net = FIDInceptionV3().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random network, its weights as .pth (without num_batches_tracked, like old files),
    .safetensors and legacy (non-zip) .pth, and its features of one RGB image and one grey image (repeated to RGB)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("inception")
    net = random_inception()
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    pth, st, legacy = folder / "w.pth", folder / "w.safetensors", folder / "legacy.pth"
    torch.save(state, pth)
    save_file(state, str(st))
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)  # pre-1.6 format
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(1, 3, 20, 24, generator=g)
    grey = torch.rand(1, 1, 20, 24, generator=g)
    with torch.no_grad():
        ref = net(torch.cat([rgb, grey.expand(-1, 3, -1, -1)]))  # (2, 2048)
    return {"net": net, "pth": pth, "st": st, "legacy": legacy, "rgb": rgb, "grey": grey, "ref": ref}


# ---------------------------------------------------------------- the network


def test_layout_is_the_pytorch_fid_state_dict():
    net = FIDInceptionV3()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    # torchvision's Inception3 has 27,161,264 parameters; without the auxiliary head
    # (98,304 + 256 + 2,457,600 + 1,536 + 769,000 = 3,326,696) and with 1008 instead of 1000 logits
    # (+ 8 * 2048 + 8) that leaves 23,850,960: the pytorch-fid FID network.
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049
    assert not any(k.startswith("AuxLogits") for k in shapes)
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_4a_3x3.bn.running_var"] == (192,)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["fc.weight"] == (1008, 2048) and shapes["fc.bias"] == (1008,)
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def pool_input(block, x):
    seen = []
    hook = block.branch_pool.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        block(x)
    hook.remove()
    return seen[0]


def test_fid_pooling_variants():
    net = FIDInceptionV3().eval()
    # A/C/E average pools ignore the zero padding: a constant map stays constant up to the border
    for block, c in ((net.Mixed_5b, 192), (net.Mixed_6b, 768), (net.Mixed_7b, 1280)):
        pooled = pool_input(block, torch.full((1, c, 5, 5), 2.0))
        assert torch.allclose(pooled, torch.full_like(pooled, 2.0))
    # Mixed_7b averages a spike over its 3x3 window, Mixed_7c (the FID graph) takes the max
    spike = torch.zeros(1, 1280, 5, 5)
    spike[:, :, 2, 2] = 9.0
    assert torch.allclose(pool_input(net.Mixed_7b, spike)[0, 0, 1:4, 1:4], torch.ones(3, 3))
    spike = torch.zeros(1, 2048, 5, 5)
    spike[:, :, 2, 2] = 9.0
    assert torch.allclose(pool_input(net.Mixed_7c, spike)[0, 0, 1:4, 1:4], torch.full((3, 3), 9.0))


# ---------------------------------------------------------------- loading


def test_load_pth_and_safetensors_give_the_same_network(saved):
    net = load_inception(saved["pth"])
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        f = net(saved["rgb"])
    assert torch.equal(f, saved["ref"][:1])
    assert (saved["ref"][0] - saved["ref"][1]).abs().mean() > 1e-3  # features depend on the image
    assert net.weights_hash == hashlib.sha256(saved["pth"].read_bytes()).hexdigest()[:16]
    a = net.state_dict()
    for other in (saved["st"], saved["legacy"]):
        b = load_inception(other).state_dict()
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad, message", [
    ({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5)},
     "key 'Conv2d_1a_3x3.conv.weight' has shape (32, 3, 5, 5), expected (32, 3, 3, 3)"),
    ({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, "missing key 'Conv2d_1a_3x3.bn.weight'"),
    ({"Conv2d_1a_3x3.conv.weight": torch.full((32, 3, 3, 3), float("nan"))}, "NaN"),
    ([torch.zeros(3)], "expected a state dict"),
])
def test_bad_weights_give_one_line_naming_file_and_key(tmp_path, bad, message):
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(GenzooError) as e:
        load_inception(path)
    assert message in str(e.value) and "bad.pth" in str(e.value) and "\n" not in str(e.value)


def test_unexpected_key_is_named():
    net = FIDInceptionV3()
    state = dict(net.state_dict(), **{"AuxLogits.fc.weight": torch.zeros(1008, 768)})
    with pytest.raises(GenzooError, match="unexpected key 'AuxLogits.fc.weight'"):
        check_state(state, net, "x.pth")


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickled_code_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": Payload()}, path)
    with pytest.raises(GenzooError, match="refused"):
        load_inception(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_unreadable_and_mislabelled_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a weights file at all")
    with pytest.raises(GenzooError, match="junk.pth: not a readable weights file"):
        load_inception(junk)
    st = tmp_path / "junk.safetensors"
    st.write_bytes(b"\x00" * 16)
    with pytest.raises(GenzooError, match="junk.safetensors: not a readable safetensors file"):
        load_inception(st)
    fake = tmp_path / FID_WEIGHTS_NAME
    fake.write_bytes(b"anything")
    with pytest.raises(GenzooError, match="sha256"):
        load_inception(fake)
    with pytest.raises(GenzooError, match="not found"):
        load_inception(tmp_path / "missing.pth")


# ---------------------------------------------------------------- extractors


def test_inception_extractor_repeats_grey_and_checks_inputs(saved):
    ext = build_extractor(f"inception:{saved['pth']}", batch_size=1)
    assert ext.name == "inception" and ext.dim == 2048 and "299x299" in ext.resize
    assert ext.weights_hash == hashlib.sha256(saved["pth"].read_bytes()).hexdigest()[:16]
    f = ext.features(saved["grey"].numpy())  # numpy input, one channel
    assert f.dtype == np.float32 and f.shape == (1, 2048)
    np.testing.assert_array_equal(f, saved["ref"][1:].numpy())
    with pytest.raises(GenzooError, match=r"\[0, 1\]"):
        ext.features(saved["rgb"] * 2)
    with pytest.raises(GenzooError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        ext.features(torch.rand(1, 4, 8, 8))


def test_registry_dispatch_and_unknown_prefix(monkeypatch):
    assert {"inception", "pixels"} <= set(available_extractors())
    with pytest.raises(GenzooError, match="unknown feature extractor 'toynet'; valid: .*inception, pixels"):
        build_extractor("toynet:runs/mnist")
    monkeypatch.setattr(ex, "_BUILDERS", dict(ex._BUILDERS))  # keep the registration local to this test
    calls = []

    @register_extractor("toynet")
    def build(arg, *, device, batch_size):
        calls.append(arg)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        return ModuleExtractor("toynet", net, 2, "none", device=device, batch_size=batch_size)

    e = build_extractor("toynet:runs/mnist", batch_size=3)
    assert calls == ["runs/mnist"] and e.features(torch.rand(7, 1, 2, 2)).shape == (7, 2)
    assert len(e.weights_hash) == 16


def test_pixel_extractor_is_the_flattened_image():
    x = torch.rand(5, 3, 4, 2)
    ext = build_extractor("pixels")
    assert np.array_equal(ext.features(x), x.reshape(5, -1).numpy()) and ext.dim == 24
    assert ext.weights_hash == PixelExtractor().weights_hash and len(ext.weights_hash) == 16


# ---------------------------------------------------------------- cache


class Counting:
    """Batches of unit images that record whether they were read."""

    def __init__(self, x, batch=4):
        self.x, self.batch, self.reads = x, batch, 0

    def __iter__(self):
        self.reads += 1
        for s in range(0, len(self.x), self.batch):
            yield self.x[s:s + self.batch]


def test_feature_cache_hit_miss_and_invalidation(tmp_path):
    x = torch.rand(10, 1, 3, 3)
    ext = build_extractor("pixels")
    first = Counting(x)
    f = cached_features(ext, "mnist", first, tmp_path, split="test", count=10)
    assert first.reads == 1 and np.array_equal(f, x.reshape(10, -1).numpy())
    again = Counting(x)
    assert np.array_equal(cached_features(ext, "mnist", again, tmp_path, split="test", count=10), f)
    assert again.reads == 0  # a hit never touches the images
    for key in ({"data_key": "fashion"}, {"split": "train"}):
        other = Counting(x)
        cached_features(ext, key.get("data_key", "mnist"), other, tmp_path, split=key.get("split", "test"), count=10)
        assert other.reads == 1
    # another extractor (a different weights hash) misses too
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 2))
    other = Counting(x)
    g = cached_features(ModuleExtractor("pixels", net, 2, "none"), "mnist", other, tmp_path, split="test", count=10)
    assert other.reads == 1 and g.shape == (10, 2)
    # a count that does not match the images is an error, not a silently wrong cache entry
    with pytest.raises(GenzooError, match="gave 10 features, 12 promised"):
        cached_features(ext, "mnist", Counting(x), tmp_path, split="test", count=12)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes left no temp file


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    x = torch.rand(6, 1, 2, 2)
    ext = build_extractor("pixels")
    cached_features(ext, "d", Counting(x), tmp_path, split="test", count=6)
    (npy,) = tmp_path.glob("*.npy")
    npy.write_bytes(b"garbage")
    redo = Counting(x)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        f = cached_features(ext, "d", redo, tmp_path, split="test", count=6)
    assert redo.reads == 1 and np.array_equal(f, x.reshape(6, -1).numpy()) and w


def test_stats_cache_equals_direct_stats(tmp_path):
    x = torch.rand(20, 1, 2, 3, dtype=torch.float64)
    ext = build_extractor("pixels")
    s = cached_stats(ext, "d", Counting(x), tmp_path, split="train", count=20)
    direct = GaussianStats.of(x.reshape(20, -1).float())
    np.testing.assert_allclose(s.cov, direct.cov, rtol=1e-12, atol=1e-15)
    reread = Counting(x)
    s2 = cached_stats(ext, "d", reread, tmp_path, split="train", count=20)
    assert reread.reads == 0 and s2.count == 20 and np.array_equal(s2.cov, s.cov) and np.array_equal(s2.mean, s.mean)
