"""PixelCNN and Gated PixelCNN: the masks, PixelCNN's blind spot and the gated stacks' lack of one,
class and spatial conditioning, and the cached step against the teacher-forced forward."""
import pytest
import torch
import torch.nn.functional as F

from genzoo.data import ImageInfo
from genzoo.data.base import position
from genzoo.errors import GenzooError
from genzoo.models.autoregressive.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genzoo.models.autoregressive.pixelcnn import PixelCNN, PixelCNNConfig
from genzoo.nn.masked import CausalConv2d, IncrementalConv, MaskedConv2d, channel_groups

TINY_GATED = dict(hidden=6, layers=2, kernel=3, first_kernel=3, embed=3, skip=6, out_hidden=6)


def gated(info, seed=0, **overrides):
    torch.manual_seed(seed)
    return GatedPixelCNN(GatedPixelCNNConfig(**{**TINY_GATED, **overrides}), info).double()


def pixel_grads(model, x, t, **kw):
    """|d logits[t] / d onehot| summed over batch and values, per sub-pixel in raster order (L,)."""
    info = model.info
    onehot = F.one_hot(x, info.num_values).double().requires_grad_(True)  # (B, C, H, W, K)
    c, h, w = position(t, info)
    (grad,) = torch.autograd.grad(model.logits(onehot, **kw)[:, c, h, w].sum(), onehot)
    return grad.abs().sum(dim=(0, 4)).permute(1, 2, 0).reshape(-1)  # (L,)


def raster(x):
    """(n, C, H, W) -> (n, L) in raster order, channels innermost."""
    return x.permute(0, 2, 3, 1).reshape(len(x), -1)


