"""The 2-D recurrent PixelRNNs (arXiv:1601.06759 sec. 3.1-3.5): receptive fields by exact gradients,
cached steps equal to the teacher-forced network, and the multi-scale model's exact likelihood."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from genzoo.data import ImageInfo
from genzoo.data.base import position
from genzoo.errors import GenzooError
from genzoo.models.autoregressive.diagonal_bilstm import DiagonalBiLSTM
from genzoo.models.autoregressive.multiscale_pixelrnn import MultiscalePixelRNN
from genzoo.models.autoregressive.row_lstm import RowLSTM
from genzoo.models.registry import make_config
from genzoo.nn.masked import MaskedConv2d
from genzoo.nn.recurrent import skew, unskew

TRAIN_KEYS = ("batch_size", "lr")
WIDE = {"hidden": 8, "head": 16}  # tiny widths leave a colour group 1-2 units, which an untrained ReLU can zero


def build(cls, info, seed=0, **overrides):
    preset = {k: v for k, v in cls.presets["tiny"].items() if k not in TRAIN_KEYS}
    torch.manual_seed(seed)
    return cls(make_config(cls.Config, {**preset, **overrides}), info)


def dependence(model_logits, info, batch=4, seed=0):
    """seen[t] (L,) bool per output sub-pixel t (raster, channel innermost): which inputs get gradient."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.num_values, (batch, *info.shape), generator=g)
    onehot = F.one_hot(x, info.num_values).double().requires_grad_(True)  # (B, C, H, W, K)
    logits = model_logits(onehot)  # (B, C, H, W, K)
    seen = torch.zeros(info.dims, info.dims, dtype=torch.bool)
    for t in range(info.dims):
        c, h, w = position(t, info)
        (grad,) = torch.autograd.grad(logits[:, c, h, w].sum(), onehot, retain_graph=True)
        seen[t] = grad.abs().sum(dim=(0, 4)).permute(1, 2, 0).reshape(-1) > 0  # (L,) raster order
    return seen


def expected(info, sees_pixel):
    """The expected dependence matrix from a rule sees_pixel(h, w, h2, w2) for earlier pixels;
    a pixel's own earlier channels (c2 < c) are always seen (mask A, then mask B)."""
    exp = torch.zeros(info.dims, info.dims, dtype=torch.bool)
    for t, s in itertools.product(range(info.dims), repeat=2):
        c, h, w = position(t, info)
        c2, h2, w2 = position(s, info)
        if (h2, w2) == (h, w):
            exp[t, s] = c2 < c
        elif (h2, w2) < (h, w):
            exp[t, s] = sees_pixel(h, w, h2, w2)
    return exp


# -- shared pieces --------------------------------------------------------------------------------

def test_skew_moves_row_i_right_by_i_and_unskew_inverts_it():
    x = torch.randn(2, 3, 4, 5)
    s = skew(x)  # (2, 3, 4, 8)
    assert s.shape == (2, 3, 4, 8)
    for i, j in itertools.product(range(4), range(5)):
        assert torch.equal(s[:, :, i, i + j], x[:, :, i, j])
    assert (s != 0).sum() == (x != 0).sum()  # zeros everywhere else
    assert torch.equal(unskew(s), x)
    for shape in [(1, 1, 1, 1), (1, 2, 1, 6), (1, 2, 6, 1)]:
        y = torch.randn(shape)
        assert torch.equal(unskew(skew(y)), y)


def test_masked_conv_centre_tap_connects_colour_groups_in_order_and_gate_blocks_group_alike():
    a = MaskedConv2d(6, 3, 3, "A", 3).mask  # groups: in (0,0,1,1,2,2), out (0,1,2); stored rows: above, centre
    b = MaskedConv2d(6, 3, 3, "B", 3).mask
    assert a.shape == (3, 6, 2, 3)  # the rows below the centre are not stored
    assert torch.equal(a[:, :, 1, 1], torch.tensor([[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0.]]))
    assert torch.equal(b[:, :, 1, 1], torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1.]]))
    for m in (a, b):
        assert m[:, :, 0].eq(1).all() and m[:, :, 1, 0].eq(1).all()  # row above, left: open
        assert m[:, :, 1, 2].eq(0).all()  # right: closed
    gates = MaskedConv2d(6, 4 * 3, 1, "B", 3, blocks=4)  # o, f, i, g of 3 units: unit j in group j in every gate
    assert gates.out_groups.tolist() == [0, 1, 2] * 4


# -- receptive fields ---------------------------------------------------------------------------------

