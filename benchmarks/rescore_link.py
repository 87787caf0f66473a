"""What re-scoring the champion costs in disk and seconds to read the candidate's prepared data:
a copy (``export_files``) against hard links from the DVC cache (``export_files(link=True)``),
on a DVC project whose ``data/prepared`` is CelebA-sized by default (202,599 images at 64x64x3
in uint8: 2.49 GB of train.npy, plus a holdout).

    python benchmarks/rescore_link.py                   # CelebA size, in a temporary folder
    python benchmarks/rescore_link.py --images 20000    # smaller
    python benchmarks/rescore_link.py --dir /big/disk   # where the project is made

Prints one JSON line: bytes written and seconds for each way, and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dcgan.app.retrain import export_files


def disk_bytes(folder: Path) -> int:
    """Bytes this folder's files take that no other name shares (hard links count 0)."""
    total = 0
    for f in folder.rglob("*"):
        st = f.lstat()
        if f.is_file() and st.st_nlink == 1:
            total += st.st_blocks * 512
    return total


def write_images(path: Path, n: int, size: int, chunk: int = 4096) -> None:
    """A uint8 (n, 3, size, size) .npy written in chunks (no n-sized array in memory, no map)."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, 3, size, size)}
        np.lib.format.write_array_header_1_0(fh, header)
        for i in range(0, n, chunk):
            fh.write(rng.integers(0, 256, size=(min(chunk, n - i), 3, size, size), dtype=np.uint8).tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=202_599, help="training images (default: CelebA's count)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--dir", default=None, help="where to make the project (default: a temporary folder)")
    ap.add_argument("--cache-type", default="reflink,copy",
                    help="the project's dvc cache.type: DVC's default (reflink,copy) copies on ext4; this "
                         "repo ships hardlink,copy, with which DVC links either way")
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="rescore-link-", dir=args.dir))
    root = top / "project"
    try:
        (root / "data/prepared").mkdir(parents=True)
        write_images(root / "data/prepared/train.npy", args.images, args.size)
        write_images(root / "data/prepared/holdout.npy", max(args.images // 100, 1), args.size)
        (root / "data/prepared/meta.json").write_text("{}")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "cache.type", args.cache_type],
                    ["dvc", "add", "-q", "data/prepared"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "data"]):
            subprocess.run(cmd, cwd=root, env=env, check=True)
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        row = {"images": args.images, "size": args.size, "cache_type": args.cache_type,
               "data_bytes": sum(f.stat().st_size for f in (root / "data/prepared").iterdir())}
        for way, link in (("copy", False), ("link", True)):
            dest = top / way
            t0 = time.perf_counter()
            export_files(root, rev, ["data/prepared"], dest, link=link)
            row[f"{way}_s"] = round(time.perf_counter() - t0, 2)
            row[f"{way}_bytes_written"] = disk_bytes(dest)
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(row))
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
