"""Train a likelihood model for a budget, then measure its exact test NLL.

    python benchmarks/likelihood.py --model pixelrnn --preset lecture --steps 1500          # Pokémon
    python benchmarks/likelihood.py --model gated_pixelcnn --preset mnist --minutes 30 \\
        --data binarized-mnist:../shared/data/binarized_mnist

Records test NLL (nats/image) and bits/dim, training throughput (pixels/s over optimiser time,
and from the median step), peak memory, the learning curve, and writes a sample grid and a
bottom-half completion figure. On the Pokémon set it adds two reference points on the same
split: the uniform model over the palette and independent per-position colour frequencies.
For models whose likelihood is a bound (VAEs) it adds the IWAE bound and the importance-sampled
NLL (``--k``, default 5000, Burda et al. 2015) and, for latent models, a traversal figure.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402
from genzoo.cli import cmd_complete, cmd_sample  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.likelihood import dataset_nll  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.callbacks import OnStep  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402

# Published test NLLs in nats on binarized MNIST (van den Oord et al. 2016, Table 4).
BURDA_TABLE = {"source": "Burda, Grosse & Salakhutdinov 2015, arXiv:1509.00519, Table 1 (k=5000 IS estimate)",
               "VAE, 1 stochastic layer": 86.76, "VAE, 2 stochastic layers": 85.33,
               "IWAE k=50, 2 stochastic layers": 82.90}
PIXELRNN_TABLE4 = {"PixelCNN": 81.30, "Row LSTM": 80.54, "Diagonal BiLSTM (1 layer, h=32)": 80.75,
                   "Diagonal BiLSTM (7 layers, h=16)": 79.20, "DRAW": 80.97}


def independent_pixels_bpd(data) -> float:
    """Test bits/dim of one categorical per position, fitted on train (add-one smoothed)."""
    k = data.info.num_values
    train = data.images("train").flatten(1)  # (N, D)
    counts = torch.ones(train.shape[1], k)
    counts.scatter_add_(1, train.t(), torch.ones_like(train.t(), dtype=torch.float))
    logp = (counts / counts.sum(1, keepdim=True)).log()  # (D, K)
    test = data.images("test").flatten(1)
    return -logp.gather(1, test.t()).sum(0).mean().item() / (data.info.dims * math.log(2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pixelrnn")
    p.add_argument("--preset", default="lecture")
    p.add_argument("--data", default="pokemon")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps (the budget)")
    p.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget instead of --steps")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--name", help="result name (default DATA_MODEL_PRESET)")
    p.add_argument("--run", type=Path, help="run folder (default runs/bench_NAME)")
    p.add_argument("--k", type=int, default=5000, help="importance samples per image (bound models)")
    p.add_argument("--k-iwae", type=int, default=50)
    p.add_argument("--is-images", type=int, default=0, help="importance-sample only the first N test images (0 = all)")
    args = p.parse_args()

    data_tag = args.data.split(":")[0].replace("-", "_")
    name = args.name or f"{data_tag}_{args.model}_{args.preset}"
    run_dir = args.run or Path("runs") / f"bench_{name}"
    if run_dir.exists():
        raise SystemExit(f"{run_dir} exists; remove it or pass --run")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_dataset(args.data)
    cls = get_model_class(args.model)
    budget = ({"time_budget_s": str(args.minutes * 60), "steps": "100000000"} if args.minutes
              else {"steps": str(args.steps)})
    sets = dict(s.split("=", 1) for s in args.sets)
    overrides = {**budget, "eval_every": "-1", "checkpoint_every": "200", "sample_every": "0", **sets}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
    model = cls(model_cfg, data.info)
    trainer = Trainer(model, data, train_cfg, run_dir, model_name=args.model, seed=args.seed,
                      device=torch.device(args.device))
    run_dir.mkdir(parents=True)
    write_json(run_dir / RUN_JSON, run_description(args.model, model, train_cfg, data, args.seed))
    round_seconds: list[float] = []
    trainer.callbacks.append(OnStep(lambda t: round_seconds.append(t.last_round_seconds)))
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    test = dataset_nll(model, data, "test", batch_size=64)
    importance = None
    if hasattr(model, "log_weights"):
        from genzoo.metrics.importance import importance_nll

        t_is = time.perf_counter()
        importance = importance_nll(model, data, "test", k=args.k, k_iwae=args.k_iwae, seed=args.seed,
                                    max_images=args.is_images or None, progress=True)
        importance["seconds"] = time.perf_counter() - t_is
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    cmd_sample(run_dir, RESULTS / f"{name}_samples.png", n=64, seed=0, device=args.device)
    cmd_complete(run_dir, RESULTS / f"{name}_completion.png", mask="bottom-half", images="test:0-7", samples=4,
                 device=args.device)
    result = {
        "command": " ".join(["python"] + sys.argv),
        "seed": args.seed,
        "data": args.data,
        "budget": {"wall_minutes": args.minutes or None, "steps_asked": None if args.minutes else args.steps,
                   "steps": trainer.step, "epochs": trainer.batches / trainer.stream.per_epoch,
                   "batch_size": train_cfg.batch_size},
        "model": {"name": args.model, "preset": args.preset, **vars(model_cfg),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "train_config": vars(train_cfg),
        "test": {"split": "test", "n_images": test["n_images"], "nll_nats": test["nll_nats"],
                 "bits_per_dim": test["bits_per_dim"], "likelihood": test["likelihood"]},
        "last_train_batch_bits_per_dim": rows[-1].get("bits_per_dim"),
        "throughput_pixels_per_s": rows[-1]["pixels_per_s"],
        "median_step_seconds": statistics.median(round_seconds),
        "median_throughput_pixels_per_s": train_cfg.batch_size * data.info.dims / statistics.median(round_seconds),
        "train_seconds": trainer.train_seconds,
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "curve": [{k: r[k] for k in ("step", "epoch", "loss", "bits_per_dim") if k in r} for r in rows],
        "figures": [f"{name}_samples.png", f"{name}_completion.png"],
    }
    if importance is not None:
        result["test_importance"] = importance
    if hasattr(model, "latent_dim") and model.latent_dim >= 2:
        from genzoo.cli import cmd_traverse

        cmd_traverse(run_dir, RESULTS / f"{name}_traversal.png", dims=[0, 1], steps=9, device=args.device)
        result["figures"].append(f"{name}_traversal.png")
    if args.data == "pokemon":
        result["baselines_test_bits_per_dim"] = {"uniform_167": math.log2(data.info.num_values),
                                                 "independent_pixels": independent_pixels_bpd(data)}
    if args.data.startswith("binarized-mnist"):
        result["published_test_nll_nats"] = (BURDA_TABLE if importance is not None else
                                             {"source": "van den Oord et al. 2016, arXiv:1601.06759, Table 4",
                                              **PIXELRNN_TABLE4})
    path = write_result(name, result)
    print(f"{name}: test {test['nll_nats']:.2f} nats/image, {test['bits_per_dim']:.4f} bits/dim after "
          f"{trainer.step} steps; {result['median_throughput_pixels_per_s']:,.0f} px/s (median step); "
          f"peak {result['peak_rss_mb']:.0f} MB -> {path}")


if __name__ == "__main__":
    main()
