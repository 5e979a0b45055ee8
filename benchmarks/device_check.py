"""One check for a machine with a GPU: every model on CUDA, the paper-sized MNIST runs, bf16 against fp32.

    python benchmarks/device_check.py                                   # a CUDA machine: everything
    python benchmarks/device_check.py --minutes 10 --precision-steps 500
    python benchmarks/device_check.py --device cpu --smoke --out /tmp/check.json   # the same code, tiny

Three parts, each recorded in one JSON (``benchmarks/results/device_check.json`` by default):

1. ``models`` -- every registered model (or ``--models``) at its ``tiny`` preset on random data of
   the shape its tests use: a few training steps on the device, a few samples, and its test NLL when
   it has a likelihood. A failure is recorded with its one-line reason and makes the exit status 1.
2. ``mnist`` -- the paper-sized binarized-MNIST runs (PixelCNN, Gated PixelCNN and Diagonal BiLSTM
   at ``--preset mnist``; the VAE at ``mnist``) for ``--minutes`` each, then the test NLL in nats
   (VAE: the importance-sampled NLL with ``--k`` samples, Burda et al. 2015), beside the published
   figures (van den Oord et al. 2016, arXiv:1601.06759, Table 4; Burda et al., arXiv:1509.00519, Table 1).
3. ``precision`` -- PixelCNN (``mnist``) trained for ``--precision-steps`` in fp32 and in bf16 from the
   same seed: median step time and test NLL after the same number of steps (mixed precision must not
   cost likelihood).

Without a CUDA device ``--device cuda`` (the default) stops at once with one line. ``--smoke`` shrinks
every part (tiny presets, 8x8 binary random data, a few steps) so that the script's CPU path is tested.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_seconds, hardware, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import ImageDataset, ImageInfo, every_tenth_split, load_dataset  # noqa: E402
from genzoo.data.captions import CaptionedDataset  # noqa: E402
from genzoo.data.paired import TranslationDataset  # noqa: E402
from genzoo.errors import GenzooError  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.importance import importance_nll  # noqa: E402
from genzoo.metrics.likelihood import dataset_nll  # noqa: E402
from genzoo.models.base import LikelihoodModel  # noqa: E402
from genzoo.models.registry import available_models, resolve_configs  # noqa: E402
from genzoo.training.callbacks import OnStep  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

MNIST_RUNS = [("pixelcnn", "mnist"), ("gated_pixelcnn", "mnist"), ("diagonal_bilstm", "mnist"), ("vae", "mnist")]
PUBLISHED = {
    "pixelcnn": {"nll_nats": 81.30, "source": "van den Oord et al. 2016, arXiv:1601.06759, Table 4 (PixelCNN)"},
    "gated_pixelcnn": {"nll_nats": 81.30, "source": "Table 4 lists PixelCNN 81.30; the gated variant has no MNIST row"},
    "diagonal_bilstm": {"nll_nats": 79.20, "source": "van den Oord et al. 2016, Table 4 (Diagonal BiLSTM, 7 layers)"},
    "vae": {"nll_nats": 86.76, "source": "Burda, Grosse & Salakhutdinov 2015, arXiv:1509.00519, Table 1 (VAE, k=5000)"},
}
TINY_INFO = ImageInfo(channels=1, height=4, width=4, num_values=5)  # the shape the shared model tests use
TRANSLATING = ("pix2pix", "cyclegan")  # trained on (input, target) pairs
SMOKE_MNIST = ImageInfo(channels=1, height=8, width=8, num_values=2)


def random_data(info: ImageInfo, n: int = 40, seed: int = 0, paired: bool = False) -> ImageDataset:
    """Random images of ``info`` (as the shared model tests make them): with labels when it has classes,
    random captions when it has a caption vocabulary, a random target image each when ``paired``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.num_values, (n, *info.shape), generator=g).to(torch.uint8)
    labels = torch.arange(n) % info.num_classes if info.num_classes else None
    splits = every_tenth_split(n)
    if info.vocab and not info.tokens:  # captioned images (text2image): two captions of 1-4 words each
        caps = torch.randint(4, len(info.vocab), (2 * n, 4), generator=g)
        caps[torch.arange(4) >= torch.randint(1, 5, (2 * n, 1), generator=g)] = 0  # <pad> after the last word
        owner = torch.arange(n).repeat_interleave(2)
        return CaptionedDataset(
            spec="random", x=x, info=info, splits=splits, labels=labels, captions=caps, caption_image=owner
        )
    if paired:  # translation models: a random target image beside each input
        target = torch.randint(0, info.num_values, x.shape, generator=g).to(torch.uint8)
        return TranslationDataset(
            spec="random", x=x, info=info, splits=splits, labels=labels, target=target, target_splits=dict(splits)
        )
    return ImageDataset(spec="random", x=x, info=info, splits=splits, labels=labels)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(name, preset, data, device, run_dir, overrides, seed=0):
    """Train ``name`` at ``preset`` with trainer ``overrides``; returns (model, trainer, step seconds)."""
    cls = available_models()[name]
    model_cfg, cfg = resolve_configs(cls, TrainConfig, preset, overrides)
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    trainer = Trainer(model, data, cfg, run_dir, model_name=name, seed=seed, device=device, quiet=True)
    seconds: list[float] = []
    trainer.callbacks.insert(0, OnStep(lambda t: seconds.append(t.last_round_seconds)))
    sync(device)
    trainer.fit()
    sync(device)
    return trainer.model, trainer, seconds


