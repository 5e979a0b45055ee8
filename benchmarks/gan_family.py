"""The GAN family's second half, each against its paper's claim: cgan, acgan, infogan, ssgan, bigan/ali, lapgan.

    python benchmarks/gan_family.py conditional --models cgan acgan --cpu 300 --classifier runs/fashion_classifier
    python benchmarks/gan_family.py conditional --models acgan --preset fashion_real_class --cpu 300 --tag _real_class
    python benchmarks/gan_family.py infogan --data mnist --seeds 0 1 2 3 4 --cpu 200
    python benchmarks/gan_family.py ssgan --draws 0 1 2 3 4 --cpu 100
    python benchmarks/gan_family.py bigrid --models bigan ali --seeds 0 1 2 --steps 2000
    python benchmarks/gan_family.py bigrid --models bigan --seeds 0 1 2 --steps 5000 --schedule linear --tag _linear_bigan
    python benchmarks/gan_family.py bifashion --models bigan ali --cpu 300
    python benchmarks/gan_family.py lapgan --models lapgan dcgan --cpu 400 --classifier runs/cifar_classifier

Every training goes through genzoo's Trainer with the model's preset and stops after the round that
passes ``--cpu`` CPU seconds of this process (:func:`_common.cpu_seconds`: a budget other jobs on a
shared machine do not shrink); CPU and wall seconds are both recorded. Class agreement and the
Fréchet distances are measured with a genzoo ``classifier`` run trained on the same data, whose own
test accuracy is recorded beside them. Each subcommand writes ``benchmarks/results/gan_family_<name>.json``
(rewritten after every run, keeping the rows of other runs) and its figures beside it.

* ``conditional`` (Fashion-MNIST): 500 samples per requested class; the share the classifier assigns
  to the requested class (beside its accuracy on the real test images), the Fréchet distance per class
  (500 samples vs the class's 1,000 test images, classifier features), overall Fréchet distance and
  precision/recall (k = 3; 5,000 samples vs 5,000 test images); a grid with one row per class.
* ``infogan``: Q's categorical code as a label predictor after the best one-to-one matching of codes to
  labels (Hungarian), on the held-out split; traversal figures of the two continuous codes (one row
  per matched class). ``--data mnist`` is the MNIST *test* set (10,000 labelled digits, split 9,000
  train / 1,000 held out), the only labelled MNIST available offline.
* ``ssgan`` (Fashion-MNIST): 10 labels per class drawn with each ``--draws`` seed; the GAN's
  discriminator against the same network trained with ``gan_weight=0`` (the 100 labels alone) for the
  same number of rounds; test error on the 10,000 test images.
* ``bigrid``: the 25-Gaussian grid with the protocol of ``mode_collapse.py`` (2,500 samples, VEEGAN's
  criteria; its ``grid`` presets, batch 256, lr 1e-3 for both players, a fixed number of rounds).
* ``bifashion`` (Fashion-MNIST): G(E(x)) reconstruction figures and the linear probe of E(x)
  (:func:`genzoo.evaluation.probe.linear_probe`, the protocol of ``probe.py``).
* ``lapgan`` (CIFAR-10, 8 -> 16 -> 32): each model for the same CPU budget; Fréchet distance and
  precision/recall of 2,000 samples against 2,000 test images in the classifier's features; sample
  grids, and for lapgan one per pyramid level (the same samples at 8x8, 16x16 and 32x32).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, LRSchedule, cpu_seconds, peak_rss_mb, write_result  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.data.continuous import to_unit  # noqa: E402
from genzoo.data.labels import hide_labels  # noqa: E402
from genzoo.data.toy import mode_report  # noqa: E402
from genzoo.evaluation.probe import linear_probe  # noqa: E402
from genzoo.features.extractors import build_extractor  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.distances import frechet_distance, precision_recall  # noqa: E402
from genzoo.models.classifier import dataset_accuracy  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.callbacks import Callback  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, load_run, run_description  # noqa: E402
from genzoo.training.trainer import Trainer  # noqa: E402
from genzoo.viz import grid, labelled_grid, save_png  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TAG = ""  # --tag: suffix of every result and figure name (e.g. _gpu)
SETS: dict[str, str] = {}  # --set KEY=VALUE: preset overrides for every training of the run
DATA = {
    "fashion": "idx:/usr/share/datasets/fashion-mnist",
    "mnist": "idx:" + str(ROOT / "shared/data/mnist"),
    "cifar": "cifar10:" + str(ROOT / "shared/data/cifar10_jpeg/cifar10_jpeg.tar.gz"),
}
PUBLISHED = {
    "infogan": "Chen et al. 2016 (arXiv:1606.03657), Table 1: 5% error (95% accuracy) of the categorical code on MNIST",
    "ssgan": "Salimans et al. 2016 (arXiv:1606.03498), Table 1: 0.93% test error on MNIST with 100 labels "
    "(feature matching, ensemble of 10 runs: 0.93 +- 0.065%)",
    "bigrid": "Dumoulin et al. 2016 (ALI, arXiv:1606.00704), 25-Gaussian grid, modes covered: ALI 13.4 +- 5.8, "
    "GAN 10.4 +- 9.2; Srivastava et al. 2017 (VEEGAN, arXiv:1705.07761) Table 1: ALI 15.8, GAN 3.3",
    "conditional": "Odena et al. 2017 (ACGAN, arXiv:1610.09585) and Mirza & Osindero 2014 publish no Fashion-MNIST "
    "class-agreement figure; the target is the classifier's own accuracy on real test images minus 5 points",
    "lapgan": "Denton et al. 2015 (arXiv:1506.05751), CIFAR-10: Parzen log-likelihood 1799 +- 6 nats (LAPGAN) vs "
    "1798 (GAN); no Frechet distance (it postdates the paper)",
}


class CPUBudget(Callback):
    """Stop after the round that passes ``seconds`` of this process's CPU time (the trainer's
    time budget is set to its least value, so the next round ends the fit with a checkpoint)."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, 0.0

    def on_fit_start(self, trainer) -> None:
        self.start = cpu_seconds()

    def on_step_end(self, trainer, record) -> None:
        if cpu_seconds() - self.start >= self.seconds:
            trainer.cfg.time_budget_s = 1e-9


