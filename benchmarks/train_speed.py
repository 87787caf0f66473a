"""Training speed of the project's loop next to the plain PyTorch DCGAN example's loop.

    python benchmarks/train_speed.py                   # all three configs, shipped params (about 5 minutes on 2 cores)
    python benchmarks/train_speed.py --configs example --rounds 2 --steps 8
    python benchmarks/train_speed.py --precision bf16  # the project loop under bf16 autocast
    python benchmarks/train_speed.py --compile default --warmup 5  # torch.compile (compiles in the warm-up)

One process, one run: for each config the two loops take turns (reference, project, reference,
project, ...) for ``--rounds`` rounds of ``--steps`` timed steps each, after ``--warmup`` steps
that are not timed, so that machine noise hits both. Prints images/s of each loop per round,
the median per loop, and the ratio project / reference.

The reference loop is written here after the official example (pytorch/examples, dcgan/main.py):
its Generator and Discriminator (ngf, ndf, nz=100, BatchNorm, Sigmoid output and BCELoss),
Adam(lr 2e-4, betas (0.5, 0.999)), a DataLoader over a TensorDataset with shuffle, fp32, and
the per-step ``.item()`` calls it makes for its log line. No tricks.

The project's side is ``dcgan.training.loop.train`` itself (what the train stage runs, with its
logging, checkpoint schedule and derived-seed draws), timed between two of its own log steps.
Its number format is the shipped params' ``train.precision`` unless ``--precision`` says
otherwise; ``auto`` is resolved as the train stage resolves it (bf16 where the hardware runs
it fast, else fp32), and the header line says what it became and why. The fake dataset holds
more images than the warm-up and timed steps take, so no epoch ends (fixed-noise grid,
end-of-epoch checkpoint) fall in either loop's timed window; the harness checks this.
Progress bars are off (``TQDM_DISABLE=1`` unless set).

Configs:
- ``example``: the example's default, 64x64x3, ngf = ndf = 64, nz = 100, batch 64, plain DCGAN
  (BCE, no penalty, no EMA) on both sides;
- ``default``: the project's params.yaml (train section, prepare.image_size/channels) against
  the reference loop at the same image size, widths, latent size and batch size; the project
  side pays for its training techniques (R1's second backward pass every ``train.reg_every`` steps, the EMA);
- ``default_plain``: the same with every technique off, so the gap to the reference is what the
  pipeline itself (logging, checkpoints, derived seeds, in-memory batches) costs or saves.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm at import: keep the loop's bar out of the table

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.app.recipe import plan_run  # noqa: E402
from dcgan.training.loop import Callbacks, train  # noqa: E402
from dcgan.training.settings import Run  # noqa: E402

CPU = torch.device("cpu")

# ---------------------------------------------------------------------------------------------
# the reference: the official example's networks and loop


class RefGenerator(nn.Module):
    """The example's netG, generalised to any power-of-two size (64 gives the example exactly)."""

    def __init__(self, nz: int, ngf: int, nc: int, size: int):
        super().__init__()
        n_up = int(np.log2(size)) - 3  # 64 -> 3 stride-2 blocks after the 4x4 projection
        ch = ngf * 2 ** n_up
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch),
                                   nn.ReLU(True)]
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf: int, nc: int, size: int):
        super().__init__()
        n_down = int(np.log2(size)) - 3
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Reference:
    """The example's training loop, resumable between timing blocks (iterator kept open)."""

    def __init__(self, images: np.ndarray, nz: int, ngf: int, ndf: int, batch: int,
                 device: torch.device = CPU):
        n, nc, size, _ = images.shape
        self.device = device
        data = torch.from_numpy(images).float().div(127.5).sub(1.0)
        self.loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=batch,
                                                  shuffle=True, drop_last=True)
        self.it = iter(self.loader)
        self.netG, self.netD = RefGenerator(nz, ngf, nc, size), RefDiscriminator(ndf, nc, size)
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.netG.to(device)
        self.netD.to(device)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.nz, self.batch = nz, batch

    def step(self) -> None:
        try:
            (real,) = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            (real,) = next(self.it)
        real = real.to(self.device)  # as the example does with each batch
        b = real.size(0)
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        output = self.netD(real).view(-1)
        err_d_real = self.criterion(output, label)
        err_d_real.backward()
        d_x = output.mean().item()
        noise = torch.randn(b, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach()).view(-1)
        err_d_fake = self.criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = output.mean().item()
        err_d = err_d_real + err_d_fake
        self.optD.step()
        # (2) update G: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake).view(-1)
        err_g = self.criterion(output, label)
        err_g.backward()
        d_g_z2 = output.mean().item()
        self.optG.step()
        self.last = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)  # the example prints these

    def images_per_s(self, warmup: int, steps: int) -> float:
        for _ in range(warmup):
            self.step()
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return steps * self.batch / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# the project's loop