@pytest.mark.parametrize("info", [ImageInfo(1, 4, 10, 3), ImageInfo(3, 3, 7, 2)], ids=["grey", "rgb"])
def test_row_lstm_receptive_field_is_the_triangle(info):
    """With L Row LSTM layers (k = 3) after the 7x7 mask-A layer, output (h, w) sees row h-j (j >= 1) at
    columns w-j-L-3 .. w+j+2 and its own row at w-L-3 .. w-1: the far upper-left and upper-right
    pixels (outside the triangle) and the far left of its own row get exactly zero gradient."""
    model = build(RowLSTM, info, layers=2, **WIDE).double()
    L = 2

    def sees(h, w, h2, w2):
        j = h - h2
        return (w - L - 3 <= w2 <= w - 1) if j == 0 else (w - j - L - 3 <= w2 <= w + j + 2)

    exp = expected(info, sees)
    assert torch.equal(dependence(model.logits, info), exp)
    earlier = torch.ones(info.dims, info.dims, dtype=torch.bool).tril(-1)
    assert (earlier & ~exp).any(), "the image is too small to show the pixels the triangle misses"


@pytest.mark.parametrize("info", [ImageInfo(1, 5, 5, 3), ImageInfo(3, 4, 4, 2)], ids=["grey", "rgb"])
def test_diagonal_bilstm_has_no_blind_spot(info):
    """Every earlier sub-pixel has a non-zero gradient (one bidirectional layer suffices)."""
    model = build(DiagonalBiLSTM, info, **WIDE).double()
    exp = expected(info, lambda h, w, h2, w2: True)
    assert torch.equal(dependence(model.logits, info), exp)


def test_the_papers_backward_lstm_misses_the_last_pixel_of_the_row_above():
    """Without the pixels in the backward direction's input (the paper's layer), no feature at the end
    of row h-1 contains that pixel, so (h, w) sees it only through the 7x7 first layer: not for w < W-4.
    Every other earlier pixel is seen."""
    info = ImageInfo(1, 4, 7, 3)
    model = build(DiagonalBiLSTM, info, backward_pixels=False, **WIDE).double()
    exp = expected(info, lambda h, w, h2, w2: not (h2 == h - 1 and w2 == info.width - 1 and w < info.width - 4))
    assert torch.equal(dependence(model.logits, info), exp)


def test_forward_diagonal_lstm_alone_misses_the_upper_right():
    """Without the shifted right-to-left LSTM the output at (h, w) sees only rows above at columns
    <= w+3 (the 7x7 first layer's reach) and its own row left of w: the blind spot the
    backward direction removes."""
    info = ImageInfo(1, 5, 6, 3)
    model = build(DiagonalBiLSTM, info, bidirectional=False, **WIDE).double()
    exp = expected(info, lambda h, w, h2, w2: h2 == h or w2 <= w + 3)
    assert torch.equal(dependence(model.logits, info), exp)
    assert not exp[position_index(info, 4, 0)][position_index(info, 0, 5)]


def position_index(info, h, w, c=0):
    return (h * info.width + w) * info.channels + c


# -- cached steps --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,overrides", [(RowLSTM, {"layers": 2}), (DiagonalBiLSTM, {"layers": 2}),
                                           (RowLSTM, {"layers": 1, "kernel": 5})],
                         ids=["row_lstm", "diagonal_bilstm", "row_lstm-k5"])
@pytest.mark.parametrize("info", [ImageInfo(3, 3, 4, 4), ImageInfo(1, 4, 3, 5)], ids=["rgb", "grey"])
def test_cached_step_equals_the_teacher_forced_logits_and_reads_nothing_later(cls, overrides, info):
    """Step t's logits equal the full network's at t although every later sub-pixel of the canvas is
    fresh noise at each step (the cache may hold only what came before t)."""
    model = build(cls, info, **overrides).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, info.num_values, (3, *info.shape), generator=g)
    full = model.logits(F.one_hot(x, info.num_values).double())  # (3, C, H, W, K)
    raster = torch.arange(info.dims).view(info.height, info.width, info.channels).permute(2, 0, 1)  # (C, H, W)
    cache = model.init_cache(3)
    with torch.no_grad():
        for t in range(info.dims):
            noise = torch.randint(0, info.num_values, x.shape, generator=g)
            canvas = torch.where(raster < t, x, noise)
            logits, cache = model.step(cache, t, canvas)  # (3, K)
            c, h, w = position(t, info)
            torch.testing.assert_close(logits, full[:, c, h, w], rtol=0, atol=1e-10)


# -- multi-scale ---------------------------------------------------------------------------------------

CELLS = ["row_lstm", "diagonal_bilstm"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("info", [ImageInfo(1, 2, 4, 2), ImageInfo(1, 2, 2, 3), ImageInfo(3, 2, 2, 2)],
                         ids=["grey-2x4-K2", "grey-2x2-K3", "rgb-2x2-K2"])
def test_multiscale_probabilities_sum_to_one_over_every_image(cell, info):
    model = build(MultiscalePixelRNN, info, cell=cell).double().eval()
    every = torch.tensor(list(itertools.product(range(info.num_values), repeat=info.dims)))
    every = every.view(-1, info.height, info.width, info.channels).permute(0, 3, 1, 2)  # (N, C, H, W)
    with torch.no_grad():
        total = model.log_prob(every).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-10)