def train(model_name, data, preset, overrides, seed, run_dir: Path, cpu: float | None = None, steps: int = 0,
          device: str = "cpu"):
    """Train through genzoo's Trainer on ``device`` for ``cpu`` CPU seconds (or ``steps`` rounds) -> (model on
    the CPU, record): every measurement below runs on the CPU, whatever device trained the model."""
    cls = get_model_class(model_name)
    sets = {"steps": str(steps or 10**8), "sample_every": "0", "eval_every": "-1", "checkpoint_every": str(10**8),
            "log_every": "50", **{k: str(v) for k, v in {**overrides, **SETS}.items() if k != "schedule"}}
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, preset, sets)
    torch.manual_seed(seed)
    model = cls(model_cfg, data.info)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    write_json(run_dir / RUN_JSON, run_description(model_name, model, train_cfg, data, seed))
    callbacks: list[Callback] = [CPUBudget(cpu)] if cpu else []
    if overrides.get("schedule", "constant") != "constant":  # an optimiser schedule, not a model key
        if not steps:
            raise SystemExit(f"{model_name}: a decaying schedule needs a number of rounds, not a CPU budget")
        callbacks.append(LRSchedule(overrides["schedule"], steps))
    trainer = Trainer(model, data, train_cfg, run_dir, model_name=model_name, seed=seed, quiet=True,
                      callbacks=callbacks, device=torch.device(device))
    c0, t0 = cpu_seconds(), time.perf_counter()
    last = trainer.fit()
    model = trainer.model.cpu().eval()
    return model, {"model": model_name, "preset": preset, "overrides": {**overrides, **SETS}, "seed": seed,
                   "device": device,
                   "parameters": sum(p.numel() for p in model.parameters()), "steps": trainer.step,
                   "epochs": trainer.batches / trainer.stream.per_epoch, "cpu_seconds": cpu_seconds() - c0,
                   "wall_seconds": time.perf_counter() - t0,
                   "last_log": {k: v for k, v in last.items() if isinstance(v, (int, float))}}