def assert_step_equals_logits(model, info, n=3, condition=None, spatial=None, seed=0):
    """Step t with a canvas whose sub-pixels >= t are fresh garbage gives the teacher-forced logits of x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.num_values, (n, *info.shape), generator=g)
    if spatial is not None:
        condition = spatial if condition is None else (condition, spatial)
    with torch.no_grad():
        full = model.logits(F.one_hot(x, info.num_values).double(), condition)  # (n, C, H, W, K)
        cache = model.init_cache(n, condition)
        for t in range(info.dims):
            garbage = torch.randint(0, info.num_values, (n, *info.shape), generator=g)
            known = torch.arange(info.dims) < t
            flat = torch.where(known, raster(x), raster(garbage))  # (n, L)
            canvas = flat.view(n, info.height, info.width, info.channels).permute(0, 3, 1, 2)
            logits, cache = model.step(cache, t, canvas, condition)
            c, h, w = position(t, info)
            torch.testing.assert_close(logits, full[:, c, h, w], rtol=0, atol=1e-10, msg=f"step {t}")


# -- masked convolution ------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_sees_rows_above_pixels_left_and_earlier_channel_groups(mask_type):
    torch.manual_seed(0)
    cin, cout, groups, k = 6, 9, 3, 5
    conv = MaskedConv2d(cin, cout, k, mask_type, groups).double()
    with torch.no_grad():
        conv.weight.copy_(torch.rand_like(conv.weight) + 0.1)  # every tap non-zero before masking
    x = torch.randn(1, cin, 7, 7, dtype=torch.float64, requires_grad=True)
    out = conv(x)  # (1, cout, 7, 7)
    r = c = 3
    gin, gout = channel_groups(cin, groups), channel_groups(cout, groups)
    rows, cols = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    above = (rows < r) & (rows >= r - k // 2) & ((cols - c).abs() <= k // 2)
    left = (rows == r) & (cols < c) & (cols >= c - k // 2)
    centre = (rows == r) & (cols == c)
    for o in range(cout):
        (grad,) = torch.autograd.grad(out[0, o, r, c], x, retain_graph=True)
        own = gin < gout[o] if mask_type == "A" else gin <= gout[o]  # (cin,)
        expected = (above | left)[None] | (centre[None] & own[:, None, None])  # (cin, 7, 7)
        assert torch.equal(grad[0] != 0, expected), f"output channel {o}"


def test_channel_groups_are_contiguous_and_put_each_channels_logits_together():
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert channel_groups(3 * 4, 3).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert channel_groups(5, 1).tolist() == [0] * 5


@pytest.mark.parametrize("conv", [
    MaskedConv2d(6, 9, 5, "B", 3), MaskedConv2d(6, 9, (1, 3), "A", 3), MaskedConv2d(6, 9, 1, "B", 3),
    CausalConv2d(6, 8, (2, 5)),
], ids=["5x5-B", "1x3-A", "1x1-B", "vertical-2x5"])
def test_incremental_conv_equals_the_full_convolution_at_every_position_row_and_group(conv):
    torch.manual_seed(1)
    conv = conv.double()
    inc = IncrementalConv(conv)
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    full = conv(x)  # (2, O, 4, 5)
    for r in range(4):
        torch.testing.assert_close(inc.row(x, r), full[:, :, r], rtol=0, atol=1e-12)
        for c in range(5):
            torch.testing.assert_close(inc.at(x, r, c), full[:, :, r, c], rtol=0, atol=1e-12)
            for g in range(conv.num_groups):
                torch.testing.assert_close(inc.at(x, r, c, g), full[:, inc.index[g], r, c], rtol=0, atol=1e-12)
                if inc.kh == inc.kw == 1:
                    torch.testing.assert_close(inc.pixel(x[:, :, r, c], g), full[:, inc.index[g], r, c],
                                               rtol=0, atol=1e-12)


# -- PixelCNN: the blind spot ------------------------------------------------------------------------

def test_pixelcnn_has_the_blind_spot_up_and_right_and_never_sees_the_future():
    info = ImageInfo(channels=1, height=6, width=10, num_values=3)
    torch.manual_seed(0)
    cfg = PixelCNNConfig(channels=16, blocks=2, kernel=3, first_kernel=5, embed=4, out_hidden=16)
    model = PixelCNN(cfg, info).double()
    x = torch.randint(0, 3, (8, *info.shape))
    for t in range(info.dims):  # causality: nothing at or after t
        assert torch.all(pixel_grads(model, x, t)[t:] == 0), f"output {t} sees the future"
    r, c = 4, 2
    seen = pixel_grads(model, x, r * info.width + c).view(info.height, info.width) != 0  # (H, W)
    # Row r-d is seen exactly up to column c + f//2 + min(d-1, blocks) * (k//2) (module docstring).
    for d in range(1, r + 1):
        edge = min(c + 2 + min(d - 1, 2) * 1, info.width - 1)
        assert seen[r - d, : edge + 1].all() and not seen[r - d, edge + 1:].any(), f"row {r - d}"
    assert seen[r, :c].all() and not seen[r:, c:].any() and not seen[r + 1:].any()
    # The blind spot: earlier pixels (r-1, c+3...) that a full model would use have exactly zero gradient,
    # while the row above them is seen further right.
    assert not seen[r - 1, c + 3:].any() and seen[r - 2, c + 3]


# -- Gated PixelCNN: no blind spot ------------------------------------------------------------------

@pytest.mark.parametrize("info", [ImageInfo(channels=1, height=5, width=5, num_values=3),
                                  ImageInfo(channels=3, height=3, width=4, num_values=2)], ids=["grey", "rgb"])
def test_gated_pixelcnn_every_output_depends_on_every_earlier_sub_pixel_and_no_later_one(info):
    # receptive field (k=3, 5 layers) covers the image; wide ReLU head so no output is dead for all of x
    model = gated(info, layers=5, skip=12, out_hidden=24)
    x = torch.randint(0, info.num_values, (4, *info.shape), generator=torch.Generator().manual_seed(0))
    for t in range(1, info.dims):
        per_pos = pixel_grads(model, x, t)
        assert torch.all(per_pos[:t] != 0), f"output {t} is blind to {torch.nonzero(per_pos[:t] == 0).flatten()}"
        assert torch.all(per_pos[t:] == 0), f"output {t} sees the future"


def test_gated_pixelcnn_blind_spot_pixel_of_pixelcnn_is_seen():
    """The pixel (r-1, c+3) PixelCNN cannot see (test above) influences the gated model's p(x_rc)."""
    info = ImageInfo(channels=1, height=6, width=8, num_values=3)
    model = gated(info, layers=4, first_kernel=5)
    x = torch.randint(0, 3, (4, *info.shape))
    seen = pixel_grads(model, x, 4 * info.width + 2).view(info.height, info.width) != 0
    assert seen[3, 5:].all()


# -- conditioning -----------------------------------------------------------------------------------

def test_class_condition_changes_logits_and_samples_and_trains_the_class_embedding():
    info = ImageInfo(channels=1, height=4, width=4, num_values=4, num_classes=3)
    model = gated(info, conditional=True)
    assert model.conditional
    x = torch.randint(0, 4, (6, *info.shape), generator=torch.Generator().manual_seed(0))
    onehot = F.one_hot(x, 4).double()
    a = model.logits(onehot, torch.zeros(6, dtype=torch.long))
    b = model.logits(onehot, torch.ones(6, dtype=torch.long))
    assert (a - b).abs().max() > 1e-3
    s0 = model.sample(8, generator=torch.Generator().manual_seed(3), condition=torch.zeros(8, dtype=torch.long))
    s1 = model.sample(8, generator=torch.Generator().manual_seed(3), condition=torch.ones(8, dtype=torch.long))
    assert not torch.equal(s0, s1)
    y = torch.tensor([0, 0, 2, 2, 0, 2])
    model.loss({"x": x, "y": y}).loss.backward()
    for layer in model.layers:
        for emb in (layer.class_h, layer.class_v):
            if emb is None:
                continue
            norms = emb.weight.grad.abs().sum(1)  # (num_classes,)
            assert norms[0] > 0 and norms[2] > 0 and norms[1] == 0  # label 1 is not in the batch
    with pytest.raises(GenzooError, match="out of range"):
        model.logits(onehot, torch.full((6,), 3))


