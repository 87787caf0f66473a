"""ADA (src/dcgan/training/ada.py) against the reference implementation on the same random numbers.

The reference, NVlabs/stylegan2-ada-pytorch's training/augment.py, is under NVIDIA's
non-commercial licence, so no copy of it is kept here: point ``--reference`` at a checkout (its
CPU path needs nothing but torch, numpy and scipy). Both draw from a generator seeded alike (the
reference from torch's global one, ours from a :class:`~dcgan.training.draws.LiveDraws`), on the
same images, for each pipeline, strength and channel count; the output records the largest
difference and whether the two are bit-identical.

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
    python benchmarks/ada_reference.py --reference /tmp/sg2ada      # -> reports/ada_reference.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from dcgan.training.ada import PIPELINES, ada_augment
from dcgan.training.draws import LiveDraws

SPECS = {"bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
         "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                     lumaflip=1, hue=1, saturation=1)}


def compare(pipe_cls, name: str, p: float, channels: int, seed: int, n: int = 16, size: int = 32) -> dict:
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1000 + seed)) * 2 - 1
    ref = pipe_cls(**SPECS[name])
    ref.p.copy_(torch.as_tensor(p))
    torch.manual_seed(seed)
    want = ref(x.clone())
    got = ada_augment(x.clone(), p, PIPELINES[name], LiveDraws(torch.Generator().manual_seed(seed), x.device))
    diff = float((want - got).abs().max())
    return {"pipeline": name, "p": p, "channels": channels, "seed": seed, "images": n,
            "bit_identical": bool(torch.equal(want, got)), "max_abs_diff": diff,
            "changed_by_augmentation": float((got - x).abs().mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--out", default="reports/ada_reference.json")
    args = ap.parse_args()
    ref_dir = Path(args.reference).resolve()
    if not (ref_dir / "training" / "augment.py").is_file():
        raise SystemExit(f"error: {ref_dir} is not a checkout of stylegan2-ada-pytorch (no training/augment.py)")
    sys.path.insert(0, str(ref_dir))
    from training.augment import AugmentPipe  # noqa: PLC0415 (the reference, from the checkout)

    rows = [compare(AugmentPipe, name, p, ch, seed)
            for name in ("bg", "bgc") for p in (0.0, 0.2, 0.6, 1.0) for ch in (1, 3) for seed in (0, 1, 2)]
    for r in rows:
        print(json.dumps(r))
    doc = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
           "reference": str(ref_dir), "all_bit_identical": all(r["bit_identical"] for r in rows),
           "max_abs_diff": max(r["max_abs_diff"] for r in rows), "cases": rows}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(rows)} cases; bit-identical: {sum(r['bit_identical'] for r in rows)}; "
          f"largest difference {doc['max_abs_diff']:.3g} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
