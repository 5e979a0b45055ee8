"""Print the README's benchmark tables (markdown) from benchmarks/results/*.json.

    python benchmarks/summarize.py
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]


def machine(r: dict) -> str:
    hw = r["hardware"]
    return hw.get("gpu") or f"{hw['cpu']}, {hw['torch_threads']} thread(s)"


def headline(r: dict) -> tuple[float, float, str]:
    """(nats, bits/dim, how) -- the importance-sampled estimate for bound models, else the exact NLL."""
    imp = r.get("test_importance")
    if imp:
        return imp["is_nats"], imp["is_bits_per_dim"], f"IS, k={imp['k']}, {imp['n_images']} images"
    return r["test"]["nll_nats"], r["test"]["bits_per_dim"], "exact" if r["test"].get("likelihood", "exact") == "exact" else "bound"


def likelihood_table(rows: list[dict], per_image: bool) -> str:
    out = ["| model | preset | params | budget | test NLL (nats/image) | test bits/dim | estimate | px/s (median step) | machine |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: headline(r)[1]):
        b = r["budget"]
        budget = f"{b['steps']} steps ({b['epochs']:.1f} epochs" + (f", {b['wall_minutes']:g} min)" if b.get("wall_minutes") else ")")
        nats, bpd, how = headline(r)
        if r.get("test_importance"):
            how += f"; ELBO {r['test']['nll_nats']:.2f} on all {r['test']['n_images']}"
        out.append(f"| `{r['model']['name']}` | {r['model']['preset']} | {r['model']['parameters']:,} | {budget} | "
                   f"{nats:.2f} | {bpd:.3f} | {how} | "
                   f"{r['median_throughput_pixels_per_s']:,.0f} | {machine(r)} |")
    return "\n".join(out)


def probe_table(res: dict) -> str:
    out = ["| features | code dim | training | linear-probe test accuracy |", "|---|---|---|---|"]
    for row in res["rows"]:
        train = "-" if "train_steps" not in row else f"{row['train_steps']} steps ({row['train_epochs']:.1f} epochs)"
        out.append(f"| `{row['model']}` | {row['probe'].get('code_dim', '-')} | {train} | "
                   f"{row['probe']['test_accuracy']:.4f} |")
    return "\n".join(out)


def gan_table(res: dict) -> str:
    keys = ["frechet_distance", "kernel_distance", "precision", "recall", "density", "coverage", "inception_score",
            "classes_generated", "near_copy_share"]
    out = ["| model | loss | params | training | " + " | ".join(keys) + " |", "|---" * (4 + len(keys)) + "|"]
    for row in res["rows"]:
        vals = {m["metric"]: m["value"] for m in row["eval"]}
        ref = vals.get("reference_inception_score")
        cells = [f"{vals[k]:.3g}" + (f" (data {ref:.2f})" if k == "inception_score" and ref else "")
                 if k in vals else "-" for k in keys]
        out.append(f"| `{row['model']}` | {row['loss']} | {row['parameters']:,} | {row['steps']} steps "
                   f"({row['epochs']:.2f} epochs, {row['train_seconds'] / 60:.0f} min) | " + " | ".join(cells) + " |")
    proto = next((m["protocol"] for row in res["rows"] for m in row["eval"] if m["metric"] == "frechet_distance"), None)
    if proto:
        out.append("\nProtocol: " + ", ".join(f"{k}={v}" for k, v in proto.items() if k not in ("extractor_run",)))
    return "\n".join(out)


def mode_table(res: dict) -> str:
    out = []
    for mixture in ("ring8", "grid25"):
        rows = [r for r in res["rows"] if r["mixture"] == mixture]
        if not rows:
            continue
        n = 8 if mixture == "ring8" else 25
        out += [f"\n**{mixture}** ({res['budget']['steps_per_run']} steps each; mean ± std over seeds)\n",
                "| configuration | seeds | modes covered | high-quality % | KL(modes ‖ uniform) | all modes on every seed |",
                "|---|---|---|---|---|---|"]
        for r in rows:
            out.append(f"| {r['row']} (`{r['model']}`) | {len(r['runs'])} | "
                       f"{r['modes']['mean']:.1f} ± {r['modes']['std']:.1f} / {n} | "
                       f"{r['high_quality_pct']['mean']:.1f} ± {r['high_quality_pct']['std']:.1f} | "
                       f"{r['kl_from_uniform']['mean']:.3f} ± {r['kl_from_uniform']['std']:.3f} | "
                       f"{'yes' if r['all_modes_every_seed'] else 'no'} |")
        pub = res["published"][mixture]
        out.append("| *published (" + res["published"]["source"] + ")* | | " +
                   "; ".join(f"{k}: {v['modes']}" for k, v in pub.items()) + " | " +
                   "; ".join(f"{k}: {v['high_quality_pct']}" for k, v in pub.items()) + " | | |")
    return "\n".join(out)


def speed_table(results: list[dict]) -> str:
    out = ["| model | preset | shape | forward pass | cached | naive | naive / cached | cached / forward | identical |",
           "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            naive = f"{r['naive_s']:.1f} s" + ("" if r["naive_measured"] == "full" else "*")
            out.append(f"| `{r['model']}` | {r['preset']} | {r['shape']} | {r['forward_s'] * 1e3:.0f} ms | "
                       f"{r['cached_s']:.2f} s | {naive} | {r['naive_over_cached']:.0f}x | "
                       f"{r['cached_over_forward']:.1f}x | {'yes' if r['identical_samples'] else 'NO'} |")
    return "\n".join(out)


def main() -> None:
    # the likelihood tables hold what benchmarks/likelihood.py writes (other scripts share the file prefixes)
    pokemon = [r for r in load("pokemon_*.json") if "test" in r]
    if pokemon:
        base = pokemon[0].get("baselines_test_bits_per_dim", {})
        print("### Pokémon (80 test sprites, 167 colours)\n")
        print(likelihood_table(pokemon, True))
        if base:
            print(f"\nReference points on the same split: uniform over 167 colours {base['uniform_167']:.3f} bits/dim; "
                  f"independent per-position colour frequencies {base['independent_pixels']:.3f} bits/dim.\n")
    mnist = [r for r in load("binarized_mnist_*.json") if "test" in r]
    if mnist:
        print("### Binarized MNIST (10,000 test images)\n")
        print(likelihood_table(mnist, True))
        pub = mnist[0]["published_test_nll_nats"]
        print("\nPublished (" + pub["source"] + "): " +
              "; ".join(f"{k} {v}" for k, v in pub.items() if k != "source") + " nats.\n")
    for res in load("probe_*.json"):
        print(f"### Linear probe on {res['data']}\n")
        print(probe_table(res) + "\n")
    modes = load("mode_collapse*.json")
    if modes:
        print("### Mode collapse on the 2-D mixtures\n")
    for res in modes:
        print(mode_table(res) + "\n")
    for res in load("gan_images_*.json"):
        print(f"### GANs on {res['data']}\n")
        print(gan_table(res) + "\n")
    speed = load("sampling_speed*.json")
    if speed:
        print("### Sampling speed (64 images, untrained weights)\n")
        print(speed_table(speed))
        print("\n\\* naive timed on the first rows and scaled to the whole image (every naive step is the same "
              "full forward pass).\n")


if __name__ == "__main__":
    main()