def classifier(run: str, data):
    """The ``classifier:RUN`` extractor and the classifier's own test accuracy on ``data`` (waits for
    the run's checkpoint when the classifier is still training beside this benchmark)."""
    while not (Path(run) / "checkpoint.pt").exists():
        time.sleep(30)
    ext = build_extractor(f"classifier:{run}", batch_size=500)
    acc = dataset_accuracy(ext.classifier, data, "test")
    return ext, {"run": run, "test_accuracy": acc["accuracy"], "test_images": acc["images"]}


def unit(model, x):
    return to_unit(x, model.info).float()


def fd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def result_of(name: str, args) -> dict:
    path = RESULTS / f"gan_family_{name}{TAG}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = ("classifier", "train_command") if getattr(args, "evaluate", False) else ("classifier",)
    if getattr(args, "evaluate", False) and "train_command" not in old:
        old["train_command"] = old.get("command")  # re-measuring: the command that trained the runs stays
    return {"rows": old.get("rows", []), **{k: v for k, v in old.items() if k in keep},
            "command": " ".join(["python"] + sys.argv), "published": PUBLISHED.get(name.split("_")[0], ""),
            "budget": {"cpu_seconds_per_run": getattr(args, "cpu", None), "threads": args.threads}}


def save(name: str, result: dict) -> None:
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(f"gan_family_{name}{TAG}", result)


def keep_others(rows: list[dict], **match) -> list[dict]:
    return [r for r in rows if any(r.get(k) != v for k, v in match.items())]


# -- cgan / acgan -------------------------------------------------------------------------------------
def cmd_conditional(args) -> None:
    data = load_dataset(DATA["fashion"])
    result = result_of("conditional", args)
    y_test = data.labels[data.splits["test"]].long()
    k = data.info.num_classes
    for i, name in enumerate(args.models):
        model, rec = train(name, data, args.preset, {}, args.seed, args.runs / f"family_{name}_{args.preset}",
                           cpu=args.cpu, device=args.device)
        if i == 0:
            ext, clf = classifier(args.classifier, data)
            result["classifier"] = clf
            real = ext.features(to_unit(data.images("test"), data.info).float())  # (10000, F)
        g = torch.Generator().manual_seed(args.seed + 1)
        feats, agree, per_class = [], [], []
        for c in range(k):
            x = model.sample(args.per_class, generator=g, condition=torch.full((args.per_class,), c))
            f = ext.features(unit(model, x))
            p = ext.class_probabilities(f).argmax(1)
            feats.append(f)
            agree.append(float((p == c).mean()))
            per_class.append({"class": data.info.class_names[c], "agreement": agree[-1],
                              "frechet": fd(f, real[(y_test == c).numpy()])})
        fake = np.concatenate(feats)
        idx = np.random.default_rng(args.seed).permutation(len(real))[: len(fake)]
        pr = precision_recall(real[idx], fake, k=3)
        rows = torch.arange(k).repeat_interleave(10)
        figure = RESULTS / f"gan_family_conditional_{name}{TAG}.png"
        pics = model.sample(10 * k, generator=torch.Generator().manual_seed(args.seed), condition=rows)
        save_png(labelled_grid(data.info.to_rgb(pics), 10, f"{name}: one row per class, 0-9 top to bottom"), figure)
        share = statistics.fmean(agree)
        rec.update(agreement=share, agreement_gap=clf["test_accuracy"] - share,
                   target_met=share >= clf["test_accuracy"] - 0.05, frechet_all=fd(fake, real),
                   frechet_per_class_mean=statistics.fmean(r["frechet"] for r in per_class),
                   precision=pr["precision"], recall=pr["recall"], per_class=per_class, figure=figure.name,
                   protocol=f"{args.per_class} samples per class; per-class FD vs that class's test images; "
                   f"precision/recall k=3 on {len(fake)} samples vs {len(fake)} test images")
        result["rows"] = keep_others(result["rows"], model=name) + [rec]
        save("conditional", result)
        print(f"{name}: {rec['steps']} steps, agreement {share:.3f} (classifier {clf['test_accuracy']:.3f}), "
              f"FD {rec['frechet_all']:.1f}, recall {pr['recall']:.3f}", flush=True)


