"""text2image (Reed et al. 2016, GAN-INT-CLS) on synthetic Fashion-MNIST captions: do samples show the caption?

    nice -n 10 python benchmarks/text2image.py --preset fashion_small --cpu-seconds 400 --chunk 200 \
        --classifier-steps 400 --max-wall-minutes 45

1. The captioned set (GENERATED captions, :mod:`genzoo.data.synthetic_captions`) is written to ``--captions``
   if it is not there: ``--train-per-class`` / ``--test-per-class`` Fashion-MNIST images per class, 3 captions
   each naming the class, dark/light and small/large (thresholds: per-class medians on the train images).
2. A genzoo classifier (``classifier --preset mnist``) is trained on the full Fashion-MNIST train split for
   ``--classifier-steps`` steps; its accuracy on the Fashion-MNIST test split is recorded.
3. text2image (``--preset fashion``) trains on ``captions:DIR`` until its process CPU time passes
   ``--cpu-seconds`` (``_common.cpu_seconds``; checked every ``--chunk`` steps; evaluation time not counted).
4. Measured on ``--per-caption`` samples of each of the 40 captions "a {small|large} {dark|light} {class}":
   the share whose class the classifier recognises as the caption's (target >= 80%), and the share whose
   measured brightness / area falls on the caption's side of the class threshold (target >= 80% each),
   beside the same rule applied to the real test images (the classifier's own error; attributes match by
   construction) and chance (10% / 50%). A grid PNG per caption and one overview are written beside the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_seconds, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.synthetic_captions import ATTRIBUTES_FILE, measure, write_captioned_set  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.models.classifier import dataset_accuracy  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402
from genzoo.viz import grid, labelled_grid, save_png  # noqa: E402

FASHION = "idx:/usr/share/datasets/fashion-mnist"
QUIET = {"sample_every": "0", "eval_every": "-1", "checkpoint_every": "100000"}


def train(name: str, preset: str, data, run: Path, steps: int, seed: int, sets: dict | None = None) -> Trainer:
    cls = get_model_class(name)
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, preset, {"steps": str(steps), **QUIET, **(sets or {})})
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    run.mkdir(parents=True, exist_ok=False)
    write_json(run / RUN_JSON, run_description(name, model, train_cfg, data, seed))
    return Trainer(model, data, train_cfg, run, model_name=name, seed=seed, quiet=True)


def eval_captions(meta: dict) -> list[tuple[str, int, str, str]]:
    """(caption, class, brightness word, area word) for every class x dark/light x small/large."""
    out = []
    for c, word in enumerate(meta["class_words"]):
        for b in ("dark", "light"):
            for a in ("small", "large"):
                out.append((f"a {a} {b} {word}", c, b, a))
    return out


@torch.no_grad()
def measure_samples(model, clf, captions, meta, per_caption: int, seed: int) -> dict:
    limits = {k: np.asarray(v) for k, v in meta["thresholds"].items()}
    tokens, unknown = model.text_condition([c for c, *_ in captions])
    assert not unknown, unknown
    cond = tokens.repeat_interleave(per_caption, dim=0)  # (K * n, L)
    x = model.sample(len(cond), generator=torch.Generator().manual_seed(seed), condition=cond)  # (K*n, 1, H, W)
    y = torch.tensor([c for _, c, *_ in captions]).repeat_interleave(per_caption)
    pred = torch.cat([clf.logits(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    m = measure(x.numpy() / 255.0)
    want_b = np.array([b for *_, b, _ in captions]).repeat(per_caption)
    want_a = np.array([a for *_, a in captions]).repeat(per_caption)
    got_b = np.where(m["brightness"] > limits["brightness"][y.numpy()], "light", "dark")
    got_a = np.where(m["area"] > limits["area"][y.numpy()], "large", "small")
    cls_ok, b_ok, a_ok = (pred == y).numpy(), got_b == want_b, got_a == want_a
    per = [
        {"caption": cap, "class": float(cls_ok[i * per_caption : (i + 1) * per_caption].mean()),
         "brightness": float(b_ok[i * per_caption : (i + 1) * per_caption].mean()),
         "area": float(a_ok[i * per_caption : (i + 1) * per_caption].mean())}
        for i, (cap, *_) in enumerate(captions)
    ]  # fmt: skip
    return {
        "samples": len(x),
        "class_recognised": float(cls_ok.mean()),
        "brightness_matches": float(b_ok.mean()),
        "area_matches": float(a_ok.mean()),
        "both_attributes_match": float((b_ok & a_ok).mean()),
        "class_and_both_attributes": float((cls_ok & b_ok & a_ok).mean()),
        "per_caption": per,
        "images": x,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--captions", type=Path, default=Path("runs/captions-fashion"))
    p.add_argument("--train-per-class", type=int, default=1000)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--cpu-seconds", type=float, default=900.0, help="text2image training budget (process CPU s)")
    p.add_argument("--chunk", type=int, default=250, help="steps between budget checks and curve points")
    p.add_argument("--max-wall-minutes", type=float, default=0.0,
                   help="also stop training after this much wall time (0: no limit); recorded as the reason")
    p.add_argument("--classifier-steps", type=int, default=600)
    p.add_argument("--preset", default="fashion")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--per-caption", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="text2image_fashion")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = RESULTS / args.name
    out_dir.mkdir(parents=True, exist_ok=True)

    fashion = load_dataset(FASHION)
    if not (args.captions / "captions.txt").exists():
        write_captioned_set(fashion, args.captions, seed=args.seed,
                            per_class={"train": args.train_per_class, "test": args.test_per_class})
    meta = json.loads((args.captions / ATTRIBUTES_FILE).read_text())
    data = load_dataset(f"captions:{args.captions}")

    c0, w0 = cpu_seconds(), time.perf_counter()
    clf_trainer = train("classifier", "mnist", fashion, args.runs / f"bench_{args.name}_classifier",
                        args.classifier_steps, args.seed)
    clf_trainer.fit()
    clf = clf_trainer.model.eval()
    clf_cpu = cpu_seconds() - c0
    clf_acc = dataset_accuracy(clf, fashion, "test")
    real_test = data.images("test")
    real_y = torch.tensor([meta["images"][n]["class"] for n in np.array(data.meta["files"])[data.splits["test"].numpy()]])
    real_acc = float((torch.cat([clf.logits(real_test[i : i + 500]).argmax(1) for i in range(0, len(real_test), 500)])
                      == real_y).float().mean())
    print(f"classifier: {args.classifier_steps} steps, {clf_cpu:.0f} CPU-s, Fashion-MNIST test accuracy "
          f"{clf_acc['accuracy']:.4f}, on the captioned test images {real_acc:.4f}", flush=True)

    sets = dict(s.split("=", 1) for s in args.sets)
    trainer = train("text2image", args.preset, data, args.runs / f"bench_{args.name}", args.chunk, args.seed, sets)
    captions = eval_captions(meta)
    curve = []
    c0, w0, eval_cpu = cpu_seconds(), time.perf_counter(), 0.0
    while True:
        trainer.fit()
        train_cpu = cpu_seconds() - c0 - eval_cpu
        e0 = cpu_seconds()
        out_of_wall = bool(args.max_wall_minutes) and time.perf_counter() - w0 >= 60 * args.max_wall_minutes
        done = train_cpu >= args.cpu_seconds or out_of_wall
        res = measure_samples(trainer.model, clf, captions, meta, args.per_caption if done else 10, args.seed)
        eval_cpu += cpu_seconds() - e0
        row = {"step": trainer.step, "train_cpu_s": round(train_cpu, 1), "wall_s": round(time.perf_counter() - w0, 1),
               **{k: round(res[k], 4) for k in ("class_recognised", "brightness_matches", "area_matches")}}
        curve.append(row)
        print(row, flush=True)
        if done:
            break
        trainer.cfg.steps += args.chunk

    x = res.pop("images")
    info = data.info
    n = args.per_caption
    shown = min(n, 10)
    tiles = []
    for i, (cap, *_) in enumerate(captions):
        rgb = info.to_rgb(x[i * n : (i + 1) * n])
        save_png(labelled_grid(rgb[:shown], ncols=shown, caption=cap), out_dir / f"{i:02d}_{cap.replace(' ', '_')}.png")
        tiles.append(rgb[:shown])
    save_png(grid(np.concatenate(tiles), ncols=shown, scale=1), RESULTS / f"{args.name}_grid.png")
    model = trainer.model
    result = {
        "command": " ".join(["python"] + sys.argv),
        "seed": args.seed,
        "data": {"captions": f"captions:{args.captions}", "generated_captions": True,
                 "source": FASHION, "train_images": data.size("train"), "test_images": data.size("test"),
                 "captions_per_image": meta["per_image"], "phrasings": meta["phrasings"],
                 "thresholds": "per-class medians of brightness and area on the train images"},
        "classifier": {"preset": "mnist", "steps": args.classifier_steps, "cpu_seconds": round(clf_cpu, 1),
                       "fashion_test_accuracy": clf_acc["accuracy"], "captioned_test_images_accuracy": real_acc},
        "budget": {"cpu_seconds_asked": args.cpu_seconds, "max_wall_minutes": args.max_wall_minutes or None,
                   "stopped_by": "wall-time limit" if out_of_wall else "CPU budget",
                   "train_cpu_seconds": curve[-1]["train_cpu_s"],
                   "wall_seconds": curve[-1]["wall_s"], "steps": trainer.step, "threads": args.threads,
                   "epochs": trainer.batches / trainer.stream.per_epoch},
        "model": {"name": "text2image", "preset": args.preset, "sets": sets, **vars(model.config),
                  "parameters": sum(q.numel() for q in model.parameters())},
        "protocol": f"{len(captions)} captions 'a {{small|large}} {{dark|light}} {{class}}' x {n} samples (seed "
                    f"{args.seed}); class by the classifier's argmax; brightness = mean of the pixels > 0.1, area = "
                    "share of pixels > 0.1, each compared with the caption class's threshold",
        "targets": {"class_recognised": 0.8, "brightness_matches": 0.8, "area_matches": 0.8},
        "chance": {"class_recognised": 0.1, "brightness_matches": 0.5, "area_matches": 0.5},
        **res,
        "curve": curve,
        "figures": {"overview": f"{args.name}_grid.png (one row per caption, in per_caption order)",
                    "per_caption": f"{args.name}/NN_caption.png"},
    }
    path = write_result(args.name, result)
    print(f"class {res['class_recognised']:.3f}, brightness {res['brightness_matches']:.3f}, area "
          f"{res['area_matches']:.3f} -> {path}")


if __name__ == "__main__":
    main()
