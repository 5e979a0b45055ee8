"""The ``genzoo`` command. Each subcommand is a typed function; argparse only maps flags to it.

Bad input of any kind is a :class:`GenzooError`: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from genzoo._version import __version__
from genzoo.data import dataset_kinds, load_dataset
from genzoo.errors import GenzooError
from genzoo.evaluation.callbacks import HeldOutLikelihood
from genzoo.evaluation.probe import linear_probe
from genzoo.evaluation.report import build_report
from genzoo.evaluation.sections import evaluate
from genzoo.io import write_json
from genzoo.models.base import LatentModel
from genzoo.models.registry import available_models, get_model_class, resolve_configs
from genzoo.sampling.latent import interpolate, traversal_codes
from genzoo.sampling.masks import make_mask
from genzoo.training.checkpoint import load_checkpoint
from genzoo.training.config import TrainConfig
from genzoo.training.run import (
    CHECKPOINT,
    RUN_JSON,
    build_from_state,
    load_run,
    make_config,
    reload_data,
    resolve_device,
    run_description,
)
from genzoo.training.trainer import Trainer, TrainingInterrupted
from genzoo.viz import completion_figure, grid, labelled_grid, mask_rgb, sample_picture, save_png

# ----------------------------------------------------------------------------------------
# commands

HELD_OUT_IMAGES = 2000  # test NLL during training: the split's first 2,000 images (`genzoo eval`: all)


def cmd_models() -> None:
    for name, cls in available_models().items():
        kind = getattr(cls, "likelihood", None)
        lik = {"exact": "exact log-likelihood", "bound": "likelihood bound"}.get(kind, "no likelihood")
        print(f"{name:<20} {cls.family:<15} {lik:<21} presets: {', '.join(cls.presets) or '-'}")
        print(f"{'':<20} {cls.paper}")


def cmd_datasets() -> None:
    for kind in dataset_kinds():
        print(f"{kind.syntax:<24} {kind.help}")


def parse_sets(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise GenzooError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def cmd_train(model: str, data: str | None, out: Path, preset: str | None = None, sets: list[str] = (),
              steps: int | None = None, epochs: float | None = None, seed: int = 0, device: str = "auto",
              resume: bool = False, size: int | None = None, colors: int | None = None, quiet: bool = False) -> dict:
    """Train MODEL on DATA into the run folder OUT (or continue it with ``resume``)."""

    out = Path(out)
    dev = resolve_device(device)
    overrides = parse_sets(list(sets))
    if steps is not None:
        overrides["steps"], overrides["epochs"] = str(steps), "0"
    if epochs is not None:
        overrides["epochs"], overrides["steps"] = str(epochs), "0"
    cls = get_model_class(model)
    if resume:
        state = load_checkpoint(out / CHECKPOINT)
        if state["model_name"] != model:
            raise GenzooError(f"{out}: holds a {state['model_name']!r} run, not {model!r}")
        if data is not None and data != state["data"]["spec"]:
            raise GenzooError(f"{out}: was trained on {state['data']['spec']!r}, not {data!r}")
        unknown = set(overrides) - {"steps", "epochs"}
        if preset or unknown:
            raise GenzooError("--resume continues with the run's saved settings; only --steps/--epochs may change")
        cfg = make_config(TrainConfig, state["train_config"], overrides, what="key")
        net = build_from_state(state, str(out / CHECKPOINT))
        dataset = reload_data(state["data"])
        seed = int(state["seed"])
    else:
        if (out / CHECKPOINT).exists():
            raise GenzooError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
        data = data or "pokemon"
        dataset = load_dataset(data, size=size, colors=colors)
        model_cfg, cfg = resolve_configs(cls, TrainConfig, preset, overrides)
        torch.manual_seed(seed)  # initial weights belong to the seeded run
        net = cls(model_cfg, dataset.info)
    torch.manual_seed(seed)
    callbacks = [HeldOutLikelihood("test", max_images=HELD_OUT_IMAGES)] if HeldOutLikelihood.applies(net) else []
    trainer = Trainer(net, dataset, cfg, out, model_name=model, seed=seed, device=dev, quiet=quiet,
                      callbacks=callbacks)
    if resume:
        trainer.restore(state)
        if not quiet:
            print(f"resuming {out} at step {trainer.step} of {trainer.total_steps()}", file=sys.stderr)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RUN_JSON, run_description(model, net, cfg, dataset, seed))
        if not quiet:
            n_params = sum(p.numel() for p in net.parameters())
            print(f"training {model} ({n_params:,} parameters) on {data}: {dataset.size('train')} train images "
                  f"{dataset.info.shape}, {dataset.info.num_values} values; {trainer.total_steps()} steps "
                  f"on {dev}", file=sys.stderr)
    last = trainer.fit()
    if not quiet:
        shown = {k: round(v, 4) for k, v in last.items() if "bits_per_dim" in k or "nll" in k
                 or k.endswith(("/loss", "/d_real", "/d_fake", "/sample_spread", "recon", "accuracy"))}
        print(f"done: step {trainer.step}, {shown}; run folder {out}", file=sys.stderr)
    return last


def cmd_sample(run: Path, n: int, out: Path, seed: int = 0, temperature: float = 1.0, device: str = "auto",
               condition: int | None = None, naive: bool = False, ncols: int | None = None,
               precision: str = "float64") -> None:
    _check_out_png(out)
    if n < 1:
        raise GenzooError(f"-n must be >= 1, got {n}")
    r = load_run(run, device)
    g = torch.Generator(device=r.model.device).manual_seed(seed)
    cond = r.model.default_condition(n) if condition is None else torch.full((n,), condition, dtype=torch.long)
    kwargs = {"naive": naive} if naive else {}
    if precision != "float64":
        kwargs["precision"] = None  # the model's own dtype
    x = r.model.sample(n, generator=g, temperature=temperature, condition=cond, progress=True, **kwargs)
    if r.info.continuous:  # 2-D points: a scatter plot over the mixture's centres

        save_png(sample_picture(x, r.data()), out)
    else:
        save_png(grid(r.info.to_rgb(x), ncols=ncols), out)
    print(f"wrote {n} samples to {out}", file=sys.stderr)


def parse_image_selection(spec: str, data) -> tuple[str, list[int]]:
    """``test:0-7`` or ``train:3,5,9`` -> (split, positions), checked against the data."""
    split, colon, rest = spec.partition(":")
    if not colon:
        raise GenzooError(f"--images {spec!r}: expected SPLIT:A-B or SPLIT:i,j,k (e.g. test:0-7)")
    n = data.size(split)
    positions: list[int] = []
    try:
        for part in rest.split(","):
            a, dash, b = part.partition("-")
            positions.extend(range(int(a), int(b) + 1) if dash else [int(a)])
    except ValueError:
        raise GenzooError(f"--images {spec!r}: expected SPLIT:A-B or SPLIT:i,j,k (e.g. test:0-7)") from None
    bad = [p for p in positions if not 0 <= p < n]
    if bad or not positions:
        raise GenzooError(f"--images {spec!r}: split {split!r} has images 0-{n - 1}")
    return split, positions


def cmd_complete(run: Path, mask: str, out: Path, images: str = "test:0-7", samples: int = 4, seed: int = 0,
                 temperature: float = 1.0, device: str = "auto") -> None:
    _check_out_png(out)
    r = load_run(run, device)
    known = make_mask(mask, r.info)  # (C, H, W)
    data = r.data()
    split, positions = parse_image_selection(images, data)
    x = data.images(split, positions)  # (N, C, H, W)
    n = len(x)
    g = torch.Generator(device=r.model.device).manual_seed(seed)
    reps = x.repeat_interleave(samples, dim=0)  # (N*k, C, H, W)
    cond = None
    if r.model.conditional:  # complete each image under its own label
        labels = data.batch(split, positions).get("y")
        cond = labels.repeat_interleave(samples) if labels is not None else r.model.default_condition(len(reps))
    filled = r.model.complete(reps, known, generator=g, temperature=temperature, condition=cond, progress=True)
    info = r.info
    original = info.to_rgb(x)
    shown = mask_rgb(original, known.all(0).numpy())
    comps = info.to_rgb(filled).reshape(n, samples, *original.shape[1:])
    save_png(completion_figure(original, shown, comps), out)
    print(f"wrote completions of {n} {split} images ({mask} hidden, {samples} each) to {out}", file=sys.stderr)


def cmd_eval(run: Path, split: str = "test", json_path: Path | None = None, device: str = "auto",
             batch_size: int = 256, only: list[str] | None = None, k: int = 5000, k_iwae: int = 50,
             max_images: int | None = None, samples: int = 1000, seed: int = 0, features: str | None = None,
             feature_cache: Path | None = None) -> dict:
    """Every measurement that applies to the run, each with its protocol, into RUN/eval.json."""

    if k < 1 or k_iwae < 1 or samples < 1 or (max_images is not None and max_images < 1):
        raise GenzooError("--k, --k-iwae, --samples and --max-images must be >= 1")
    r = load_run(run, device)
    path = Path(json_path) if json_path else r.path / "eval.json"
    result = evaluate(r, split=split, sections=only, k=k, k_iwae=k_iwae, max_images=max_images, samples=samples,
                      seed=seed, batch_size=batch_size, figure_dir=path.parent, features=features,
                      feature_cache=feature_cache)
    headline = [m for m in result["metrics"] if m["metric"] in ("nll", "negative_elbo")
                and m["protocol"].get("estimator") in ("exact", "ELBO (bound)")]
    if headline:  # the likelihood in the flat form earlier versions wrote
        result.update(nll_nats=headline[0]["value"], bits_per_dim=headline[1]["value"],
                      n_images=headline[0]["protocol"]["images"], likelihood=headline[0]["protocol"]["estimator"])
    write_json(path, result)
    print(f"{r.model_name} on {result['data']} (step {r.step}):")
    for m in result["metrics"]:
        proto = ", ".join(f"{k_}={v}" for k_, v in m["protocol"].items() if k_ not in ("near_copy_rule",))
        value = f"{m['value']:.4f}" if m["unit"] == "bits/dim" or abs(m["value"]) < 10 else f"{m['value']:.2f}"
        print(f"  {m['metric']:<26} {value:>10} {m['unit']:<22} [{proto}]")
    print(f"-> {path}")
    return result


def cmd_compare(runs: list[Path], out: Path, device: str = "cpu") -> None:
    """One self-contained HTML page: runs, a metric table of comparable numbers, samples, figures, curves."""

    path = build_report(runs, out, device=device)
    print(f"wrote a comparison of {len(runs)} run{'s' if len(runs) != 1 else ''} to {path}", file=sys.stderr)


def _latent_run(run: Path, device: str, what: str):
    r = load_run(run, device)
    if not isinstance(r.model, LatentModel):
        raise GenzooError(f"model {r.model_name!r} has no code space to {what} (only autoencoders, VAEs and GANs do)")
    return r


def _select_one(spec: str, data) -> torch.Tensor:
    """``test:4`` -> that image (1, C, H, W)."""
    split, positions = parse_image_selection(spec, data)
    if len(positions) != 1:
        raise GenzooError(f"{spec!r}: name one image, e.g. test:4")
    return data.images(split, positions)


def cmd_reconstruct(run: Path, out: Path, images: str = "test:0-15", seed: int = 0, device: str = "auto") -> None:
    """Rows of originals above their reconstructions decode(encode(x))."""

    _check_out_png(out)
    r = _latent_run(run, device, "reconstruct through")
    data = r.data()
    split, positions = parse_image_selection(images, data)
    x = data.images(split, positions).to(r.model.device)  # (N, C, H, W)
    g = torch.Generator(device=r.model.device).manual_seed(seed)
    z = r.model.encode(x, generator=g)
    with torch.no_grad():
        rec = r.model.decode(z)
    n = len(x)
    tiles = [r.info.to_rgb(x[i:i + 8]) for i in range(0, n, 8)]
    recs = [r.info.to_rgb(rec[i:i + 8]) for i in range(0, n, 8)]

    rows = np.concatenate([np.concatenate([a, b]) for a, b in zip(tiles, recs)])
    save_png(grid(rows, ncols=min(8, n)), out)
    print(f"wrote {n} {split} images (odd rows) and their reconstructions (even rows) to {out}", file=sys.stderr)


def cmd_traverse(run: Path, out: Path, dims: list[int], value_range: list[float] = (-3.0, 3.0), steps: int = 11,
                 image: str | None = None, seed: int = 0, device: str = "auto") -> None:
    """The lecture's figure: sweep two code dimensions on a grid, the others fixed."""

    _check_out_png(out)
    if len(dims) != 2:
        raise GenzooError(f"--dims takes two code dimensions, got {len(dims)}")
    r = _latent_run(run, device, "traverse")
    model = r.model
    if image is not None:
        g = torch.Generator(device=model.device).manual_seed(seed)
        base = model.encode(_select_one(image, r.data()).to(model.device), generator=g)[0]
    else:
        base = torch.zeros(model.latent_dim, device=model.device)
    z = traversal_codes(base, (dims[0], dims[1]), value_range[0], value_range[1], steps)
    with torch.no_grad():
        x = model.decode(z)
    lo, hi = value_range
    caption = f"rows: z[{dims[0]}], columns: z[{dims[1]}], both {lo:g} .. {hi:g}; other dims " + (
        f"from {image}" if image else "0")
    save_png(labelled_grid(r.info.to_rgb(x), ncols=steps, caption=caption), out)
    print(f"wrote a {steps}x{steps} traversal of dims {dims[0]} and {dims[1]} to {out}", file=sys.stderr)