# -- infogan ------------------------------------------------------------------------------------------
@torch.no_grad()
def code_accuracy(model, data, split: str) -> tuple[float, list[int]]:
    """Accuracy of Q's categorical argmax after the best one-to-one code -> label matching, and the match."""
    x, y = data.images(split), data.labels[data.splits[split]].long().numpy()
    codes = np.concatenate([model.discriminator.both(model.real_input(x[s:s + 500]))[1][:, : model.config.categories]
                            .argmax(1).numpy() for s in range(0, len(x), 500)])
    k = max(model.config.categories, data.info.num_classes)
    counts = np.zeros((k, k))
    np.add.at(counts, (codes, y), 1)
    rows, cols = linear_sum_assignment(-counts)
    label_of = dict(zip(rows.tolist(), cols.tolist()))
    return float(counts[rows, cols].sum() / len(y)), [label_of[c] for c in range(model.config.categories)]


def traversal(model, label_of: list[int], dim: int, seed: int, path: Path, caption: str) -> None:
    """One row per class (its matched code), columns: continuous code ``dim`` from -2 to 2, other codes fixed."""
    g = torch.Generator().manual_seed(seed)
    z0 = model.prior(1, g)
    steps = torch.linspace(-2, 2, 9)
    code_for = {lab: c for c, lab in enumerate(label_of)}
    zs, conds = [], []
    for lab in sorted(code_for):
        z = z0.repeat(len(steps), 1)
        z[:, dim] = steps
        zs.append(z)
        conds.append(torch.full((len(steps),), code_for[lab]))
    x = model.decode(torch.cat(zs), torch.cat(conds))
    save_png(labelled_grid(model.info.to_rgb(x), len(steps), caption), path)


def cmd_infogan(args) -> None:
    data = load_dataset(DATA[args.data])
    name = f"infogan_{args.data}"
    result = result_of(name, args)
    for seed in args.seeds:
        sets = {"base_channels": args.base_channels} if args.base_channels else {}
        model, rec = train("infogan", data, args.data, sets, seed, args.runs / f"family_{name}_{seed}", cpu=args.cpu, device=args.device)
        acc, label_of = code_accuracy(model, data, "test")
        acc_train, _ = code_accuracy(model, data, "train")
        rec.update(code_accuracy=acc, code_accuracy_train=acc_train, code_to_label=label_of,
                   split={"matched_on": "test", "test_images": data.size("test")})
        if seed == args.seeds[0]:
            for dim in range(model.config.continuous_codes):
                fig = RESULTS / f"gan_family_{name}_c{dim + 1}{TAG}.png"
                traversal(model, label_of, dim, seed, fig,
                          f"infogan {args.data}: rows = category (matched label), columns = c{dim + 1} from -2 to 2")
                rec[f"figure_c{dim + 1}"] = fig.name
        result["rows"] = keep_others(result["rows"], seed=seed) + [rec]
        accs = [r["code_accuracy"] for r in result["rows"]]
        result["summary"] = {"seeds": len(accs), "mean": statistics.fmean(accs), "min": min(accs), "max": max(accs),
                             "seeds_at_95": sum(a >= 0.95 for a in accs)}
        save(name, result)
        print(f"{name} seed {seed}: {rec['steps']} steps, code accuracy {acc:.3f} (train {acc_train:.3f})", flush=True)


