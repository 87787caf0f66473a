"""The run's optimizers in one owner (:class:`Optimizers`): Adam for G, for each discriminator
and for E, built from the run's ``lr``/``d_lr``/``beta1``/``beta2``, their learning rate set at
every step from the batch size (:func:`~dcgan.training.schedule.lr_for`), kept as a device
tensor for a captured step, and restored on resume in this run's form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from dcgan.training.schedule import lr_for
from dcgan.training.settings import Run


class Optimizers:
    """Adam for G (``g``), the K discriminators (``ds``) and E (``e``, or None)."""

    def __init__(self, run: Run, device: torch.device, g: nn.Module, ds: list[nn.Module], e: nn.Module | None):
        self.run = run
        # a captured step (CUDA graph) needs Adam's step count and learning rate in device memory
        capturable = run.compile == "graph" and device.type == "cuda"

        def adam(params, lr: float) -> torch.optim.Adam:
            # foreach: one fused kernel launch per param group instead of one per tensor
            if capturable:
                return torch.optim.Adam(params, lr=torch.tensor(lr, device=device), betas=(run.beta1, run.beta2),
                                        foreach=True, capturable=True)
            return torch.optim.Adam(params, lr=lr, betas=(run.beta1, run.beta2), foreach=True)

        d_lr = run.lr if run.d_lr is None else run.d_lr
        self.g = adam(g.parameters(), run.lr)
        self.ds = [adam(d.parameters(), d_lr) for d in ds]
        self.e = adam(e.parameters(), run.lr) if e is not None else None
        self.d_lr_scale = d_lr / run.lr
        """The discriminators' lr over G's (d_lr / lr; 1 without TTUR)."""

    def __iter__(self) -> Iterator[torch.optim.Adam]:
        yield from (o for o in (self.g, *self.ds, self.e) if o is not None)

    def set_for_batch(self, bs: int) -> None:
        """The rates for a step of ``bs`` images: ``lr`` scaled from the base batch size by the
        run's ``lr_scaling``; the discriminators' in proportion (``d_lr_scale``)."""
        self.set_lr(lr_for(bs, self.run.base_batch_size, self.run.lr, self.run.lr_scaling))

    def set_lr(self, lr: float) -> None:
        """G's (and E's) learning rate; the discriminators get ``lr * d_lr_scale``."""
        for opt in self:
            value = lr * self.d_lr_scale if opt in self.ds and self.d_lr_scale != 1.0 else lr
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):  # a captured step reads it from there
                    group["lr"].fill_(value)
                else:
                    group["lr"] = value

    def hold_lr_on(self, device: torch.device) -> None:
        """Every learning rate as a tensor on ``device``: a replayed CUDA graph reads it there."""
        for opt in self:
            for group in opt.param_groups:
                if not isinstance(group["lr"], torch.Tensor):
                    group["lr"] = torch.tensor(float(group["lr"]), device=device)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``opt_g``, ``opt_d`` (one per discriminator) and ``opt_e``."""
        return {"opt_g": self.g.state_dict(), "opt_d": [o.state_dict() for o in self.ds],
                **({"opt_e": self.e.state_dict()} if self.e is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Optimizer state from a checkpoint, whichever device and step mode saved it."""
        load_optimizer(self.g, state["opt_g"])
        for opt, saved in zip(self.ds, state["opt_d"], strict=True):
            load_optimizer(opt, saved)
        if self.e is not None:
            load_optimizer(self.e, state["opt_e"])


def load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """``opt.load_state_dict(saved)``, then this run's form back on every group: a captured step
    (CUDA graph) needs ``capturable`` Adam with its lr and step counts in device memory, an
    eager one plain Adam with a float lr and step counts on the host. A checkpoint saved in the
    other form (a CPU run resumed on CUDA with compile graph, or the reverse) would otherwise
    make Adam refuse its first step. The numbers themselves are unchanged."""
    forms = [(g.get("capturable", False), g["lr"]) for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, (capturable, lr) in zip(opt.param_groups, forms, strict=True):
        value = float(group["lr"])  # the saved lr (a schedule may have changed it)
        if isinstance(lr, torch.Tensor):
            group["lr"] = lr.fill_(value)  # this run's tensor: a captured step reads it
        else:
            group["lr"] = value
        group["capturable"] = capturable
        for param in group["params"]:
            st = opt.state.get(param, {})
            if isinstance(st.get("step"), torch.Tensor):
                st["step"] = st["step"].to(param.device if capturable else "cpu", torch.float32)