def timed_window(run: Run, images: np.ndarray, warmup: int, steps: int, seed: int = 0,
                 device: torch.device = CPU, dist=None) -> tuple[float, int]:
    """Run ``train`` for warmup + steps steps of ``run`` (as :func:`dcgan.app.recipe.plan_run`
    resolves it): (seconds per step between log step ``warmup`` and the end, epoch ends inside
    that window). An epoch end is seen by its fixed-noise grid."""
    run = dataclasses.replace(run, eval_every=0, log_every=warmup if warmup else steps, epochs=10**6)
    stamps: dict[int, float] = {}
    epoch_ends: list[int] = []

    class Clock:
        def metric(self, name: str, value: float, step: int) -> None:
            stamps.setdefault(step, time.perf_counter())

        def image(self, name: str, grid, step: int) -> None:
            epoch_ends.append(step)

    from dcgan.training.distributed import SINGLE

    class StopAfter(Callbacks):
        def __init__(self, n: int):
            self.n = n

        def should_stop(self, step: int) -> bool:
            return step >= self.n

    with tempfile.TemporaryDirectory() as tmp:
        if dist is not None and dist.enabled:  # every rank must use rank 0's folder
            box = [tmp]
            torch.distributed.broadcast_object_list(box)
            tmp = box[0]
        t0 = time.perf_counter()
        train(run=run, seed=seed, images=images, device=device, ckpt_dir=tmp, fingerprint="bench", logger=Clock(),
              log=lambda m: None, dist=dist or SINGLE, callbacks=StopAfter(warmup + steps))
        sync(device)
        end = time.perf_counter()
    return (end - stamps.get(warmup, t0)) / steps, sum(s > warmup for s in epoch_ends)


def seconds_per_step(run: Run, images: np.ndarray, warmup: int, steps: int, seed: int = 0,
                     device: torch.device = CPU, dist=None) -> float:
    """Seconds per training step after ``warmup`` steps (epoch ends in the window counted in)."""
    return timed_window(run, images, warmup, steps, seed, device, dist)[0]


def project_images_per_s(run: Run, images: np.ndarray, warmup: int, steps: int, seed: int,
                         device: torch.device = CPU) -> float:
    """Images/s of the project's loop; refuses a window that holds an epoch end (the reference's
    window has none either: its DataLoader restarts cost nothing alike)."""
    batch = run.batch_schedule[-1][1] if run.batch_schedule else run.batch_size
    sps, ends = timed_window(run, images, warmup, steps, seed, device)
    if ends:
        raise ValueError(f"{ends} epoch end(s) in the timed window: use more images than "
                         f"(warmup + steps) x batch = {(warmup + steps) * batch}")
    return batch / sps


def step_flops(run: Run, images: np.ndarray, device: torch.device = CPU) -> float:
    """FLOPs of one training step per image (torch.utils.flop_counter: convolutions and matmuls,
    forward and backward, both updates), counted on one eager step."""
    from torch.utils.flop_counter import FlopCounterMode

    from dcgan.training.batches import TensorSource
    from dcgan.training.distributed import SINGLE
    from dcgan.training.loop import epoch_order, make_batch, make_objective, train_step
    from dcgan.training.nets import build_nets
    from dcgan.training.settings import Setup

    bs = run.batch_size
    s = Setup(dataclasses.replace(run, compile="none"), 0, device, SINGLE)
    nets = build_nets(s)
    source = TensorSource(torch.from_numpy(images[:bs]).to(device))
    b = make_batch(s, source, epoch_order(0, 0, bs).to(device), 0, 0, bs)
    with FlopCounterMode(display=False) as counter:
        train_step(nets, make_objective(s, nets), b)
    return counter.get_total_flops() / bs


