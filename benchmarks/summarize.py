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


def likelihood_table(rows: list[dict], per_image: bool) -> str:
    out = ["| model | preset | params | budget | test NLL (nats/image) | test bits/dim | px/s (median step) | machine |",
           "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["test"]["bits_per_dim"]):
        b = r["budget"]
        budget = f"{b['steps']} steps ({b['epochs']:.1f} epochs" + (f", {b['wall_minutes']:g} min)" if b.get("wall_minutes") else ")")
        out.append(f"| `{r['model']['name']}` | {r['model']['preset']} | {r['model']['parameters']:,} | {budget} | "
                   f"{r['test']['nll_nats']:.2f} | {r['test']['bits_per_dim']:.3f} | "
                   f"{r['median_throughput_pixels_per_s']:,.0f} | {machine(r)} |")
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
    pokemon = load("pokemon_*.json")
    if pokemon:
        base = pokemon[0].get("baselines_test_bits_per_dim", {})
        print("### Pokémon (80 test sprites, 167 colours)\n")
        print(likelihood_table(pokemon, True))
        if base:
            print(f"\nReference points on the same split: uniform over 167 colours {base['uniform_167']:.3f} bits/dim; "
                  f"independent per-position colour frequencies {base['independent_pixels']:.3f} bits/dim.\n")
    mnist = load("binarized_mnist_*.json")
    if mnist:
        print("### Binarized MNIST (10,000 test images)\n")
        print(likelihood_table(mnist, True))
        pub = mnist[0]["published_test_nll_nats"]
        print("\nPublished (" + pub["source"] + "): " +
              "; ".join(f"{k} {v}" for k, v in pub.items() if k != "source") + " nats.\n")
    speed = load("sampling_speed*.json")
    if speed:
        print("### Sampling speed (64 images, untrained weights)\n")
        print(speed_table(speed))
        print("\n\\* naive timed on the first rows and scaled to the whole image (every naive step is the same "
              "full forward pass).\n")


if __name__ == "__main__":
    main()
