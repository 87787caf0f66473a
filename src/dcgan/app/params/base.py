"""params.yaml's ``base`` section: settings every stage shares."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from dcgan.app.params.typed import Int, Section, at_least, section


@section
class BaseParams(Section):
    """Settings shared by every stage."""

    SECTION: ClassVar[str] = "base"

    seed: Annotated[Int, at_least(0)]
    """Master seed; every stage derives its own random streams from it."""
    device: Literal["auto", "cpu", "cuda", "mps"]
    """Where torch runs: auto picks cuda > mps > cpu."""
