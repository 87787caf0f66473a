"""Memory and time of every stage as the dataset grows: does anything scale with N?

Writes synthetic CelebA-shaped JPEGs (178x218 RGB, smooth shapes: about CelebA's file size)
once for the largest N, then, for each N, runs every stage as the pipeline does (the stage
modules, one process each, under ``/usr/bin/time -v``): prepare (``prepare.max_images: N``),
augment, evaluator (Inception with a weights file this script builds: random values, since
memory and time are measured here, not the metric), train for a fixed number of steps
(``train.max_steps``), sample, evaluate. Peak RSS and wall time per stage go to
``reports/data_scale.json`` and a plot to ``docs/figures/data_scale.png``.

Acceptance: each stage's peak RSS at the largest N is at most 1.2x its peak at the smallest,
and prepare's time per image does not grow with N.

    python benchmarks/data_scale.py                      # N = 10k, 40k, 160k (about an hour here)
    python benchmarks/data_scale.py --n 2000 8000        # a quick look
    python benchmarks/data_scale.py --n 202599 --single  # the full CelebA size, one run

``--lmdb 1000000`` instead measures prepare and augment on a synthetic LSUN-style LMDB of that
many small JPEGs (the LMDB loader's path at LSUN scale).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STAGES = ("prepare", "augment", "evaluator", "train", "sample", "evaluate")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = Path("/proc/cpuinfo").read_text()
                kind = "AVX-512 BF16" if "avx512_bf16" in flags else ("AVX-512" if "avx512f" in flags else "AVX2")
                return f"{name} ({kind}, {os.cpu_count()} CPUs)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ------------------------------------------------------------------------- synthetic data


def face_like(i: int, h: int = 218, w: int = 178) -> np.ndarray:
    """A smooth RGB image (gradient, an ellipse, two eyes): JPEG-compresses like a photo."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 220, 3).astype(np.float32)
    tilt = rng.uniform(-0.4, 0.4, 3).astype(np.float32)
    img = base[None, None, :] + tilt[None, None, :] * (yy[..., None] - h / 2)
    cy, cx = h * rng.uniform(0.45, 0.55), w * rng.uniform(0.45, 0.55)
    ry, rx = h * rng.uniform(0.25, 0.35), w * rng.uniform(0.25, 0.35)
    face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    img[face] = rng.uniform(120, 240, 3)
    for ex in (-0.35, 0.35):
        eye = ((yy - cy + 0.25 * ry) / 8) ** 2 + ((xx - cx - ex * rx) / 12) ** 2 < 1
        img[eye] = rng.uniform(0, 60, 3)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_jpegs(args: tuple[Path, int, int]) -> int:
    from PIL import Image

    folder, start, stop = args
    for i in range(start, stop):
        path = folder / f"{i + 1:06d}.jpg"
        if not path.exists():
            Image.fromarray(face_like(i)).save(path, quality=90)
    return stop - start


def make_celeba(root: Path, n: int, workers: int) -> Path:
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    have = len(os.listdir(folder))
    if have >= n:
        return root
    t = time.perf_counter()
    chunks = [(folder, a, min(a + 2000, n)) for a in range(have, n, 2000)]
    with mp.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_jpegs, chunks):
            pass
    print(f"data_scale: wrote {n - have} synthetic CelebA JPEGs in {time.perf_counter() - t:.0f}s", flush=True)
    return root


def corrupt_some(root: Path, n: int, k: int) -> list[str]:
    """Truncate k of the n JPEGs (spread over the last fifth) to a few bytes: prepare must skip
    and count them."""
    folder = root / "celeba" / "img_align_celeba"
    picks = np.linspace(int(n * 0.8), n - 1, k).astype(int) if k else []
    names = []
    for i in picks:
        path = folder / f"{i + 1:06d}.jpg"
        path.write_bytes(b"\xff\xd8\xff\xe0 truncated")
        names.append(path.name)
    return names


