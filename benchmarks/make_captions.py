"""Write a synthetic captioned image set (GENERATED captions) in the ``captions:PATH`` layout.

    python benchmarks/make_captions.py --source idx:/usr/share/datasets/fashion-mnist --out runs/captions-fashion
    python benchmarks/make_captions.py --source cifar10:../shared/data/cifar10_jpeg/cifar10_jpeg.tar.gz \
        --out runs/captions-cifar

Each image's captions name its class and attributes measured from its pixels (dark/light and small/large
for grey images, dark/light and a colour name for RGB ones), several phrasings per image; see
:mod:`genzoo.data.synthetic_captions`. Then ``genzoo train text2image --data captions:OUT``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genzoo.data import load_dataset
from genzoo.data.synthetic_captions import PHRASINGS, write_captioned_set
from genzoo.errors import GenzooError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a labelled genzoo data spec with class names (idx:..., cifar10:...)")
    p.add_argument("--out", type=Path, required=True, help="folder to write (must not hold captions.txt)")
    p.add_argument("--train-per-class", type=int, default=1000, help="train images per class")
    p.add_argument("--test-per-class", type=int, default=100, help="test images per class")
    p.add_argument("--per-image", type=int, default=3, help=f"captions per image (1-{len(PHRASINGS)})")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        data = load_dataset(args.source)
        summary = write_captioned_set(
            data, args.out, per_class={"train": args.train_per_class, "test": args.test_per_class},
            per_image=args.per_image, seed=args.seed,
        )
    except GenzooError as e:
        print(f"make_captions: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(summary['images'])} images with {args.per_image} generated captions each to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