def test_conditional_model_without_a_label_uses_h_zero():
    info = ImageInfo(channels=1, height=3, width=3, num_values=3, num_classes=2)
    model = gated(info, conditional=True)
    onehot = F.one_hot(torch.randint(0, 3, (2, *info.shape)), 3).double()
    with torch.no_grad():
        for layer in model.layers:
            for emb in (layer.class_h, layer.class_v):
                if emb is not None:
                    emb.weight.zero_()
    assert torch.equal(model.logits(onehot, None), model.logits(onehot, torch.tensor([0, 1])))


@pytest.mark.parametrize("info", [ImageInfo(channels=1, height=4, width=6, num_values=4, num_classes=3),
                                  ImageInfo(channels=3, height=2, width=4, num_values=3, num_classes=3)],
                         ids=["grey", "rgb"])
def test_class_conditional_cached_step_equals_forward_and_samples_equal_naive(info):
    model = gated(info, conditional=True)
    y = torch.tensor([2, 0, 1])
    assert_step_equals_logits(model, info, condition=y)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    f64 = torch.float64
    assert torch.equal(model.sample(3, generator=g1, precision=f64, condition=y),
                       model.sample(3, generator=g2, precision=f64, condition=y, naive=True))


def spatial_model(info, **kw):
    return gated(info, spatial_channels=2, spatial_scale=2, **kw)


@pytest.mark.parametrize("info", [ImageInfo(channels=1, height=4, width=6, num_values=3),
                                  ImageInfo(channels=3, height=2, width=4, num_values=2)], ids=["grey", "rgb"])
