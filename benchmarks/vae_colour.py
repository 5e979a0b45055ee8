"""Colour in the lecture VAE's pictures: reconstruction RGB error of the decoded picture against the mean image.

    python benchmarks/vae_colour.py --steps 200

Trains ``vae --preset lecture`` on the Pokémon training sprites for ``--steps`` (one thread), then, on
the 80 test sprites, compares in RGB (units of [0, 1], mean over pixels and channels) each sprite with:
its reconstruction as pictured (``decode(encode(x))``: the palette colour nearest the expected RGB under
the decoder's categorical), the decoder's expected RGB itself, the most likely palette index per pixel
(what pictures showed before), and the mean training image (the baseline a reconstruction must beat).
Writes a reconstruction figure, a sample grid, a completion figure and a traversal of code dimensions 0 and 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_seconds, write_result  # noqa: E402
from genzoo.cli import cmd_complete, cmd_reconstruct, cmd_sample, cmd_traverse  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.continuous import to_unit  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402


def rgb(x: torch.Tensor, info) -> torch.Tensor:
    return to_unit(x, info).double()  # (B, 3, H, W) in [0, 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="pokemon_vae_lecture_colour")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("pokemon")
    cls = get_model_class("vae")
    overrides = {"steps": str(args.steps), "sample_every": "0", "eval_every": "-1", "checkpoint_every": "100000"}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, "lecture", overrides)
    torch.manual_seed(args.seed)
    model = cls(model_cfg, data.info)
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        trainer = Trainer(model, data, train_cfg, run, model_name="vae", seed=args.seed, quiet=True)
        run.mkdir(parents=True)
        write_json(run / RUN_JSON, run_description("vae", model, train_cfg, data, args.seed))
        c0, w0 = cpu_seconds(), time.perf_counter()
        trainer.fit()
        train_cpu, train_wall = cpu_seconds() - c0, time.perf_counter() - w0
        model.eval()
        x = data.images("test")
        truth = rgb(x, data.info)
        mean_image = rgb(data.images("train"), data.info).mean(0, keepdim=True)  # (1, 3, H, W)
        with torch.no_grad():
            params = model.decoder_params(model.encode(x))
            pictured = rgb(model.decode(model.encode(x)), data.info)
            expected = model.head.mean_unit(params).double()
            mode = rgb(model.head.mode(params), data.info)

        def mse(y: torch.Tensor) -> float:
            return float(((y - truth) ** 2).mean())

        def mae(y: torch.Tensor) -> float:
            return float((y - truth).abs().mean())

        rows = {name: {"mse": mse(y), "mae": mae(y)} for name, y in
                (("reconstruction_as_pictured", pictured), ("expected_rgb", expected),
                 ("most_likely_index", mode), ("mean_training_image", mean_image.expand_as(truth)))}
        colour = {name: float(np.asarray(y.std(1).mean())) for name, y in
                  (("data", truth), ("pictured", pictured), ("most_likely_index", mode))}
        figures = [f"{args.name}_reconstructions.png", f"{args.name}_samples.png", f"{args.name}_completion.png",
                   f"{args.name}_traversal.png"]
        cmd_reconstruct(run, RESULTS / figures[0], images="test:0-15", device="cpu")
        cmd_sample(run, RESULTS / figures[1], n=64, seed=0, device="cpu")
        cmd_complete(run, RESULTS / figures[2], mask="bottom-half", images="test:0-7", samples=4, device="cpu")
        cmd_traverse(run, RESULTS / figures[3], dims=[0, 1], device="cpu")
    result = {
        "command": " ".join(["python"] + sys.argv),
        "seed": args.seed,
        "budget": {"steps": args.steps, "train_cpu_seconds": train_cpu, "train_wall_seconds": train_wall,
                   "threads": 1},
        "model": {"name": "vae", "preset": "lecture", **vars(model_cfg)},
        "pictures": "decode = the palette colour nearest the expected RGB under the decoder's categorical",
        "test_rgb_error": rows,
        "mean_channel_spread": colour,
        "figures": figures,
    }
    print(write_result(args.name, result))
    print(rows)


if __name__ == "__main__":
    main()
