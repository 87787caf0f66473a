"""Where a training step's random numbers come from (the one module that owns them): the noise
(:func:`draw_noise`), each step's seeded generators (:func:`draw_generators`,
:func:`step_generators`), and the draw sources a step asks (:class:`DrawBank`).

Every draw of a step (DiffAugment's shifts, cutouts and colour factors, ADA's transforms,
WGAN-GP's interpolation weights) comes from a seeded CPU generator per (purpose, discriminator, step), so a run and its
resume draw the same numbers. Two sources hand them out:

- :class:`LiveDraws`: draw when asked, on the CPU, and copy to the device (the eager step).
- :class:`TapeDraws`: hand out slices of one device buffer that was filled before the step
  (:func:`rehearse` draws the same numbers, in the same order, from the same generators). A step
  that reads only from the tape never waits on the host: what a captured (CUDA graph) step needs.

The tape's layout (:class:`Schema`: which purpose and discriminator asked for what, in order) is
recorded from one eager step with a :class:`Recorder`; it depends only on the batch size, the
image shape and whether the step regularises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dcgan.core.seeding import generator_for
from dcgan.networks.gan import sample_prior
from dcgan.training.distributed import DistEnv

Key = tuple[str, int]
"""(purpose, discriminator index): e.g. ("diffaug", 0), ("gp", 1)."""


@dataclass(frozen=True)
class Call:
    key: Key
    kind: str  # "rand" (float32 in [0, 1)), "randn" (float32, standard normal) or "randint" (int64 in [low, high))
    shape: tuple[int, ...]
    low: int = 0
    high: int = 0

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class Draws:
    """The source of one (purpose, discriminator)'s numbers for one step."""

    def rand(self, *shape: int) -> torch.Tensor:
        raise NotImplementedError

    def randn(self, *shape: int) -> torch.Tensor:
        raise NotImplementedError

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        raise NotImplementedError


class LiveDraws(Draws):
    """Draw from ``gen`` on the CPU when asked; return the numbers on ``device``."""

    def __init__(self, gen: torch.Generator, device: torch.device):
        self.gen, self.device = gen, device

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen).to(self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen).to(self.device)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=self.gen).to(self.device)


class Recorder(Draws):
    """LiveDraws that also note each call (for the step's :class:`Schema`)."""

    def __init__(self, inner: Draws, key: Key, calls: list[Call]):
        self.inner, self.key, self.calls = inner, key, calls

    def rand(self, *shape: int) -> torch.Tensor:
        self.calls.append(Call(self.key, "rand", tuple(shape)))
        return self.inner.rand(*shape)

    def randn(self, *shape: int) -> torch.Tensor:
        self.calls.append(Call(self.key, "randn", tuple(shape)))
        return self.inner.randn(*shape)

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        self.calls.append(Call(self.key, "randint", tuple(shape), low, high))
        return self.inner.randint(low, high, shape)


@dataclass(frozen=True)
class Schema:
    """The draws of one kind of step, in the order the step asks for them."""

    calls: tuple[Call, ...]

    def sizes(self) -> tuple[int, int]:
        """(float32 numbers, int64 numbers) the tape holds."""
        return (sum(c.numel for c in self.calls if c.kind != "randint"),
                sum(c.numel for c in self.calls if c.kind == "randint"))


def rehearse(schema: Schema, generator: Callable[[Key], torch.Generator],
             floats: torch.Tensor, ints: torch.Tensor) -> None:
    """Draw the schema's numbers into ``floats``/``ints`` (CPU, e.g. pinned): each key's calls in
    order from ``generator(key)``, exactly the numbers :class:`LiveDraws` would give."""
    gens: dict[Key, torch.Generator] = {}
    fo = io = 0
    for c in schema.calls:
        gen = gens.get(c.key) or gens.setdefault(c.key, generator(c.key))
        if c.kind != "randint":
            draw = torch.rand if c.kind == "rand" else torch.randn
            floats[fo:fo + c.numel] = draw(*c.shape, generator=gen).flatten()
            fo += c.numel
        else:
            ints[io:io + c.numel] = torch.randint(c.low, c.high, c.shape, generator=gen).flatten()
            io += c.numel


class TapeDraws(Draws):
    """Hand out the tape's numbers for ``key``: views of the device buffers ``floats``/``ints``
    at the offsets the schema gives (the same views at every step: static addresses)."""

    def __init__(self, schema: Schema, key: Key, floats: torch.Tensor, ints: torch.Tensor):
        self.views: list[torch.Tensor] = []
        fo = io = 0
        for c in schema.calls:
            if c.kind != "randint":
                view, fo = floats[fo:fo + c.numel].view(c.shape), fo + c.numel
            else:
                view, io = ints[io:io + c.numel].view(c.shape), io + c.numel
            if c.key == key:
                self.views.append(view)
        self.calls = [c for c in schema.calls if c.key == key]
        self.at = 0

    def _next(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        c = self.calls[self.at]
        if c.kind != kind or c.shape != shape:
            raise RuntimeError(f"the step asked {kind}{shape} where its schema has {c.kind}{c.shape}")
        self.at += 1
        return self.views[self.at - 1]

    def rand(self, *shape: int) -> torch.Tensor:
        return self._next("rand", tuple(shape))

    def randn(self, *shape: int) -> torch.Tensor:
        return self._next("randn", tuple(shape))

    def randint(self, low: int, high: int, shape: tuple[int, ...]) -> torch.Tensor:
        return self._next("randint", tuple(shape))


def per_d_generator(seed: int, purpose: str, k: int, *parts: object) -> torch.Generator:
    """Discriminator k's generator for ``purpose``: D0's is the single-D run's."""
    return generator_for(seed, purpose, *parts) if k == 0 else generator_for(seed, purpose, *parts, "d", k)


PER_IMAGE = ("diffaug", "ada")
"""Purposes whose draws are per image of this rank's share (augmentations): drawn per rank."""


def step_generators(seed: int, step: int, rank: tuple = ()) -> Callable[[Key], torch.Generator]:
    """The seeded generator of each (purpose, discriminator) at ``step``: DiffAugment's and ADA's
    draws per rank (``rank``: () alone, or ("rank", r) under DDP); WGAN-GP's weights for the
    global batch."""
    def make(key: Key) -> torch.Generator:
        purpose, k = key
        return per_d_generator(seed, purpose, k, step, *(rank if purpose in PER_IMAGE else ()))
    return make


class DrawBank:
    """A step's draw sources, one per (purpose, discriminator), each made on first use and then
    drawn from in order."""

    def __init__(self, make: Callable[[Key], Draws]):
        self.make, self.sources = make, {}

    @classmethod
    def live(cls, generators: Callable[[Key], torch.Generator], device: torch.device) -> DrawBank:
        return cls(lambda key: LiveDraws(generators(key), device))

    def __call__(self, purpose: str, k: int) -> Draws:
        key = (purpose, k)
        if key not in self.sources:
            self.sources[key] = self.make(key)
        return self.sources[key]


def draw_noise(seed: int, step: int, bs: int, latent_dim: int, prior: str, dist: DistEnv) -> torch.Tensor:
    """This rank's noise for ``step`` (a global batch of ``bs``), on the CPU."""
    return dist.shard(sample_prior(bs, latent_dim, prior, generator_for(seed, "z", step)))


def draw_generators(seed: int, step: int, dist: DistEnv) -> Callable[[Key], torch.Generator]:
    """The step's seeded generator per (purpose, discriminator); the augmentations' per rank."""
    return step_generators(seed, step, () if not dist.enabled else ("rank", dist.rank))