def cmd_interpolate(run: Path, out: Path, between: list[str], steps: int = 10, kind: str = "linear", seed: int = 0,
                    device: str = "auto") -> None:
    """Decode codes along the path between two images (their codes) or two prior draws (``seed:N``)."""

    _check_out_png(out)
    if len(between) != 2:
        raise GenzooError(f"--between takes two endpoints (e.g. test:4 test:9 or seed:1 seed:2), got {len(between)}")
    r = _latent_run(run, device, "interpolate in")
    model = r.model
    ends = []
    for spec in between:
        if spec.startswith("seed:"):
            try:
                g = torch.Generator(device=model.device).manual_seed(int(spec[5:]))
            except ValueError:
                raise GenzooError(f"--between {spec!r}: expected seed:N with an integer N") from None
            ends.append(model.prior(1, g)[0])
        else:
            g = torch.Generator(device=model.device).manual_seed(seed)
            ends.append(model.encode(_select_one(spec, r.data()).to(model.device), generator=g)[0])
    z = interpolate(ends[0], ends[1], steps, kind)
    with torch.no_grad():
        x = model.decode(z)
    save_png(labelled_grid(r.info.to_rgb(x), ncols=steps, caption=f"{between[0]} -> {between[1]} ({kind})"), out)
    print(f"wrote {steps} images from {between[0]} to {between[1]} to {out}", file=sys.stderr)