def _small_jpeg(i: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face_like(i, 64, 64)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_lmdb(root: Path, n: int, workers: int, category: str = "bedroom_train") -> Path:
    import lmdb

    path = root / f"{category}_lmdb"
    done = path / "COMPLETE"
    if done.exists() and int(done.read_text()) >= n:
        return root
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 36)
    with mp.get_context("spawn").Pool(workers) as pool:
        for a in range(0, n, 20000):
            values = pool.map(_small_jpeg, range(a, min(a + 20000, n)), chunksize=500)
            with env.begin(write=True) as txn:
                for i, v in enumerate(values, a):
                    txn.put(f"{i:040x}".encode(), v)
    env.close()
    done.write_text(str(n))
    print(f"data_scale: wrote an LMDB of {n} small JPEGs in {time.perf_counter() - t:.0f}s", flush=True)
    return root


def inception_weights(path: Path) -> Path:
    """torchvision's Inception-v3 layout with random values (the standard weights cannot be
    fetched here): the same network, so the same memory and time."""
    if not path.exists():
        import torch
        from torchvision.models import inception_v3

        torch.manual_seed(0)
        net = inception_v3(weights=None, aux_logits=False, init_weights=True, num_classes=1008)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    return path


# ------------------------------------------------------------------------------- stages


def params_for(n: int, dataset: str, root: Path, weights: Path, steps: int, ref_max: int) -> dict:
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["prepare"].update(dataset=dataset, root=str(root), image_size=64, channels=3, max_images=n,
                        workers="auto", lsun_category="bedroom_train")
    p["augment"].update(copies=1, hflip=True)
    p["train"].update(max_steps=steps, epochs=1000, batch_size=64, g_width=64, d_width=64, latent_dim=100,
                      eval_every=1, eval_samples=200, checkpoint_every=10**6, log_every=10)
    p["sample"].update(num_samples=ref_max, batch_size=100)
    p["evaluator"].update(extractor="inception", inception_weights=str(weights), feature_batch_size=50,
                          reference_max_images=ref_max)
    p["evaluate"].update(batch_size=50, num_samples=0, recon_images=8, recon_steps=20,
                         recon_restarts=1, kid_subset_size=100, kid_subsets=20)
    return p


def commands(work: Path) -> dict[str, list[str]]:
    d = lambda *p: str(work.joinpath(*p))  # noqa: E731
    return {
        "prepare": ["--out", d("data", "prepared")],
        "augment": ["--data", d("data", "prepared"), "--out", d("data", "augmented")],
        "evaluator": ["--data", d("data", "prepared"), "--out", d("models", "evaluator")],
        "train": ["--data", d("data", "augmented", "train.npy"), "--out", d("models", "gan"),
                  "--checkpoints", d("checkpoints"), "--live", d("dvclive"),
                  "--evaluator", d("models", "evaluator"), "--prepared", d("data", "prepared")],
        "sample": ["--models", d("models", "gan"), "--out", d("data", "samples", "samples.npy"),
                   "--grid", d("samples.png"), "--interpolation", d("interpolation.png")],
        "evaluate": ["--samples", d("data", "samples", "samples.npy"), "--data", d("data", "prepared"),
                     "--evaluator", d("models", "evaluator"), "--models", d("models", "gan"),
                     "--out", d("metrics.json"), "--recon-grid", d("reconstructions.png")],
    }


def _tree_rss_kb(pid: int) -> int:
    """Resident set of a process and all its descendants (kB), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) if "VmRSS" in status else 0
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError, ValueError):
            continue
    return total


def timed(stage: str, argv: list[str], params: Path, log: Path) -> dict:
    """Run one stage under /usr/bin/time -v: its peak RSS (the largest single process, as time
    reports it), the peak of all its processes together (sampled every 0.2 s: prepare's
    workers), and wall time."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", f"dcgan.app.stages.{stage}", "--params", str(params), *argv]
    env = {**os.environ, "TQDM_MININTERVAL": "30", "PYTHONPATH": str(REPO / "src")}
    t = time.perf_counter()
    peak_tree = 0
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, env=env)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
        reader.start()
        while proc.poll() is None:
            peak_tree = max(peak_tree, _tree_rss_kb(proc.pid))
            time.sleep(0.2)
        reader.join()
        stderr = err[0] if err else ""
        fh.write(stderr)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"data_scale: {stage} failed (exit {proc.returncode}); see {log}:\n{stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    return {"peak_rss_mb": round(rss_kb / 1024, 1), "peak_rss_all_processes_mb": round(peak_tree / 1024, 1),
            "wall_s": round(wall, 2)}


