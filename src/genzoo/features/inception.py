"""Inception-v3 as used for FID: the 2048-d pool features of the "pt_inception-2015-12-05" weights.

Network: Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016, "Rethinking the Inception Architecture for
Computer Vision", arXiv:1512.00567 (Fig. 5-7, Table 1). FID: Heusel et al. 2017, arXiv:1706.08500,
which embeds images with the TensorFlow graph "inception-2015-12-05" and takes the 2048-d output of
the last average pool. pytorch-fid (mseitzer/pytorch-fid) ported those TensorFlow weights to a
PyTorch state dict, ``pt_inception-2015-12-05-6726825d.pth``; :func:`load_inception` reads that file
(or the same tensors as .safetensors), so features agree with the numbers papers report.

The layout is torchvision's ``Inception3`` without the auxiliary head, with a 1008-way ``fc`` (the
TensorFlow graph's 1008 classes), and the three differences of the TensorFlow graph:

* the 3x3 average pools inside the A, C and E blocks ignore the zero padding
  (``count_include_pad=False``);
* the last E block (``Mixed_7c``) pools its fourth branch with a 3x3 MAX pool, not an average.

Every conv is ``conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU``; the module names (``Conv2d_1a_3x3``,
``Mixed_5b.branch5x5_1.conv.weight``, ``...bn.running_var``, ``fc.weight``) are the state-dict keys of
the weights file. Input: RGB in [0, 1], (N, 3, H, W); it is resized bilinearly to 299x299
(``align_corners=False``, no antialiasing, as pytorch-fid does) and mapped to [-1, 1]. About 5.7
GFLOPs per image.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.errors import GenzooError

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256_PREFIX = "6726825d"  # torch-hub convention: the name carries the sha256 prefix
FEATURE_DIM = 2048
NUM_LOGITS = 1008
INPUT_SIZE = 299


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU; state keys ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool over the valid pixels only (TensorFlow's 'SAME' average)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (Fig. 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 -> 64+64+96+pool_features."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)  # (N, 64, H, W)
        b = self.branch5x5_2(self.branch5x5_1(x))  # (N, 64, H, W)
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # (N, 96, H, W)
        d = self.branch_pool(_avg3(x))  # (N, pool_features, H, W)
        return torch.cat([a, b, c, d], 1)


class BlockB(nn.Module):
    """35 -> 17 grid reduction (Fig. 10): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 -> 384+96+cin."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)  # (N, 384, H', W')
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # (N, 96, H', W')
        c = F.max_pool2d(x, 3, stride=2)  # (N, cin, H', W')
        return torch.cat([a, b, c], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convs (Fig. 6), c7 = channels of the inner 1x7/7x1 convs."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)  # (N, 192, H, W)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))  # (N, 192, H, W)
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)  # (N, c7 -> 192, H, W)
        d = self.branch_pool(_avg3(x))  # (N, 192, H, W)
        return torch.cat([a, b, c, d], 1)  # (N, 768, H, W)