def cmd_probe(run: Path, data: str | None = None, finetune: bool = False, epochs: int = 30, seed: int = 0,
              json_path: Path | None = None, device: str = "auto") -> dict:
    """Softmax classifier on the frozen codes (or encoder + classifier end to end with --finetune)."""

    r = _latent_run(run, device, "probe")
    dataset = load_dataset(data) if data else reload_data(r.data_desc)
    if dataset.labels is None:
        raise GenzooError(f"{dataset.spec}: the probe needs class labels and this data set has none")
    res = linear_probe(r.model, dataset, epochs=epochs, seed=seed, finetune=finetune, device=r.model.device,
                       progress=True)
    result = {"model": r.model_name, "run": str(r.path), "checkpoint_step": r.step, "data": dataset.spec, **res}
    path = Path(json_path) if json_path else r.path / ("finetune.json" if finetune else "probe.json")
    write_json(path, result)
    print(f"{'fine-tuned' if finetune else 'linear probe'} on {dataset.spec}: test accuracy "
          f"{res['test_accuracy']:.4f} -> {path}")
    return result


def _check_out_png(out: Path) -> None:
    if Path(out).suffix.lower() != ".png":
        raise GenzooError(f"-o {out}: the output must be a .png file")


# ----------------------------------------------------------------------------------------
# argument parsing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genzoo", description="Train, sample, complete and evaluate generative models.")
    p.add_argument("--version", action="version", version=f"genzoo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("models", help="list registered models and their presets")
    sub.add_parser("datasets", help="list data set kinds and their syntax")

    t = sub.add_parser("train", help="train a model into a run folder")
    t.add_argument("model", help="a registered model (see `genzoo models`)")
    t.add_argument("--data", help="data spec (see `genzoo datasets`); default: pokemon, or the run's with --resume")
    t.add_argument("--out", required=True, type=Path, help="run folder to create (or continue with --resume)")
    t.add_argument("--preset", help="named settings of the model (see `genzoo models`)")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model or trainer setting; repeatable")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total training steps (rounds)")
    g.add_argument("--epochs", type=float, help="total passes over the training split")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda (auto takes CUDA when present)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--size", type=int, help="folder data: resize images to SIZE x SIZE (default 32)")
    t.add_argument("--colors", type=int, help="folder data: quantise to this many colours (default 64)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or messages")

    s = sub.add_parser("sample", help="draw new images from a trained run")
    s.add_argument("run", type=Path)
    s.add_argument("-n", type=int, default=64)
    s.add_argument("-o", "--out", type=Path, required=True, help="output .png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (0 = most likely value)")
    s.add_argument("--condition", type=int, help="class label for conditional models")
    s.add_argument("--naive", action="store_true", help="autoregressive: recompute every step (slow reference path)")
    s.add_argument("--ncols", type=int)
    s.add_argument("--precision", choices=["float64", "model"], default="float64",
                   help="autoregressive: sample in float64 (cached and --naive give identical samples) or in the "
                        "model's dtype (faster on GPUs; rare float-rounding differences between the two paths)")
    s.add_argument("--device", default="auto")

    c = sub.add_parser("complete", help="show the model part of unseen images and let it draw the rest")
    c.add_argument("run", type=Path)
    c.add_argument("--mask", required=True, help="bottom-half | bottom-three-quarters | right-half (the part hidden)")
    c.add_argument("-o", "--out", type=Path, required=True, help="output .png")
    c.add_argument("--images", default="test:0-7", help="which images, e.g. test:0-7 or test:3,9")
    c.add_argument("--samples", type=int, default=4, help="completions per image")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--temperature", type=float, default=1.0)
    c.add_argument("--device", default="auto")

    r = sub.add_parser("reconstruct", help="images and their reconstructions through the code")
    r.add_argument("run", type=Path)
    r.add_argument("-o", "--out", type=Path, required=True, help="output .png")
    r.add_argument("--images", default="test:0-15", help="which images, e.g. test:0-15")
    r.add_argument("--seed", type=int, default=0, help="for models that encode by fitting the code (GANs)")
    r.add_argument("--device", default="auto")

    tr = sub.add_parser("traverse", help="decode a grid over two code dimensions, the others fixed")
    tr.add_argument("run", type=Path)
    tr.add_argument("-o", "--out", type=Path, required=True, help="output .png")
    tr.add_argument("--dims", type=int, nargs="+", required=True, metavar="D", help="two code dimensions")
    tr.add_argument("--range", dest="value_range", type=float, nargs=2, default=[-3.0, 3.0], metavar=("LO", "HI"))
    tr.add_argument("--steps", type=int, default=11)
    tr.add_argument("--image", help="hold the other dimensions at this image's code (e.g. test:0); default 0")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")

    it = sub.add_parser("interpolate", help="decode codes along a path between two images or prior draws")
    it.add_argument("run", type=Path)
    it.add_argument("-o", "--out", type=Path, required=True, help="output .png")
    it.add_argument("--between", nargs="+", required=True, metavar="END",
                    help="two endpoints: images (test:4 test:9) or prior draws (seed:1 seed:2)")
    it.add_argument("--steps", type=int, default=10)
    it.add_argument("--kind", choices=["linear", "slerp"], default="linear")
    it.add_argument("--seed", type=int, default=0)
    it.add_argument("--device", default="auto")

    pr = sub.add_parser("probe", help="test accuracy of a softmax classifier on a model's codes")
    pr.add_argument("run", type=Path)
    pr.add_argument("--data", help="labelled data (default: the run's own)")
    pr.add_argument("--finetune", action="store_true", help="train encoder + classifier end to end")
    pr.add_argument("--epochs", type=int, default=30)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--json", dest="json_path", type=Path, help="default RUN/probe.json (RUN/finetune.json)")
    pr.add_argument("--device", default="auto")

    e = sub.add_parser("eval", help="every measurement that applies (likelihoods, bounds, memorisation, ...)")
    e.add_argument("run", type=Path)
    e.add_argument("--split", default="test")
    e.add_argument("--json", dest="json_path", type=Path, help="write results here (default RUN/eval.json)")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--only", nargs="+", metavar="SECTION",
                   help="likelihood | importance | reconstruction | memorisation | modes (default: all that apply)")
    e.add_argument("--k", type=int, default=5000, help="importance samples per image for the NLL estimate")
    e.add_argument("--k-iwae", type=int, default=50, help="samples per image for the IWAE bound")
    e.add_argument("--max-images", type=int, help="importance sampling on the first N images of the split only")
    e.add_argument("--samples", type=int, default=1000,
                   help="generated images for the memorisation check and the --features metrics")
    e.add_argument("--features", metavar="SPEC",
                   help="add sample quality (Frechet/kernel distance, precision/recall, density/coverage; class "
                        "scores with a classifier) in this feature space: inception:WEIGHTS.pth | pixels | "
                        "classifier:RUN | autoencoder:RUN")
    e.add_argument("--feature-cache", type=Path,
                   help="cache of reference features (default $GENZOO_CACHE_DIR or ~/.cache/genzoo/features)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")

    cp = sub.add_parser("compare", help="one self-contained HTML page comparing evaluated runs")
    cp.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders, each with RUN/eval.json")
    cp.add_argument("-o", "--out", type=Path, required=True, help="output .html")
    cp.add_argument("--device", default="cpu", help="for drawing samples of runs without a saved grid")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    fn = {"models": cmd_models, "datasets": cmd_datasets, "train": cmd_train, "sample": cmd_sample,
          "complete": cmd_complete, "eval": cmd_eval, "reconstruct": cmd_reconstruct, "traverse": cmd_traverse,
          "interpolate": cmd_interpolate, "probe": cmd_probe, "compare": cmd_compare}[command]
    try:
        fn(**args)
    except GenzooError as e:
        print(f"genzoo: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"genzoo: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("genzoo: aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