def run_n(n: int, dataset: str, root: Path, weights: Path, work: Path, steps: int, ref_max: int,
          stages: tuple[str, ...]) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(params_for(n, dataset, root, weights, steps, ref_max), sort_keys=False))
    cmds = commands(work)
    out = {}
    for stage in stages:
        out[stage] = timed(stage, cmds[stage], params, work / "stages.log")
        print(f"data_scale: N={n} {stage}: peak RSS {out[stage]['peak_rss_mb']:.0f} MB "
              f"(all processes {out[stage]['peak_rss_all_processes_mb']:.0f} MB), {out[stage]['wall_s']:.1f} s",
              flush=True)
    meta = json.loads((work / "data" / "prepared" / "meta.json").read_text())
    out["n_images"] = meta["n_train"] + meta["n_holdout"]
    out["skipped_files"] = meta["skipped_files"]
    out["prepare_ms_per_image"] = round(1000 * out["prepare"]["wall_s"] / out["n_images"], 3)
    out["disk_gb"] = round(sum(p.stat().st_size for p in (work / "data").rglob("*") if p.is_file()) / 1e9, 2)
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(int(k) for k in results)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in STAGES:
        if all(stage in results[str(n)] for n in ns):
            a.plot(ns, [results[str(n)][stage]["peak_rss_mb"] for n in ns], marker="o", label=stage)
    a.set(xscale="log", xlabel="images (N)", ylabel="peak RSS (MB)", title="Peak memory per stage", ylim=(0, None))
    a.legend(loc="lower right", fontsize="small", ncol=2)
    b.plot(ns, [results[str(n)]["prepare_ms_per_image"] for n in ns], marker="o")
    b.set(xscale="log", xlabel="images (N)", ylabel="ms per image", title="prepare: wall time per image",
          ylim=(0, None))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def acceptance(results: dict) -> list[str]:
    ns = sorted(int(k) for k in results)
    if len(ns) < 2:
        return []
    lo, hi = results[str(ns[0])], results[str(ns[-1])]
    lines = []
    for stage in STAGES:
        if stage in lo and stage in hi:
            r = hi[stage]["peak_rss_mb"] / lo[stage]["peak_rss_mb"]
            lines.append(f"{stage}: peak RSS {lo[stage]['peak_rss_mb']:.0f} -> {hi[stage]['peak_rss_mb']:.0f} MB "
                         f"({r:.2f}x) {'ok' if r <= 1.2 else 'FAILS (> 1.2x)'}; all processes "
                         f"{lo[stage]['peak_rss_all_processes_mb']:.0f} -> {hi[stage]['peak_rss_all_processes_mb']:.0f} MB")
    r = hi["prepare_ms_per_image"] / lo["prepare_ms_per_image"]
    lines.append(f"prepare: {lo['prepare_ms_per_image']:.2f} -> {hi['prepare_ms_per_image']:.2f} ms/image ({r:.2f}x)")
    return lines


