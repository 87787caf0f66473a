"""One rank of the distributed-training test, started by torchrun from tests/test_distributed.py.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/dist_worker.py OUT \
        --steps 4 [--sync-bn] [--train '{"r1_gamma": 0.1}']

Trains the test's tiny DCGAN on the digits for ``--steps`` steps with the real loop under DDP
(gloo). After every step each rank hashes its G, D (and E) parameters and, apart, buffers; the hashes are
all-gathered and rank 0 records which agree. Rank 0 writes OUT/dist.pt: the per-step
agreement, the per-step hashes of rank 0 and the final state dicts. Run with one process
(plain ``python tests/dist_worker.py OUT ...``) it writes the single-process reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcgan.app.params.whole import parse_params  # noqa: E402
from dcgan.app.recipe import (
    gan_config,  # noqa: E402
    resolve_recipe,  # noqa: E402
)
from dcgan.training import distributed  # noqa: E402
from tests.conftest import fit, tiny_params  # noqa: E402
from tests.helpers import (
    channel_stats,  # noqa: E402
    load_dataset,  # noqa: E402
)


def digest(named) -> str:
    h = hashlib.sha256()
    for k, v in sorted(named):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sync-bn", action="store_true")
    ap.add_argument("--batch", type=int, default=32, help="global batch size")
    ap.add_argument("--train", default="{}", help="JSON overrides of the train params")
    ap.add_argument("--nudge", action="store_true",
                    help="after step 1, move every weight by one float32 ulp (a rounding-level "
                         "change, as another summation order makes): the test's control")
    args = ap.parse_args(argv)
    world = distributed.env_world_size()
    p = resolve_recipe(parse_params(tiny_params()).train, "grey")
    p = dataclasses.replace(p, epochs=1, batch_size=args.batch, nproc=world, sync_bn=args.sync_bn,
                            **json.loads(args.train))
    env, device = distributed.init_from_env(torch.device("cpu"), world)
    images = load_dataset("digits", ".", 16, 1, max_images=320).images
    cfg = gan_config(p, 16, 1, channel_stats(images))  # stats: for normalize meanstd
    agree: list[bool] = []
    hashes: list[dict[str, str]] = []

    def on_step(step: int, nets: dict) -> None:
        if args.nudge and step == 1:
            with torch.no_grad():
                for m in nets.values():
                    for t in (m.parameters() if m is not None else ()):
                        t.copy_(torch.nextafter(t, torch.full_like(t, float("inf"))))
        mine = {f"{k}.{kind}": digest(getattr(m, f"named_{kind}")())
                for k, m in nets.items() if m is not None for kind in ("parameters", "buffers")}
        everyone = [None] * env.world_size
        if env.enabled:
            dist.all_gather_object(everyone, mine)
        else:
            everyone = [mine]
        agree.append({k: all(h[k] == everyone[0][k] for h in everyone) for k in mine})
        hashes.append(mine)

    args.out.mkdir(parents=True, exist_ok=True)
    r = fit(p, cfg, images, args.out / "ckpt", "dist-test", device=device, stop_after=args.steps, dist=env,
            on_step=on_step)
    ada = [None] * env.world_size  # each rank's ADA p and r_t (train.ada): all-reduced, so equal
    if env.enabled:
        dist.all_gather_object(ada, r.ada)
    else:
        ada = [r.ada]
    if env.is_main:
        nets = {"g": r.g_raw or r.g, **{f"d{k}" if k else "d": d for k, d in enumerate(r.ds)}, **({"e": r.e} if r.e is not None else {})}
        torch.save({"agree": agree, "hashes": hashes, "world_size": env.world_size, "ada": ada,
                    "state": {k: {n: t.cpu() for n, t in m.state_dict().items()} for k, m in nets.items()}},
                   args.out / "dist.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main()