def check_model(name: str, device: torch.device, steps: int, tmp: Path) -> dict:
    """A few steps at the tiny preset, a few samples, the test NLL when the model has one."""
    cls = available_models()[name]
    info = getattr(cls, "test_info", None) or TINY_INFO
    data = random_data(info, paired=name in TRANSLATING)
    t0 = time.perf_counter()
    try:
        keys = {"steps": str(steps), "sample_every": "0", "eval_every": "-1", "checkpoint_every": str(steps)}
        keys["batch_size"] = "4"
        model, trainer, seconds = train(name, "tiny", data, device, tmp / name, keys)
        out: dict = {"ok": True, "steps": trainer.step, "median_step_seconds": statistics.median(seconds)}
        if model.can_sample:
            model.eval()
            with torch.no_grad():
                extra = {"inputs": data.images("test")[:4].to(device)} if name in TRANSLATING else {}
                x = model.sample(4, generator=torch.Generator(device=device).manual_seed(0), **extra)
            out["sample_shape"] = list(x.shape)
        if isinstance(model, LikelihoodModel) and model.likelihood != "none":
            out["test_nll_nats"] = dataset_nll(model, data, "test")["nll_nats"]
    except (GenzooError, RuntimeError, ValueError, TypeError, NotImplementedError) as e:  # recorded, exit status 1
        out = {"ok": False, "error": one_line(e)}
    out["seconds"] = time.perf_counter() - t0
    return out