def tables(log: dict) -> str:
    """The measured runs as Markdown tables (docs/data_scale.md is written from this)."""
    out = []
    for key, title in (("scaling", "Scaling"), ("single_runs", "Full size"), ("lmdb_runs", "LMDB (LSUN-style)")):
        runs = log.get(key) or {}
        if not runs:
            continue
        ns = sorted(runs, key=int)
        out.append(f"**{title}** ({runs[ns[0]]['cpu']}; {runs[ns[0]]['date']}): peak RSS in MB "
                   "(all processes), wall time in s\n")
        out.append("| stage | " + " | ".join(f"N = {int(n):,}" for n in ns) + " |")
        out.append("|---|" + "---|" * len(ns))
        for stage in STAGES:
            if all(stage in runs[n] for n in ns):
                cells = [f"{runs[n][stage]['peak_rss_mb']:,.0f} ({runs[n][stage]['peak_rss_all_processes_mb']:,.0f}),"
                         f" {runs[n][stage]['wall_s']:,.1f} s" for n in ns]
                out.append(f"| {stage} | " + " | ".join(cells) + " |")
        out.append("| prepare, ms per image | " + " | ".join(f"{runs[n]['prepare_ms_per_image']:.2f}" for n in ns) + " |")
        out.append("| images kept (skipped) | " + " | ".join(
            f"{runs[n]['n_images']:,} ({runs[n].get('skipped_files', 0)})" for n in ns) + " |")
        out.append("| data/ on disk, GB | " + " | ".join(f"{runs[n]['disk_gb']:.1f}" for n in ns) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 40_000, 160_000], help="dataset sizes")
    ap.add_argument("--lmdb", type=int, default=0, help="measure prepare+augment on an LMDB of this many images")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--steps", type=int, default=20, help="train.max_steps")
    ap.add_argument("--reference-max", type=int, default=1000,
                    help="evaluator.reference_max_images (also the number of samples scored)")
    ap.add_argument("--cache", default=".data-scale", help="synthetic data and work folders (gitignored)")
    ap.add_argument("--out", default="reports/data_scale.json")
    ap.add_argument("--figure", default="docs/figures/data_scale.png")
    ap.add_argument("--single", action="store_true", help="record under 'single_runs' (no scaling plot)")
    ap.add_argument("--keep", action="store_true", help="keep each N's work folder")
    ap.add_argument("--corrupt", type=int, default=0, help="truncate this many of the JPEGs (skipped and counted)")
    ap.add_argument("--tables", action="store_true", help="print the recorded runs as Markdown and exit")
    args = ap.parse_args(argv)
    if args.tables:  # and redraw the scaling figure from the recorded runs
        log = json.loads((REPO / args.out).read_text())
        if log.get("scaling"):
            plot(log["scaling"], REPO / args.figure)
        print(tables(log))
        return
    cache = (REPO / args.cache).resolve()
    workers = os.cpu_count() or 1
    weights = inception_weights(cache / "inception" / "pt_inception-test-random.pth")
    if args.lmdb:
        root, dataset, sizes = make_lmdb(cache / "lsun", args.lmdb, workers), "lsun", [args.lmdb]
        stages = tuple(s for s in args.stages if s in ("prepare", "augment"))
    else:
        root, dataset, sizes = make_celeba(cache / "raw", max(args.n), workers), "celeba", sorted(args.n)
        stages = tuple(args.stages)
        corrupted = corrupt_some(root, max(args.n), args.corrupt)
    out_path = REPO / args.out
    log = json.loads(out_path.read_text()) if out_path.is_file() else {}
    key = "lmdb_runs" if args.lmdb else ("single_runs" if args.single else "scaling")
    section = log.setdefault(key, {})
    for n in sizes:
        work = cache / f"work-{dataset}-{n}"
        res = run_n(n, dataset, root, weights, work, args.steps, args.reference_max, stages)
        if not args.lmdb:
            res["corrupt_files"] = len(corrupted)
        res.update(cpu=cpu_name(), dataset=f"synthetic {dataset}", steps=args.steps,
                   reference_max_images=args.reference_max, date=time.strftime("%Y-%m-%d"))
        section[str(n)] = res
        out_path.write_text(json.dumps(log, indent=2, sort_keys=True) + "\n")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if key == "scaling":
        plot(section, REPO / args.figure)
        for line in acceptance(section):
            print("data_scale:", line)
    print(f"data_scale: -> {out_path}")


if __name__ == "__main__":
    main()
