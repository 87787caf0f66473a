"""Data-parallel training under torchrun: PyTorch DDP, NCCL on GPUs and gloo on CPU.

``train.nproc: N`` (N > 1) makes the train stage re-launch itself under
``python -m torch.distributed.run --standalone --nproc-per-node N`` (:func:`launch`), so
dvc.yaml runs the same command whatever the process count. Each process then joins the group
(:func:`init_from_env`) and trains with DistributedDataParallel G/D(/E).

Semantics (see the loop): ``train.batch_size`` and the batch schedule are *global* batch sizes.
Every rank computes the same epoch order (seeded by seed and epoch) and takes its own contiguous
slice of each global batch, so over an epoch the ranks' shards are disjoint and together are the
single-process run's batches. The noise of a step is drawn for the whole global batch and
sliced the same way. With BatchNorm synced (``train.sync_bn``) a run with N processes computes
the single-process run's step up to the summation order of the gradient all-reduce.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from dcgan.core.errors import SettingError


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (its length must divide evenly)."""
        if not self.enabled:
            return batch
        n = batch.shape[0] // self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]

    def all_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t)
            t /= self.world_size
        return t

    def all_max(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (a collective: all ranks call it)."""
        if not self.enabled:
            return flag
        return bool(self.all_max(torch.tensor(int(flag), device=device)))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = DistEnv()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device, expected: int) -> tuple[DistEnv, torch.device]:
    """Join the torchrun process group (if this process was started by torchrun).

    Returns the rank's view and its device (``cuda:LOCAL_RANK`` on CUDA). ``expected`` is
    ``train.nproc``: a world of another size (torchrun started by hand with other numbers) is
    an error, since the checkpoints and params would not describe the run.
    """
    world = env_world_size()
    if world != expected:
        raise SettingError("nproc", f"is {expected} but this process runs in a torchrun world of "
                                    f"{world}: set {{nproc}}: {world}, or let the train stage launch torchrun")
    if world == 1:
        return SINGLE, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SettingError("nproc", f"{world} needs {world} GPUs on this machine; "
                                        f"{torch.cuda.device_count()} visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return DistEnv(rank, world, local_rank), device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, module: str, argv: list[str]) -> int:
    """Run ``python -m module argv`` in ``nproc`` processes under torchrun; returns its exit code.

    On CPU each process gets ``cores // nproc`` threads (torchrun would give it one) unless
    OMP_NUM_THREADS is set.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "--module", module, *argv]
    print(f"train: {nproc} processes under torchrun (OMP_NUM_THREADS={env['OMP_NUM_THREADS']})",
          file=sys.stderr, flush=True)
    return subprocess.call(cmd, env=env)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across all ranks.

    For CPU processes (gloo), where ``torch.nn.SyncBatchNorm`` refuses to run; on CUDA the
    loop uses PyTorch's own. Sum and sum of squares are all-reduced with the differentiable
    ``torch.distributed.nn.all_reduce``, so gradients flow through the global statistics as
    in a single process holding the whole batch. Same state dict as BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn import all_reduce

        c = x.shape[1]
        xf = x.float()
        count = torch.full((1,), xf.numel() / c, device=x.device)
        stats = all_reduce(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_sync_bn(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> synced ones (PyTorch's on CUDA, :class:`SyncBatchNorm2d` elsewhere)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats).to(device)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_sync_bn(child, device)
    return module


def wrap(module: nn.Module | None, env: DistEnv, device: torch.device) -> nn.Module | None:
    """DistributedDataParallel around ``module`` (it broadcasts rank 0's weights on creation)."""
    if module is None or not env.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    # channels_last weights with one input channel have two valid stride layouts; DDP warns that
    # the gradient's differs from its bucket's (a copy, not an error) on every step
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # buffers (BatchNorm running statistics) are synced from rank 0 at each forward (the default)
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)