# -- ssgan --------------------------------------------------------------------------------------------
@torch.no_grad()
def test_error(model, data) -> float:
    x, y = data.images("test"), data.labels[data.splits["test"]].long()
    pred = torch.cat([model.class_logits(x[s:s + 1000]).argmax(1) for s in range(0, len(x), 1000)])
    return float((pred != y).float().mean())


def cmd_ssgan(args) -> None:
    full = load_dataset(DATA["fashion"])
    result = result_of("ssgan", args)
    for draw in args.draws:
        data = hide_labels(full, args.labels_per_class, draw)
        model, rec = train("ssgan", data, "fashion", {}, draw, args.runs / f"family_ssgan_{draw}", cpu=args.cpu, device=args.device)
        base, brec = train("ssgan", data, "fashion", {"gan_weight": 0}, draw, args.runs / f"family_ssgan_sup_{draw}",
                           steps=rec["steps"], device=args.device)
        row = {"draw": draw, "labels_per_class": args.labels_per_class, "label_seed": draw,
               "ssgan": {**rec, "test_error": test_error(model, data)},
               "supervised_only": {**brec, "test_error": test_error(base, data)}}
        result["rows"] = keep_others(result["rows"], draw=draw) + [row]
        gan = [r["ssgan"]["test_error"] for r in result["rows"]]
        sup = [r["supervised_only"]["test_error"] for r in result["rows"]]
        result["summary"] = {"draws": len(gan), "ssgan_mean": statistics.fmean(gan),
                             "ssgan_std": statistics.pstdev(gan), "supervised_mean": statistics.fmean(sup),
                             "supervised_std": statistics.pstdev(sup),
                             "ratio": statistics.fmean(gan) / statistics.fmean(sup),
                             "target_met": statistics.fmean(gan) <= 0.7 * statistics.fmean(sup)}
        save("ssgan", result)
        print(f"ssgan draw {draw}: {rec['steps']} steps; test error {row['ssgan']['test_error']:.4f} vs supervised "
              f"{row['supervised_only']['test_error']:.4f}", flush=True)


# -- bigan / ali --------------------------------------------------------------------------------------
def cmd_bigrid(args) -> None:
    data = load_dataset("mixture:grid25")
    result = result_of("bigrid", args)
    result["budget"].update(steps_per_run=args.steps, lr_both_players=1e-3, batch_size=256, schedule=args.schedule)
    result["protocol"] = "mode_collapse.py: 2,500 samples; within 3 sigma = high quality; >= 20 on a mode = covered"
    for name in args.models:
        runs = []
        for seed in args.seeds:
            sets = {"d_lr": 1e-3, "g_lr": 1e-3, "batch_size": 256, "schedule": args.schedule}
            model, rec = train(name, data, "grid", sets, seed, args.runs / f"family_{name}_grid_{seed}", steps=args.steps,
                               device=args.device)
            pts = model.sample(2500, generator=torch.Generator().manual_seed(10_000 + seed)).reshape(2500, -1)[:, :2]
            rec.update(mode_report(pts.numpy(), "grid25"))
            runs.append(rec)
            print(f"{name} grid25 seed {seed}: {rec['modes']}/25 modes, {100 * rec['high_quality']:.1f}% "
                  f"high quality ({rec['cpu_seconds']:.0f} CPU-s)", flush=True)
        modes = [r["modes"] for r in runs]
        hq = [100 * r["high_quality"] for r in runs]
        row = {"model": name, "seeds": args.seeds, "modes_mean": statistics.fmean(modes),
               "modes_std": statistics.pstdev(modes), "high_quality_pct_mean": statistics.fmean(hq),
               "high_quality_pct_std": statistics.pstdev(hq), "runs": runs}
        result["rows"] = keep_others(result["rows"], model=name) + [row]
        save("bigrid", result)


