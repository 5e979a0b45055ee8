"""Train an RBM (or a DBN) on binarized MNIST for a time budget, then estimate its test NLL by AIS.

    nohup nice -n 10 python benchmarks/rbm.py --preset mnist_pcd --minutes 60 \\
        --data binarized-mnist:../shared/data/binarized_mnist &
    python benchmarks/rbm.py --model dbn --preset mnist --init-from RUN_OF_THE_RBM --minutes 30 ...

Records: CD-1 / CD-25 / PCD-1 updates per second at batch 100 (500 hidden units, measured before
training), the training budget, steps and wall time, log Z by AIS with its protocol (intermediate
distributions, chains, seed, standard error, wall time), the test NLL (RBM: mean free energy + log Z)
or the DBN's variational lower bound (Hinton et al. 2006, the top RBM's log Z by AIS), beside the
published figures of Salakhutdinov & Murray 2008 and Murray & Salakhutdinov 2009, and writes sample
and bottom-half completion grids.

The number of training steps is fixed before training from the measured update rate (so the linear
learning-rate decay ``anneal_updates`` ends with the budget); ``time_budget_s`` stops training if the
machine slows down.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402
from genzoo.cli import cmd_complete, cmd_sample  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.metrics.ais import ais_log_z  # noqa: E402
from genzoo.models.registry import get_model_class, resolve_configs  # noqa: E402
from genzoo.training.config import TrainConfig  # noqa: E402
from genzoo.training.run import RUN_JSON, load_run, run_description  # noqa: E402
from genzoo.training.trainer import Trainer, make_optimizer  # noqa: E402

PUBLISHED = {
    "source": "Salakhutdinov & Murray 2008, On the Quantitative Analysis of Deep Belief Networks (ICML), "
              "Table 2, test NLL by AIS on binarized MNIST; DBN: Murray & Salakhutdinov 2009 (NIPS), "
              "a lower-bound estimate",
    "RBM CD-1(500)": 125.53, "RBM CD-3(500)": 105.50, "RBM CD-25(500)": 86.34, "DBN 500-2000": 84.55,
}


def update_rate(model, data, train_cfg, cd_k: int, persistent: bool, n: int) -> float:
    """Updates per second of a copy of ``model`` set to CD-k / PCD-k, at the training batch size."""
    m = copy.deepcopy(model)
    m.config = copy.copy(m.config)
    m.config.cd_k, m.config.persistent = cd_k, persistent
    if persistent and len(m.chains) == 0:
        m.chains = torch.zeros(m.config.chains, data.info.dims)
    opt = make_optimizer([p for p in m.parameters() if p.requires_grad], train_cfg)
    batch = data.batch("train", torch.arange(train_cfg.batch_size))
    m.train()
    times = []
    for i in range(n + 2):
        t = time.perf_counter()
        opt.zero_grad()
        m.loss(batch).loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    times.sort()
    return 1.0 / times[len(times) // 2]  # median


def _last_record(run_dir: Path) -> dict:
    """The last line of a run's metrics log (the training state an evaluation-only call reports)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="rbm", choices=["rbm", "dbn"])
    p.add_argument("--preset", default="mnist_pcd")
    p.add_argument("--data", default="binarized-mnist:../shared/data/binarized_mnist")
    p.add_argument("--minutes", type=float, default=60.0, help="training budget")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--ais-betas", type=int, default=14500)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--init-from", type=Path, default=None, help="dbn: an RBM run whose weights become layer 1")
    p.add_argument("--evaluate", type=Path, default=None, metavar="RUN",
                   help="no training: AIS and test NLL of the run's latest checkpoint (a run stopped before its plan)")
    p.add_argument("--name", default=None)
    p.add_argument("--runs", type=Path, default=Path("runs/benchmarks"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(sys.argv)

    data = load_dataset(args.data)
    cls = get_model_class(args.model)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
    torch.manual_seed(args.seed)
    model = cls(model_cfg, data.info)
    name = args.name or f"binarized_mnist_{args.model}_{args.preset}"
    run_dir = args.runs / name

    speed = {}
    if args.evaluate is not None:
        loaded = load_run(args.evaluate)
        model, train_cfg, model_cfg = loaded.model, loaded.train_config, loaded.model.config
        run_dir, steps = args.evaluate, train_cfg.steps
        trainer = argparse.Namespace(step=loaded.step, train_seconds=float("nan"))
        train_wall, last = float("nan"), _last_record(run_dir)
        print(f"{name}: evaluating {run_dir} at step {loaded.step} of {steps}", flush=True)
    elif args.model == "rbm":
        for label, k, pers, n in (("cd1", 1, False, 20), ("pcd1", 1, True, 20), ("cd25", 25, False, 3)):
            speed[label] = update_rate(model, data, train_cfg, k, pers, n)
        rate = speed["pcd1" if model_cfg.persistent and model_cfg.cd_k == 1 else
                     "cd1" if model_cfg.cd_k == 1 else "cd25"]
        if model_cfg.cd_k not in (1, 25):
            rate = speed["cd1"] / model_cfg.cd_k
        steps = max(1, int(rate * args.minutes * 60 * 0.9))
        overrides.setdefault("anneal_updates", str(steps))
    else:
        if args.init_from is not None:
            rbm = load_run(args.init_from).model
            model.load_layer(0, rbm.layer)
        steps = model.total_layer_steps()
    if args.evaluate is None:
        overrides.setdefault("steps", str(steps))
        overrides.setdefault("time_budget_s", str(args.minutes * 60))
        model_cfg, train_cfg = resolve_configs(cls, TrainConfig, args.preset, overrides)
        torch.manual_seed(args.seed)
        fresh = cls(model_cfg, data.info)
        if args.model == "dbn" and args.init_from is not None:
            fresh.load_layer(0, load_run(args.init_from).model.layer)
        model = fresh
        steps = train_cfg.steps
        print(f"{name}: {steps} steps, budget {args.minutes} min, speed {speed}", flush=True)

        run_dir.mkdir(parents=True, exist_ok=True)
        trainer = Trainer(model, data, train_cfg, run_dir, model_name=args.model, seed=args.seed, quiet=True)
        write_json(run_dir / RUN_JSON, run_description(args.model, model, train_cfg, data, args.seed))
        t0 = time.perf_counter()
        last = trainer.fit()
        train_wall = time.perf_counter() - t0
        print(f"trained {trainer.step} steps in {train_wall:.0f}s: {last}", flush=True)

    model.eval()
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        v_train = model.partition_visible(data.images("train"), generator=g)
    ais = ais_log_z(model.partition_layer(), betas=args.ais_betas, chains=args.ais_chains, v_data=v_train,
                    generator=g)
    print(f"log Z = {ais.log_z:.3f} +- {ais.stderr:.3f} ({ais.seconds:.0f}s)", flush=True)
    result = {}
    for split in ("test", "train"):
        x = data.images(split)[:10000]
        with torch.no_grad():
            lp = torch.cat([model.log_prob_given_log_z(x[i:i + 1000], ais.log_z, generator=g)
                            for i in range(0, len(x), 1000)])
        result[f"{split}_nll_nats"] = -lp.mean().item()
        result[f"{split}_images"] = len(x)
    print(result, flush=True)

    sample_png, completion_png = RESULTS / f"{name}_samples.png", RESULTS / f"{name}_completion.png"
    cmd_sample(run_dir, sample_png, n=64, seed=0, device="cpu")
    cmd_complete(run_dir, completion_png, "bottom-half", images="test:0-7", samples=4, seed=0, device="cpu")

    kind = model.likelihood_kind
    payload = {
        "command": command, "seed": args.seed, "model": args.model, "preset": args.preset,
        "model_config": {k: v for k, v in vars(model_cfg).items()},
        "train_config": {k: v for k, v in vars(train_cfg).items()},
        "data": args.data,
        "budget": {"minutes": args.minutes, "torch_threads": args.threads, "steps_planned": steps,
                   "steps_done": trainer.step, "train_wall_s": round(train_wall, 1),
                   "train_optimiser_s": round(trainer.train_seconds, 1)},
        "updates_per_s_batch_100": {k: round(v, 2) for k, v in speed.items()},
        "ais": ais.protocol() | {"seed": args.seed, "base": "independent visibles fit to the training data"},
        "likelihood": kind,
        "estimator": "AIS (estimate of -log p)" if kind == "estimate" else
                     "variational lower bound of Hinton et al. 2006 (top RBM's log Z by AIS), negated",
        **result,
        "last_record": last,
        "published_nats": PUBLISHED,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "figures": [str(sample_png.relative_to(RESULTS.parent.parent)),
                    str(completion_png.relative_to(RESULTS.parent.parent))],
    }
    path = write_result(name, payload)
    print(json.dumps({k: payload[k] for k in ("budget", "ais", "test_nll_nats")}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
