"""params.yaml's ``base`` section: settings every stage shares."""

from __future__ import annotations

from typing import ClassVar, Literal

from dcgan.app.params.typed import Int, Section, fail, section


@section
class BaseParams(Section):
    """Settings shared by every stage."""

    SECTION: ClassVar[str] = "base"

    seed: Int
    """Master seed; every stage derives its own random streams from it."""
    device: Literal["auto", "cpu", "cuda", "mps"]
    """Where torch runs: auto picks cuda > mps > cpu."""

    def check(self, s: str) -> None:
        if self.seed < 0:
            fail(f"{s}.seed", "must be >= 0", self.seed)