def cmd_bifashion(args) -> None:
    data = load_dataset(DATA["fashion"])
    result = result_of("bifashion", args)
    x = data.images("test", list(range(12)))
    for name in args.models:
        model, rec = train(name, data, "fashion", {}, args.seed, args.runs / f"family_{name}_fashion", cpu=args.cpu, device=args.device)
        with torch.no_grad():
            recon = model.decode(model.encode(x))
        fig = RESULTS / f"gan_family_bifashion_{name}_reconstructions{TAG}.png"
        save_png(labelled_grid(data.info.to_rgb(torch.cat([x, recon])), len(x), f"{name}: test x (top), G(E(x))"), fig)
        c0 = cpu_seconds()
        probe = linear_probe(model, data, epochs=args.probe_epochs, seed=args.seed, device=torch.device("cpu"))
        rec.update(probe=probe, probe_cpu_seconds=cpu_seconds() - c0, figure=fig.name,
                   recon_mse_unit=float(((unit(model, recon) - unit(model, x)) ** 2).mean()))
        earlier = _load("bifashion")  # rows another process (another model) wrote meanwhile
        result["rows"] = keep_others(earlier["rows"] if earlier else [], model=name) + [rec]
        save("bifashion", result)
        print(f"{name} fashion: {rec['steps']} steps; probe {probe['test_accuracy']:.4f}", flush=True)


