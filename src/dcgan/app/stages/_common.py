"""What every stage shares: argument parsing, params loading and user-error reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from dcgan.app.params.typed import load_sections
from dcgan.core.errors import UserError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--params", default="params.yaml", help="params file (all sections)")
    return p


T = TypeVar("T")


def params_from(args: argparse.Namespace, reads: type[T]) -> T:
    """The params sections this stage reads, as its own frozen dataclass (``Reads``: one field
    per section, ``train: TrainParams``): a stage imports only those sections' modules, so an
    edit to another one does not rerun it."""
    return load_sections(args.params, reads)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage's main: a UserError becomes one 'error:' line and exit code 2.

    Anything else is a bug and propagates with its full traceback.
    """
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