class BlockD(nn.Module):
    """17 -> 8 grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 320+192+cin."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))  # (N, 320, H', W')
        b = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = layer(b)  # (N, 192, ., .)
        c = F.max_pool2d(x, 3, stride=2)  # (N, cin, H', W')
        return torch.cat([a, b, c], 1)


class BlockE(nn.Module):
    """8x8 block with expanded 1x3/3x1 outputs (Fig. 7) -> 320+768+768+192 = 2048 channels.

    ``pool="avg"`` (Mixed_7b, padding ignored) or ``"max"`` (Mixed_7c in the FID graph).
    """

    def __init__(self, cin: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)  # (N, 320, H, W)
        b = self.branch3x3_1(x)  # (N, 384, H, W)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)  # (N, 768, H, W)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))  # (N, 384, H, W)
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)  # (N, 768, H, W)
        pooled = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        d = self.branch_pool(pooled)  # (N, 192, H, W)
        return torch.cat([a, b, c, d], 1)  # (N, 2048, H, W)


class FIDInceptionV3(nn.Module):
    """Inception-v3 with the FID graph's blocks; ``forward`` gives the 2048-d pool features."""

    # set by load_inception: the weights file and the first 16 hex digits of its sha256
    weights_path: str
    weights_hash: str

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, c7=128)
        self.Mixed_6c = BlockC(768, c7=160)
        self.Mixed_6d = BlockC(768, c7=160)
        self.Mixed_6e = BlockC(768, c7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="avg")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)  # only to hold the file's weights; unused for FID

    @staticmethod
    def prepare(images_unit: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (N, 3, H, W) -> (N, 3, 299, 299) in [-1, 1], the network's input."""
        x = F.interpolate(images_unit, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared input (N, 3, 299, 299) -> last feature map (N, 2048, 8, 8)."""
        x = self.Conv2d_1a_3x3(x)  # (N, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (N, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (N, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (N, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7a(x)  # (N, 1280, 8, 8)
        return self.Mixed_7c(self.Mixed_7b(x))  # (N, 2048, 8, 8)

    def forward(self, images_unit: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (N, 3, H, W) -> pool features (N, 2048)."""
        return self.trunk(self.prepare(images_unit)).mean(dim=(2, 3))  # (N, 2048)

    def logits(self, images_unit: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> the 1008 class logits (Inception Score uses their softmax)."""
        return self.fc(self.forward(images_unit))  # (N, 1008)


def file_sha256(path: Path) -> str:
    """Full sha256 hex digest of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_state(path: Path) -> dict:
    """The raw tensors of a .pth/.pt (weights-only unpickler) or .safetensors file."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise GenzooError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # neither torch.save zip nor legacy pickle
        raise GenzooError(f"{path}: not a readable weights file (not a torch.save archive)")
    try:
        # weights_only: only tensors and plain containers are rebuilt; any other pickled
        # object (code) makes torch refuse the whole file before running anything.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        code = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if code:
            raise GenzooError(
                f"{path}: refused: the file holds pickled objects other than tensors ({code[0]})"
            ) from None
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln), "corrupt pickle")
        raise GenzooError(f"{path}: not a readable weights file ({why})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise GenzooError(f"{path}: not a readable weights file ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise GenzooError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return state


def check_state(state: dict, model: nn.Module, source: str) -> dict:
    """Every key the model needs is present with its shape, nothing extra, all finite.

    BatchNorm's ``num_batches_tracked`` counters are optional (files saved by old PyTorch lack
    them and inference never reads them); missing ones are taken from the model. Raises a one-line
    :class:`GenzooError` naming ``source`` and the first bad key.
    """
    expected = model.state_dict()
    full = {}
    for key, ref in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                full[key] = ref
                continue
            raise GenzooError(f"{source}: missing key {key!r} (expected shape {tuple(ref.shape)})")
        t = state[key]
        if not isinstance(t, torch.Tensor):
            raise GenzooError(f"{source}: key {key!r} holds a {type(t).__name__}, not a tensor")
        if tuple(t.shape) != tuple(ref.shape):
            raise GenzooError(f"{source}: key {key!r} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise GenzooError(f"{source}: key {key!r} holds NaN or infinity")
        full[key] = t
    extra = [k for k in state if k not in expected]
    if extra:
        raise GenzooError(
            f"{source}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all); "
            "is this the pytorch-fid Inception file?"
        )
    return full


def load_inception(path, device="cpu") -> FIDInceptionV3:
    """The FID Inception network with weights from ``path`` (.pth/.pt or .safetensors), in eval mode.

    The file is never unpickled beyond tensors; every key and shape is checked. The returned
    module carries ``weights_path`` and ``weights_hash`` (first 16 hex digits of the file's sha256).
    A file named like pytorch-fid's (``pt_inception-2015-12-05-<hash>.pth``) must match its hash.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise GenzooError(f"{path}: Inception weights not found (pytorch-fid's file is {FID_WEIGHTS_NAME})")
    digest = file_sha256(path)
    if path.name == FID_WEIGHTS_NAME and not digest.startswith(FID_WEIGHTS_SHA256_PREFIX):
        raise GenzooError(
            f"{path}: sha256 starts {digest[:8]}, not {FID_WEIGHTS_SHA256_PREFIX} as the name "
            "promises; the download is corrupt or a different file"
        )
    model = FIDInceptionV3()
    state = check_state(_read_state(path), model, str(path))
    model.load_state_dict(state, strict=True)
    model.weights_path = str(path)
    model.weights_hash = digest[:16]
    return model.to(device).eval().requires_grad_(False)