# -- lapgan vs dcgan ----------------------------------------------------------------------------------
def cmd_lapgan(args) -> None:
    data = load_dataset(DATA["cifar"])
    result = result_of("lapgan", args)
    n = args.samples
    idx = torch.randperm(data.size("test"), generator=torch.Generator().manual_seed(args.seed))[:n]
    for i, name in enumerate(args.models):
        run_dir = args.runs / f"family_{name}_cifar"
        if args.evaluate:  # the run this script trained (its record from the JSON), measured again
            old = [r for r in result["rows"] if r["model"] == name]
            if not old:
                raise SystemExit(f"--evaluate: no {name} row in gan_family_lapgan{TAG}.json to re-measure")
            model, rec = load_run(run_dir).model.eval(), old[-1]
        else:
            model, rec = train(name, data, "cifar", {}, args.seed, run_dir, cpu=args.cpu, device=args.device)
        if i == 0:
            ext, clf = classifier(args.classifier, data)
            result["classifier"] = clf
            real = ext.features(to_unit(data.images("test", idx.tolist()), data.info).float())
        g = torch.Generator().manual_seed(args.seed + 1)
        fake = ext.features(torch.cat([unit(model, model.sample(500, generator=g)) for _ in range(n // 500)]))
        pr = precision_recall(real, fake, k=3)
        figs = []
        if hasattr(model, "pyramid_samples"):
            for level in model.pyramid_samples(32, torch.Generator().manual_seed(args.seed)):
                side = level.shape[-1]
                img = (level.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
                fig = RESULTS / f"gan_family_lapgan_{name}_level{side}{TAG}.png"
                save_png(grid(img, ncols=8, scale=96 // side), fig)
                figs.append(fig.name)
        else:
            fig = RESULTS / f"gan_family_lapgan_{name}_samples{TAG}.png"
            pics = model.sample(32, generator=torch.Generator().manual_seed(args.seed))
            save_png(grid(data.info.to_rgb(pics), ncols=8, scale=3), fig)
            figs.append(fig.name)
        rec.update(frechet=fd(fake, real), precision=pr["precision"], recall=pr["recall"], figures=figs,
                   protocol=f"{n} samples vs {n} test images, classifier features; precision/recall k=3")
        result["rows"] = keep_others(result["rows"], model=name) + [rec]
        save("lapgan", result)
        print(f"{name} cifar: {rec['steps']} steps; FD {rec['frechet']:.1f}, P {pr['precision']:.3f} "
              f"R {pr['recall']:.3f}", flush=True)


# -- the README's tables from the JSON ----------------------------------------------------------------
def _load(name: str) -> dict | None:
    path = RESULTS / f"gan_family_{name}{TAG}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _budget(r: dict) -> str:
    return f"{r['steps']} steps ({r['epochs']:.2f} epochs), {r['cpu_seconds']:.0f} CPU-s / {r['wall_seconds']:.0f} s wall"


def cmd_tables(args) -> None:
    """Print the README's markdown tables from the results JSON (only what has been measured)."""
    res = _load("conditional")
    if res:
        acc = res["classifier"]["test_accuracy"]
        print(f"**cgan / acgan, Fashion-MNIST** (classifier test accuracy {acc:.3f}; target: agreement >= "
              f"{acc - 0.05:.3f})\n")
        print("| model | training | class agreement | target met | Fréchet (all) | Fréchet per class, mean | "
              "precision | recall |\n|---|---|---|---|---|---|---|---|")
        for r in res["rows"]:
            print(f"| `{r['model']}` | {_budget(r)} | {r['agreement']:.3f} | {'yes' if r['target_met'] else 'no'} | "
                  f"{r['frechet_all']:.1f} | {r['frechet_per_class_mean']:.1f} | {r['precision']:.3f} | "
                  f"{r['recall']:.3f} |")
        print("\n| class | " + " | ".join(f"`{r['model']}` agreement / Fréchet" for r in res["rows"]) + " |")
        print("|---|" + "---|" * len(res["rows"]))
        for c in range(len(res["rows"][0]["per_class"])):
            cells = [f"{r['per_class'][c]['agreement']:.2f} / {r['per_class'][c]['frechet']:.1f}" for r in res["rows"]]
            print(f"| {res['rows'][0]['per_class'][c]['class']} | " + " | ".join(cells) + " |")
        print()
    for data in ("mnist", "fashion"):
        res = _load(f"infogan_{data}")
        if res:
            sm = res["summary"]
            print(f"**infogan, {data}**: categorical-code accuracy after Hungarian matching, held-out split\n")
            print("| seed | training | accuracy (held out) | accuracy (train split) |\n|---|---|---|---|")
            for r in sorted(res["rows"], key=lambda r: r["seed"]):
                print(f"| {r['seed']} | {_budget(r)} | {r['code_accuracy']:.3f} | {r['code_accuracy_train']:.3f} |")
            print(f"| mean (min-max) | | {sm['mean']:.3f} ({sm['min']:.3f}-{sm['max']:.3f}); "
                  f"{sm['seeds_at_95']} of {sm['seeds']} seeds >= 0.95 | |\n")
    res = _load("ssgan")
    if res:
        sm = res["summary"]
        print("**ssgan, Fashion-MNIST, 10 labels per class** (test error, 10,000 test images)\n")
        print("| label draw | rounds | ssgan | same D, 100 labels alone |\n|---|---|---|---|")
        for r in sorted(res["rows"], key=lambda r: r["draw"]):
            g, b = r["ssgan"], r["supervised_only"]
            print(f"| {r['draw']} | {g['steps']} ({g['cpu_seconds']:.0f} + {b['cpu_seconds']:.0f} CPU-s) | "
                  f"{100 * g['test_error']:.2f}% | {100 * b['test_error']:.2f}% |")
        print(f"| mean ± std ({sm['draws']} draws) | | {100 * sm['ssgan_mean']:.2f} ± {100 * sm['ssgan_std']:.2f}% | "
              f"{100 * sm['supervised_mean']:.2f} ± {100 * sm['supervised_std']:.2f}% |")
        print(f"\nratio {sm['ratio']:.2f} (target <= 0.70: {'met' if sm['target_met'] else 'missed'})\n")
    res = _load("bigrid")
    if res:
        print("**bigan / ali, grid25**\n\n| model | seeds | rounds | modes covered | high-quality % |\n|---|---|---|---|---|")
        for r in res["rows"]:
            print(f"| `{r['model']}` | {len(r['seeds'])} | {res['budget']['steps_per_run']} | "
                  f"{r['modes_mean']:.1f} ± {r['modes_std']:.1f} / 25 | {r['high_quality_pct_mean']:.1f} ± "
                  f"{r['high_quality_pct_std']:.1f} |")
        print()
    res = _load("bifashion")
    if res:
        print("| features | code dim | training | linear-probe test accuracy |\n|---|---|---|---|")
        for r in res["rows"]:
            print(f"| `{r['model']}` E(x) | {r['probe'].get('code_dim', '')} | {_budget(r)} | "
                  f"{r['probe']['test_accuracy']:.4f} |")
        print()
    res = _load("lapgan")
    if res:
        print(f"**lapgan vs dcgan, CIFAR-10** (classifier test accuracy {res['classifier']['test_accuracy']:.3f})\n")
        print("| model | parameters | training | Fréchet | precision | recall |\n|---|---|---|---|---|---|")
        for r in res["rows"]:
            print(f"| `{r['model']}` | {r['parameters']:,} | {_budget(r)} | {r['frechet']:.1f} | "
                  f"{r['precision']:.3f} | {r['recall']:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=1)
    common.add_argument("--runs", type=Path, default=Path("runs"))
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--cpu", type=float, default=300.0, help="CPU seconds of training per run")
    common.add_argument("--tag", default="", help="suffix of the result and figure names (e.g. _gpu)")
    common.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset key in every training of the run (repeatable)")
    common.add_argument("--device", default="cpu", help="where the models train (cuda on a GPU machine); "
                        "measurements run on the CPU")
    s = sub.add_parser("conditional", parents=[common])
    s.add_argument("--models", nargs="+", default=["cgan", "acgan"])
    s.add_argument("--classifier", default="runs/fashion_classifier")
    s.add_argument("--per-class", type=int, default=500)
    s.add_argument("--preset", default="fashion", help="every model's preset (acgan: fashion_real_class too)")
    s = sub.add_parser("infogan", parents=[common])
    s.add_argument("--data", choices=["mnist", "fashion"], default="mnist")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    s.add_argument("--base-channels", type=int, default=0, help="override the preset's conv width (0: keep)")
    s = sub.add_parser("ssgan", parents=[common])
    s.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    s.add_argument("--labels-per-class", type=int, default=10)
    s = sub.add_parser("bigrid", parents=[common])
    s.add_argument("--models", nargs="+", default=["bigan", "ali"])
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    s.add_argument("--steps", type=int, default=2000)
    s.add_argument("--schedule", default="constant", choices=["constant", "linear"],
                   help="both players' learning rate: constant, or decayed linearly to 0 (mode_collapse.py's best)")
    s = sub.add_parser("bifashion", parents=[common])
    s.add_argument("--models", nargs="+", default=["bigan", "ali"])
    s.add_argument("--probe-epochs", type=int, default=30)
    s = sub.add_parser("lapgan", parents=[common])
    s.add_argument("--models", nargs="+", default=["lapgan", "dcgan"])
    s.add_argument("--classifier", default="runs/cifar_classifier")
    s.add_argument("--samples", type=int, default=2000)
    s.add_argument("--evaluate", action="store_true", help="measure the runs trained before (e.g. with another classifier)")
    sub.add_parser("tables").add_argument("--tag", default="")
    args = p.parse_args()
    global TAG
    TAG = args.tag
    for kv in getattr(args, "sets", []):
        key, sep, value = kv.partition("=")
        if not sep:
            p.error(f"--set {kv!r}: expected KEY=VALUE")
        SETS[key] = value
    if args.cmd == "tables":
        cmd_tables(args)
        return
    torch.set_num_threads(args.threads)
    {"conditional": cmd_conditional, "infogan": cmd_infogan, "ssgan": cmd_ssgan, "bigrid": cmd_bigrid,
     "bifashion": cmd_bifashion, "lapgan": cmd_lapgan}[args.cmd](args)


if __name__ == "__main__":
    main()