def test_multiscale_log_prob_is_small_image_plus_the_rest_each_once():
    info = ImageInfo(3, 4, 6, 5)
    model = build(MultiscalePixelRNN, info).double()
    x = torch.randint(0, 5, (4, *info.shape), generator=torch.Generator().manual_seed(0))
    small = model.small.log_prob(x[:, :, ::2, ::2])  # (4,) the small network's raster model of x_s
    logp = F.log_softmax(model.full.logits(F.one_hot(x, 5).double()), -1).gather(-1, x.unsqueeze(-1))[..., 0]
    rest = ~model.small_positions()
    assert int(rest.sum()) == info.dims - 3 * 2 * 3
    expected_lp = small + logp[:, rest].sum(1)
    torch.testing.assert_close(model.log_prob(x), expected_lp, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("info", [ImageInfo(1, 4, 4, 3), ImageInfo(3, 2, 4, 2)], ids=["grey", "rgb"])
def test_multiscale_is_causal_along_its_order_and_uses_the_small_image(cell, info):
    """d logit[t] / d input[s] == 0 exactly unless s comes before t in the order (x_s, then the rest);
    a pixel of the rest does depend on small-image pixels that come after it in raster order."""
    model = build(MultiscalePixelRNN, info, cell=cell, cond_features=8, **WIDE).double()
    seen = dependence(model.ordered_logits, info)  # (L, L) over raster indices
    rank = model.order().permute(1, 2, 0).reshape(-1)  # (L,) rank of each raster index
    assert sorted(rank.tolist()) == list(range(info.dims))
    before = rank.unsqueeze(1) > rank.unsqueeze(0)  # before[t, s]: s precedes t in the order
    assert not (seen & ~before).any(), "an output depends on itself or on a later sub-pixel"
    small = model.small_positions().permute(1, 2, 0).reshape(-1)  # (L,)
    raster = torch.arange(info.dims)
    later_small = small.unsqueeze(0) & (raster.unsqueeze(0) > raster.unsqueeze(1))  # [t, s]
    assert (seen & later_small)[~small].any(), "the conditional network ignores the small image"


@pytest.mark.parametrize("cell", CELLS)
def test_multiscale_cached_equals_naive_and_same_seed_same_samples(cell):
    info = ImageInfo(3, 4, 4, 4)
    model = build(MultiscalePixelRNN, info, cell=cell, layers=2)
    a = model.sample(5, generator=torch.Generator().manual_seed(7), precision=torch.float64)
    b = model.sample(5, generator=torch.Generator().manual_seed(7), precision=torch.float64, naive=True)
    c = model.sample(5, generator=torch.Generator().manual_seed(7), precision=torch.float64)
    d = model.sample(5, generator=torch.Generator().manual_seed(8), precision=torch.float64)
    assert torch.equal(a, b) and torch.equal(a, c) and not torch.equal(a, d)
    known = torch.zeros(info.shape, dtype=torch.bool)
    known[:, :2] = True
    known[:, 3, 3] = True
    e = model.complete(a, known, generator=torch.Generator().manual_seed(2), precision=torch.float64)
    f = model.complete(a, known, generator=torch.Generator().manual_seed(2), precision=torch.float64, naive=True)
    assert torch.equal(e, f) and torch.equal(e[:, known], a[:, known])


def test_multiscale_needs_sizes_divisible_by_the_factor():
    with pytest.raises(GenzooError, match="divisible by factor=2"):
        build(MultiscalePixelRNN, ImageInfo(1, 5, 4, 3))
    with pytest.raises(GenzooError, match="divisible by factor=3"):
        build(MultiscalePixelRNN, ImageInfo(1, 6, 4, 3), factor=3)
    assert build(MultiscalePixelRNN, ImageInfo(1, 6, 3, 3), factor=3).small.info.shape == (1, 2, 1)


# -- presets --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM, MultiscalePixelRNN])
def test_mnist_preset_is_the_papers_seven_layer_h16_model(cls):
    """Sec. 5.5: 7 layers, h = 16 on binarized MNIST; the residual stream has 2h = 32 features."""
    model = cls(make_config(cls.Config, {k: v for k, v in cls.presets["mnist"].items() if k not in TRAIN_KEYS}),
                ImageInfo(1, 28, 28, 2))
    nets = [model.net] if hasattr(model, "net") else [model.small.net, model.full.net]
    for net in nets:
        assert len(net.layers) == 7 and net.first.out_channels == 32
        assert net.first.kernel_size == (4, 7)  # the 7x7 mask-A conv keeps the rows up to its centre
        assert all(layer.hidden == 16 for layer in net.layers)
    assert cls.presets["mnist"]["batch_size"] == 16