def kernel_ms_per_step(run: Run, images: np.ndarray, warmup: int, steps: int, device: torch.device) -> float:
    """GPU kernel time per step (torch.profiler's CUDA activity, summed over kernels) for
    ``steps`` steps after ``warmup`` (compilation and capture fall in the warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CUDA])

    class Window(Callbacks):
        def after_step(self, step, nets):
            if step == warmup:
                torch.cuda.synchronize(device)
                prof.start()
            elif step == warmup + steps:
                torch.cuda.synchronize(device)
                prof.stop()

        def should_stop(self, step):
            return step >= warmup + steps

    run = dataclasses.replace(run, eval_every=0, log_every=warmup + steps, epochs=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        train(run=run, seed=0, images=images, device=device, ckpt_dir=tmp, fingerprint="profile",
              log=lambda m: None, callbacks=Window())
    events = prof.key_averages()
    total_us = sum(getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
                   for e in events)
    return total_us / 1000 / steps


def images_for(batch: int, warmup: int, steps: int) -> int:
    """Fake dataset size: one epoch outlasts the warm-up and the timed steps."""
    return max((warmup + steps + 1) * batch, 640)


# ---------------------------------------------------------------------------------------------


def configs(params) -> dict[str, tuple]:
    """name -> (project train params as given: ``auto`` keys left for :func:`plan_run`, image
    shape (C, S), latent, widths, batch)."""
    t = params.train
    plain = dict(loss="bce", r1_gamma=0.0, gp_lambda=0.0, ema_decay=0.0, diffaug=(), encoder=False,
                 d_spectral=False, batch_schedule=(), g_norm="batch", d_norm="batch", prior="normal")
    example = dataclasses.replace(t, **plain, batch_size=64, latent_dim=100, g_width=64, d_width=64)
    default_bs = t.batch_size if t.batch_size != "auto" else 64
    default = dataclasses.replace(t, batch_size=default_bs)
    default_plain = dataclasses.replace(default, **plain)
    shape = (params.prepare.channels, params.prepare.image_size)
    return {
        "example": (example, (3, 64), 100, 64, 64, 64),
        "default": (default, shape, t.latent_dim, t.g_width, t.d_width, default_bs),
        "default_plain": (default_plain, shape, t.latent_dim, t.g_width, t.d_width, default_bs),
    }


def planned(given, images: np.ndarray, device: torch.device) -> Run:
    """The run the train stage would plan for ``given`` on ``images`` (every ``auto`` decided by
    :func:`dcgan.app.recipe.plan_run`: precision, compile, the recipe for the data's kind)."""
    return plan_run(given, images, images.shape[-1], images.shape[1], None, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["example", "default", "default_plain"], choices=["example", "default", "default_plain"])
    ap.add_argument("--rounds", type=int, default=3, help="alternations of reference and project")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per block (0: 12 example, 60 default)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each block")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--precision", choices=["params", "auto", "fp32", "bf16", "fp16"], default="params",
                    help="the project loop's train.precision (default: as in params.yaml; auto is "
                         "resolved for this machine as the train stage does); the reference stays fp32")
    ap.add_argument("--channels-last", choices=["params", "on", "off"], default="params",
                    help="the project loop's train.channels_last (default: as in params.yaml)")
    ap.add_argument("--compile", choices=["params", "none", "default", "reduce-overhead", "max-autotune", "graph",
                                          "auto"],
                    default="params", help="the project loop's train.compile (compilation and capture fall in the "
                                           "warm-up); graph: the whole step as one CUDA graph")
    ap.add_argument("--batch", type=int, default=0, help="batch size of both loops (0: the config's)")
    ap.add_argument("--profile", action="store_true",
                    help="also the project step's GPU kernel time (torch.profiler), its FLOPs per image "
                         "(flop counter) and the fraction of --peak-tflops reached")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the device's dense peak for the run's number format (H200 bf16: about 989)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both loops run there)")
    args = ap.parse_args()
    params = load_params(args.params)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the example does
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    for name in args.configs:
        p, (c, s), nz, ngf, ndf, batch = configs(params)[name]
        if args.batch:  # the same workload at another batch size, for both loops
            batch = args.batch
            p = dataclasses.replace(p, batch_size=batch, batch_schedule=())
        p = dataclasses.replace(
            p, channels_last=p.channels_last if args.channels_last == "params" else args.channels_last == "on",
            precision=p.precision if args.precision == "params" else args.precision,
            compile=p.compile if args.compile == "params" else args.compile)
        steps = args.steps or (12 if name == "example" else 80)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (images_for(batch, args.warmup, steps), c, s, s), dtype=np.uint8)
        run = planned(p, images, device)
        ref = Reference(images, nz, ngf, ndf, batch, device)
        o = run.objective
        print(f"\n[{name}] {c}x{s}x{s}, ngf={ngf} ndf={ndf} nz={nz}, batch {batch}; "
              f"project: loss={o.loss} r1={o.r1_gamma} ema={run.ema_decay} diffaug={list(o.diffaug)} "
              f"precision={run.precision} ({run.decisions[0]}) channels_last={run.channels_last} "
              f"compile={run.compile}")
        rates: dict[str, list[float]] = {"reference": [], "project": []}
        for r in range(args.rounds):
            rates["reference"].append(ref.images_per_s(args.warmup, steps))
            rates["project"].append(project_images_per_s(run, images, args.warmup, steps, seed=r,
                                                         device=device))
            print(f"  round {r + 1}: reference {rates['reference'][-1]:7.1f} img/s   "
                  f"project {rates['project'][-1]:7.1f} img/s", flush=True)
        ref_m, proj_m = (statistics.median(rates[k]) for k in ("reference", "project"))
        print(f"  median: reference {ref_m:.1f} img/s, project {proj_m:.1f} img/s, "
              f"ratio {proj_m / ref_m:.2f}x")
        if args.profile:
            flops = step_flops(run, images, device)
            line = (f"  step: {flops / 1e9:.2f} GFLOP per image; at {proj_m:.0f} img/s "
                    f"{flops * proj_m / 1e12:.2f} TFLOP/s = {flops * proj_m / (args.peak_tflops * 1e12):.2%} "
                    f"of {args.peak_tflops:g} TFLOP/s")
            if device.type == "cuda":
                ms = kernel_ms_per_step(run, images, args.warmup, steps, device)
                line += f"; GPU kernels {ms:.2f} ms per step vs {batch / proj_m * 1e3:.2f} ms wall"
            print(line)


if __name__ == "__main__":
    main()
