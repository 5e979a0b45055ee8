"""What genzoo's trainer costs beyond the updates it makes: CPU time of ``Trainer.fit`` against a bare loop.

    python benchmarks/trainer_overhead.py                 # gan --preset ring and pixelcnn --preset small

For each case the same model class, preset, batch size and optimiser settings are trained twice in this
one process, alternately, on one thread: by ``genzoo.training.trainer.Trainer`` with its progress bar,
metrics log, the model's diagnostics and checkpoints every ``checkpoint_every`` steps (periodic sample
grids and held-out evaluation off: they are extra work, not overhead on the updates), and by a bare
PyTorch loop of the same updates (random batches from the training tensor, ``zero_grad``, the loss
written out directly, ``backward``, ``step``; no logging, no checks). CPU time is
``time.process_time`` of each side; the ratio is genzoo / bare (the target: at most 1.15). Each side
runs ``--repeats`` times, interleaved, and the medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.trainer import Trainer, make_optimizer  # noqa: E402

CASES = {
    "gan_ring": {"model": "gan", "preset": "ring", "data": "mixture:ring8", "steps": 1000},
    "pixelcnn_small": {"model": "pixelcnn", "preset": "small", "data": "pokemon", "steps": 30},
}


def build(case: dict, seed: int):
    data = load_dataset(case["data"])
    cls = get_model_class(case["model"])
    overrides = {"steps": str(case["steps"]), "sample_every": "0", "eval_every": "-1"}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, case["preset"], overrides)
    torch.manual_seed(seed)
    return data, cls(model_cfg, data.info), train_cfg


def genzoo_side(case: dict, seed: int) -> float:
    data, model, cfg = build(case, seed)
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(model, data, cfg, Path(d) / "run", model_name=case["model"], seed=seed)
        c0 = time.process_time()
        trainer.fit()
        return time.process_time() - c0


def bare_side(case: dict, seed: int) -> float:
    data, model, cfg = build(case, seed)
    x_all = data.images("train")
    n, bs = len(x_all), min(cfg.batch_size, len(x_all))
    opts = {p: make_optimizer(model.player_parameters(p), cfg, model.optimizer_overrides(p)) for p in model.schedule}
    model.train()
    c0 = time.process_time()
    for _ in range(case["steps"]):
        for player, k in model.schedule.items():
            for _ in range(k):
                x = x_all[torch.randint(n, (bs,))]
                opt = opts[player]
                opt.zero_grad(set_to_none=True)
                if case["model"] == "gan":  # the non-saturating GAN of the ring preset, written out
                    real, z = model.real_input(x), torch.randn(bs, model.latent_dim)
                    if player == "discriminator":
                        with torch.no_grad():
                            fake = model.generator(z)
                        loss = F.softplus(-model.discriminator(real)).mean() + F.softplus(model.discriminator(fake)).mean()
                    else:
                        loss = F.softplus(-model.discriminator(model.generator(z))).mean()
                else:
                    loss = -model.log_prob(x).mean()
                loss.backward()
                opt.step()
    return time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="trainer_overhead")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.cases:
        case = CASES[name]
        bare, ours = [], []
        w0 = time.perf_counter()
        for r in range(args.repeats):
            bare.append(bare_side(case, args.seed))
            ours.append(genzoo_side(case, args.seed))
            print(f"{name} repeat {r}: bare {bare[-1]:.2f} CPU-s, genzoo {ours[-1]:.2f} CPU-s", flush=True)
            row = {"case": name, **case, "bare_cpu_s": bare, "genzoo_cpu_s": ours, "repeats_done": r + 1,
                   "ratio": statistics.median(ours) / statistics.median(bare), "wall_s": time.perf_counter() - w0}
            # written after every repeat, so a run cut short still leaves what it measured
            result = {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "threads": 1,
                      "target_ratio": 1.15, "rows": [*rows, row]}
            write_result(args.name, result)
        print(f"{name}: genzoo / bare = {row['ratio']:.3f}", flush=True)
        rows.append(row)


if __name__ == "__main__":
    main()