def test_spatial_condition_changes_logits_keeps_causality_and_cached_equals_forward(info):
    model = spatial_model(info)
    g = torch.Generator().manual_seed(0)
    m1 = torch.randn(3, 2, info.height // 2, info.width // 2, generator=g, dtype=torch.float64)
    m2 = torch.randn(3, 2, info.height // 2, info.width // 2, generator=g, dtype=torch.float64)
    x = torch.randint(0, info.num_values, (3, *info.shape), generator=g)
    onehot = F.one_hot(x, info.num_values).double()
    assert (model.logits(onehot, m1) - model.logits(onehot, m2)).abs().max() > 1e-6
    for t in range(info.dims):
        assert torch.all(pixel_grads(model, x, t, condition=m1)[t:] == 0), f"output {t} sees the future"
    m = m1.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.logits(onehot, m)[:, 0, 0, 0].sum(), m)
    assert grad.abs().sum() > 0
    assert_step_equals_logits(model, info, spatial=m1)


@pytest.mark.parametrize("info", [ImageInfo(channels=1, height=4, width=4, num_values=3),
                                  ImageInfo(channels=3, height=2, width=4, num_values=2)], ids=["grey", "rgb"])
def test_spatial_condition_is_sampleable_through_the_api_cached_equals_naive(info):
    """sample/complete take the map as ``condition``; the cached and naive paths draw the same images,
    the map changes them, and completion keeps the known pixels."""
    model = spatial_model(info)
    with torch.no_grad():  # an untrained map barely moves the probabilities (~1e-4): make it count
        model.spatial_net[-1].weight.mul_(30)
        model.spatial_net[-1].bias.mul_(30)
        model.out_logits.weight.mul_(10)
    n = 8
    g = torch.Generator().manual_seed(4)
    m1 = torch.randn(n, 2, info.height // 2, info.width // 2, generator=g)  # float32, as a caller gives it
    m2 = torch.randn(n, 2, info.height // 2, info.width // 2, generator=g)
    a = model.sample(n, generator=torch.Generator().manual_seed(9), precision=torch.float64, condition=m1)
    b = model.sample(n, generator=torch.Generator().manual_seed(9), precision=torch.float64, condition=m1, naive=True)
    c = model.sample(n, generator=torch.Generator().manual_seed(9), precision=torch.float64, condition=m2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    known = torch.zeros(info.shape, dtype=torch.bool)
    known[:, : info.height // 2] = True
    f64 = torch.float64
    d = model.complete(a, known, generator=torch.Generator().manual_seed(3), precision=f64, condition=m2)
    e = model.complete(a, known, generator=torch.Generator().manual_seed(3), precision=f64, condition=m2, naive=True)
    assert torch.equal(d, e) and torch.equal(d[:, known], a[:, known])


def test_spatial_and_class_condition_together_sample_as_a_pair():
    info = ImageInfo(channels=1, height=4, width=4, num_values=3, num_classes=2)
    model = spatial_model(info, conditional=True)
    pair = (torch.tensor([1, 0, 1]), torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(0)))
    a = model.sample(3, generator=torch.Generator().manual_seed(5), precision=torch.float64, condition=pair)
    b = model.sample(3, generator=torch.Generator().manual_seed(5), precision=torch.float64, condition=pair, naive=True)
    assert torch.equal(a, b)
    with pytest.raises(GenzooError, match="2 class labels for 3 spatial maps"):
        model.sample(3, condition=(torch.tensor([1, 0]), pair[1]))
    with pytest.raises(GenzooError, match="out of range"):
        model.sample(3, condition=(torch.tensor([1, 0, 2]), pair[1]))


def test_spatial_and_class_condition_together_cached_equals_forward():
    info = ImageInfo(channels=1, height=4, width=4, num_values=3, num_classes=2)
    model = spatial_model(info, conditional=True, layers=3)
    spatial = torch.randn(3, 2, 2, 2, dtype=torch.float64)
    assert_step_equals_logits(model, info, condition=torch.tensor([1, 0, 1]), spatial=spatial)


def test_spatial_map_of_the_wrong_shape_or_missing_is_a_one_line_error():
    info = ImageInfo(channels=1, height=4, width=4, num_values=3)
    model = spatial_model(info)
    onehot = F.one_hot(torch.zeros(2, 1, 4, 4, dtype=torch.long), 3).double()
    with pytest.raises(GenzooError, match="expected"):
        model.logits(onehot, torch.zeros(2, 2, 4, 4, dtype=torch.float64))
    with pytest.raises(GenzooError, match="needs a spatial map"):
        model.logits(onehot)
    with pytest.raises(GenzooError, match="needs a spatial map"):
        model.sample(2)
    with pytest.raises(GenzooError, match="expected"):
        model.sample(2, condition=torch.zeros(2, 2, 4, 4))
    with pytest.raises(GenzooError, match="2 entries for 3 images"):
        model.sample(3, condition=torch.zeros(2, 2, 2, 2))
    with pytest.raises(GenzooError, match="takes no spatial map"):
        gated(info).logits(onehot, torch.zeros(2, 2, 2, 2))
    with pytest.raises(GenzooError, match="takes no spatial map"):
        gated(info).sample(2, condition=torch.zeros(2, 2, 2, 2))
    with pytest.raises(GenzooError, match="num_classes"):
        gated(info, conditional=True)


# -- cached == teacher-forced, both models, awkward shapes ---------------------------------------------

SHAPES = [ImageInfo(channels=3, height=3, width=4, num_values=5),
          ImageInfo(channels=1, height=4, width=1, num_values=3),
          ImageInfo(channels=1, height=1, width=5, num_values=3),
          ImageInfo(channels=3, height=2, width=2, num_values=2)]


@pytest.mark.parametrize("info", SHAPES, ids=["rgb-3x4", "grey-4x1", "grey-1x5", "rgb-2x2"])
@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn"])
def test_cached_step_equals_teacher_forced_logits_and_ignores_later_sub_pixels(name, info):
    torch.manual_seed(0)
    if name == "pixelcnn":
        model = PixelCNN(PixelCNNConfig(channels=12, blocks=2, first_kernel=5, embed=3, out_hidden=6), info).double()
    else:
        model = gated(info, layers=3, first_kernel=5)
    assert_step_equals_logits(model, info)


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_too_few_features_for_the_colour_groups_is_an_error(cls):
    info = ImageInfo(channels=3, height=2, width=2, num_values=2)
    cfg = PixelCNNConfig(channels=4) if cls is PixelCNN else GatedPixelCNNConfig(hidden=2)
    with pytest.raises(GenzooError, match="channels"):
        cls(cfg, info)


@pytest.mark.parametrize("cfg_cls,bad", [(PixelCNNConfig, {"kernel": 4}), (PixelCNNConfig, {"channels": 1}),
                                         (GatedPixelCNNConfig, {"first_kernel": 2}),
                                         (GatedPixelCNNConfig, {"spatial_channels": -1}),
                                         (GatedPixelCNNConfig, {"layers": 0})])
def test_bad_config_values_raise(cfg_cls, bad):
    with pytest.raises(ValueError):
        cfg_cls(**bad)