def mnist_run(name, preset, data, device, minutes, steps, k, is_images, tmp) -> dict:
    overrides = {"eval_every": "-1", "sample_every": "0", "checkpoint_every": "1000000"}
    if minutes:
        overrides.update(time_budget_s=str(minutes * 60), steps="100000000")
    else:
        overrides["steps"] = str(steps)
    t0, c0 = time.perf_counter(), cpu_seconds()
    model, trainer, seconds = train(name, preset, data, device, tmp / f"mnist_{name}", overrides)
    train_wall = time.perf_counter() - t0
    nll = dataset_nll(model, data, "test", batch_size=64)
    out = {
        "preset": preset,
        "steps": trainer.step,
        "epochs": trainer.batches / trainer.stream.per_epoch,
        "batch_size": trainer.cfg.batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "median_step_seconds": statistics.median(seconds),
        "train_wall_seconds": train_wall,
        "test": {k_: nll[k_] for k_ in ("n_images", "nll_nats", "bits_per_dim", "likelihood")},
        "published": PUBLISHED.get(name),
    }
    if hasattr(model, "log_weights"):
        out["test_importance"] = importance_nll(
            model, data, "test", k=k, k_iwae=min(50, k), max_images=is_images or None
        )
    out["cpu_seconds"] = cpu_seconds() - c0
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def precision_pair(name, preset, data, device, steps, tmp) -> dict:
    """fp32 and bf16 from the same seed for the same number of steps: step time and test NLL."""
    out = {"model": name, "preset": preset, "steps": steps}
    for precision in ("fp32", "bf16"):
        overrides = {
            "steps": str(steps),
            "precision": precision,
            "eval_every": "-1",
            "sample_every": "0",
            "checkpoint_every": "1000000",
        }
        model, _, seconds = train(name, preset, data, device, tmp / f"precision_{precision}", overrides)
        nll = dataset_nll(model, data, "test", batch_size=64)  # evaluated in fp32 either way
        out[precision] = {"median_step_seconds": statistics.median(seconds), "test_nll_nats": nll["nll_nats"]}
    out["bf16_speedup"] = out["fp32"]["median_step_seconds"] / out["bf16"]["median_step_seconds"]
    out["bf16_minus_fp32_nll_nats"] = out["bf16"]["test_nll_nats"] - out["fp32"]["test_nll_nats"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--smoke", action="store_true", help="tiny presets, random 8x8 binary data, a few steps")
    p.add_argument("--models", help="comma-separated models for part 1 (default: every registered model)")
    p.add_argument("--parts", default="models,mnist,precision", help="which of models, mnist, precision to run")
    p.add_argument("--steps", type=int, default=5, help="training steps of each model in part 1")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each MNIST run (part 2)")
    p.add_argument("--precision-steps", type=int, default=500, help="steps of each precision in part 3")
    p.add_argument("--k", type=int, default=5000, help="importance samples per image for the VAE's NLL")
    p.add_argument("--is-images", type=int, default=0, help="importance-sample the first N test images (0 = all)")
    p.add_argument("--mnist-models", default=",".join(n for n, _ in MNIST_RUNS), help="which MNIST runs (part 2)")
    p.add_argument("--mnist", default="binarized-mnist:../shared/data/binarized_mnist", help="data spec")
    p.add_argument("--out", type=Path, help="write the JSON here (default benchmarks/results/device_check.json)")
    args = p.parse_args(argv)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"device_check: --device {args.device}: no CUDA device here (torch {torch.__version__}, "
            "torch.cuda.is_available() is False); run it on a GPU machine, or --device cpu --smoke",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # the machine is shared
    parts = set(args.parts.split(","))
    result: dict = {"command": " ".join(["python", "benchmarks/device_check.py", *(argv or sys.argv[1:])])}
    result["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result["smoke"] = args.smoke
    failed = False
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp_name:
        tmp = Path(tmp_name)
        if "models" in parts:
            names = args.models.split(",") if args.models else sorted(available_models())
            unknown = [n for n in names if n not in available_models()]
            if unknown:
                print(f"device_check: --models: unknown model {unknown[0]!r}", file=sys.stderr)
                return 2
            result["models"] = {}
            for name in names:
                result["models"][name] = check_model(name, device, args.steps, tmp)
                status = "ok" if result["models"][name]["ok"] else result["models"][name]["error"]
                print(f"{name}: {status}", file=sys.stderr)
            failed = not all(r["ok"] for r in result["models"].values())
        if args.smoke:
            mnist, preset, steps = random_data(SMOKE_MNIST, n=40), "tiny", 2
            minutes, prec_steps, k = 0.0, 2, 4
        else:
            mnist, preset, steps = load_dataset(args.mnist), "mnist", 0
            minutes, prec_steps, k = args.minutes, args.precision_steps, args.k
        if "mnist" in parts:
            result["mnist"] = {"data": "random 8x8 binary (smoke)" if args.smoke else args.mnist, "runs": {}}
            for name, paper_preset in MNIST_RUNS:
                if name not in args.mnist_models.split(","):
                    continue
                run_preset = preset if args.smoke else paper_preset
                res = mnist_run(name, run_preset, mnist, device, minutes, steps, k, args.is_images, tmp)
                result["mnist"]["runs"][name] = res
                print(
                    f"mnist {name}: test {res['test']['nll_nats']:.2f} nats after {res['steps']} steps", file=sys.stderr
                )
        if "precision" in parts:
            result["precision"] = precision_pair("pixelcnn", preset, mnist, device, prec_steps, tmp)
    result["peak_rss_mb"] = peak_rss_mb()
    if device.type == "cuda":
        result["peak_cuda_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    if args.out:
        write_json(args.out, {"benchmark": "device_check", "hardware": hardware(), **result})
        path = args.out
    else:
        path = write_result("device_check_smoke" if args.smoke else "device_check", result)
    print(f"device_check: {'some models failed; ' if failed else ''}wrote {path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
