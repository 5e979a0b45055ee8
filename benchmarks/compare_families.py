"""One measurement for every family: evaluate finished runs on the same data with the same protocol,
then write the `genzoo compare` page.

    python benchmarks/compare_families.py --features classifier:runs/fashion_classifier \\
        --runs runs/probe_vae runs/probe_autoencoder runs/gan_images_fashion_non_saturating \\
        --name fashion_families

Each run gets ``genzoo eval`` with ``--features`` (sample quality: Fréchet distance, KID,
precision/recall, density/coverage, class scores), the memorisation check and whatever else applies
(likelihoods, bounds, reconstruction). Numbers land in benchmarks/results/NAME.json with their
protocols, and the HTML report beside it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, write_result  # noqa: E402
from genzoo.evaluation import evaluate  # noqa: E402
from genzoo.evaluation.report import build_report  # noqa: E402
from genzoo.io import write_json  # noqa: E402
from genzoo.training.run import load_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--k", type=int, default=1000, help="importance samples for bound models")
    p.add_argument("--max-images", type=int, default=200, help="importance sampling on the first N test images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="families")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {"command": " ".join(["python"] + sys.argv), "seed": args.seed, "features": args.features,
              "samples": args.samples, "rows": []}
    for run_dir in args.runs:
        run = load_run(run_dir, "cpu")
        t0 = time.perf_counter()
        ev = evaluate(run, samples=args.samples, seed=args.seed, k=args.k, max_images=args.max_images,
                      figure_dir=run_dir, features=args.features)
        write_json(run_dir / "eval.json", ev)
        result["rows"].append({"run": str(run_dir), "model": run.model_name, "family": ev["family"],
                               "checkpoint_step": run.step, "seconds": time.perf_counter() - t0,
                               "metrics": ev["metrics"]})
        result["peak_rss_mb"] = peak_rss_mb()
        write_result(args.name, result)
        print(f"{run_dir}: " + ", ".join(f"{m['metric']}={m['value']:.4g}" for m in ev["metrics"]
                                         if m["unit"] != "bits/dim"), flush=True)
    html = build_report(args.runs, RESULTS / f"{args.name}.html")
    print(f"report: {html}")


if __name__ == "__main__":
    main()
