"""Issue 38: the metric code's digest in the protocol moves with the code, not its comments."""

from __future__ import annotations

import sys

from dcgan.core.code import modules_digest, source_digest

FID = '''"""Frechet distance."""
import numpy as np


def frechet(a, b):
    """The distance."""
    return float(np.sum((a - b) ** 2))  # squared
'''


def digest_of(tmp_path, text: str) -> str:
    (tmp_path / "fid.py").write_text(text)
    return source_digest([tmp_path / "fid.py"])


def test_comments_docstrings_and_layout_do_not_count_code_does(tmp_path):
    base = digest_of(tmp_path, FID)
    assert len(base) == 12
    reworded = FID.replace('"""The distance."""', '"""The squared distance, summed."""').replace("# squared", "")
    assert digest_of(tmp_path, reworded.replace("\n\n\n", "\n\n")) == base
    assert digest_of(tmp_path, FID.replace("** 2", "** 2 / 2")) != base  # another metric
    assert digest_of(tmp_path, FID.replace("np.sum", "np.mean")) != base


def test_the_digest_of_loaded_modules_is_their_source_s(tmp_path):
    import dcgan.metrics.fid as fid_module

    assert modules_digest([fid_module, sys]) == source_digest([fid_module.__file__])  # builtins have no source

