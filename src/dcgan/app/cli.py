"""``dcgan``: use a trained generator without the pipeline.

    dcgan sample --model models/gan -n 64 --seed 0 -o grid.png     # or .npy (uint8 N,C,H,W)
    dcgan sample --model gan --drs -o drs.png                       # rejection sampling with D
    dcgan interpolate --model models/gan -o walk.png                # latent walks, a row each
    dcgan info models/gan                                           # what model.json records
    dcgan review main HEAD -o review.md                             # better, worse or within noise?

MODEL is a ``models/gan`` folder as the train stage writes it, or the folder that
``dvc artifacts get <repo> generator --stage prod`` fetched. A mistake in the input (a missing
folder, weights of another architecture, a bad number) is one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from dcgan.app import paths
from dcgan.core import files
from dcgan.core.errors import SettingError, UserError

OUTPUT_KINDS = (".png", ".npy")


def _version() -> str:
    try:
        return version("dcgan")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _model_folder(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"model folder {folder} does not exist (train one with `dvc repro`, or "
                        f"fetch one with `dvc artifacts get <repo> generator --stage prod`)")
    if not (folder / "model.json").is_file():
        raise UserError(f"{folder} is not a dcgan model folder: it has no model.json")
    return folder


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{name} must be >= 1, got {value}")
    return value


def _output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in OUTPUT_KINDS:
        raise UserError(f"output {out} must end in .png (a grid) or .npy (uint8 N,C,H,W), "
                        f"got {out.suffix or 'no suffix'}")
    return out


def _write(images: np.ndarray, out: Path, nrow: int | None = None) -> None:
    """A PNG grid (small images enlarged for viewing) or the raw uint8 array, atomically."""
    from dcgan.core.images import save_grid

    if out.suffix.lower() == ".npy":
        files.write_npy(out, images)
    else:
        save_grid(images, out, nrow=nrow, upscale=max(1, 64 // images.shape[-1]))


def cmd_sample(args: argparse.Namespace) -> str:
    from dcgan.core.devices import pick_device
    from dcgan.networks.sampling import sample_model

    n, batch = _positive("-n", args.n), _positive("--batch-size", args.batch_size)
    out, folder = _output(args.output), _model_folder(args.model)
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if not 0.0 <= args.drs_percentile <= 100.0:
        raise UserError(f"--drs-percentile must be in [0, 100], got {args.drs_percentile}")
    if args.drs and not (folder / "discriminator.safetensors").is_file():
        raise UserError(f"--drs needs the discriminator, and {folder} has no discriminator.safetensors")
    drawn = sample_model(folder, args.generator, n, args.seed, pick_device(args.device), batch, args.drs,
                         percentile=args.drs_percentile)
    how = f"the {drawn.generator} generator"
    if drawn.drs is not None:
        how += f" with DRS (kept {drawn.drs.acceptance_rate:.1%} of {drawn.drs.proposed} proposals)"
    _write(drawn.images, out)
    return f"{n} images from {how} of {folder} -> {out}"


def cmd_interpolate(args: argparse.Namespace) -> str:
    from dcgan.core.devices import pick_device
    from dcgan.networks.model_dir import load_generator
    from dcgan.networks.sampling import interpolation_grid

    rows, steps = _positive("--rows", args.rows), _positive("--steps", args.steps)
    if steps < 2:
        raise UserError(f"--steps must be >= 2 (the two ends), got {steps}")
    out, folder = _output(args.output), _model_folder(args.model)
    device = pick_device(args.device)
    g = load_generator(folder, device, args.generator)
    walk = interpolation_grid(g, g.cfg.latent_dim, args.seed, device, rows=rows, steps=steps)
    _write(walk, out, nrow=steps)
    path = "great circles (normal prior)" if g.cfg.prior == "normal" else "straight lines (uniform prior)"
    return f"{rows} latent walks of {steps} steps along {path} -> {out}"


def describe(meta: dict, folder: Path) -> str:
    """model.json in words, plus the weight files beside it."""
    arch = (f"DCGAN {meta['channels']}x{meta['image_size']}x{meta['image_size']}, latent "
            f"{meta['latent_dim']} ({meta.get('prior', 'normal')} prior), G width "
            f"{meta['g_width']} ({meta.get('g_norm', 'batch')} norm), D width {meta['d_width']} "
            f"({meta.get('d_norm', 'batch')} norm{', spectral' if meta.get('d_spectral') else ''})")
    inputs = ("[-1, 1]" if meta.get("normalize", "range") == "range" else
              f"(x - mean) / std, mean {[round(m, 4) for m in meta['mean']]}, std {[round(v, 4) for v in meta['std']]}")
    lines = [f"model: {folder}", f"architecture: {arch}", f"inputs: {inputs}",
             f"discriminators: {meta.get('discriminators', 1)}",
             f"encoder: {'yes' if meta.get('encoder') else 'no'}"]
    if meta.get("step") is not None:
        lines.append(f"trained: {meta['step']} steps, {meta.get('epochs')} epochs")
    if meta.get("best_fid") is not None:
        lines.append(f"best in-training FID: {meta['best_fid']:.4g} at step {meta.get('best_step')} "
                     "(generator_best.safetensors)")
    for f in sorted(folder.glob("*.safetensors")):
        lines.append(f"file: {f.name} ({f.stat().st_size / 1e6:.2f} MB, sha256 "
                     f"{files.file_digest(f)[:12]})")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> str:
    from dcgan.networks.model_dir import read_card

    folder = _model_folder(args.model)
    card = read_card(folder)  # refuses an incomplete model.json with a clear line
    if args.json:
        return json.dumps(files.read_json(folder / "model.json"), indent=2, sort_keys=True)
    return describe(card.to_json(), folder)


def _pairs(values: list[str], flag: str) -> dict[str, float]:
    out = {}
    for v in values:
        key, sep, num = v.partition("=")
        try:
            out[key] = float(num)
        except ValueError:
            raise UserError(f"{flag} {v!r}: write METRIC=NUMBER (fid=0.5)") from None
        if not sep:
            raise UserError(f"{flag} {v!r}: write METRIC=NUMBER (fid=0.5)")
    return out


REVIEW_CODES = "exit codes: 0 better, within noise or no change; 1 worse beyond the noise; 2 not comparable; 3 bad input"


def cmd_review(args: argparse.Namespace) -> tuple[str, int]:
    from dcgan.app.review import NOISE_FILE, BadInput, review

    try:
        margins, spread = _pairs(args.margin, "--margin"), _pairs(args.retrain_sd, "--retrain-sd")
        if args.resamples < 20:
            raise BadInput(f"--resamples must be >= 20, got {args.resamples}")
        noise = (None if args.retrain_noise == "none" else Path(args.retrain_noise) if args.retrain_noise
                 else Path(args.repo) / NOISE_FILE)
        out = review(Path(args.repo), args.base, args.head,
                     Path(args.output), args.metric, args.alpha, margins, spread, args.resamples, noise)
    except UserError as exc:
        return f"error: {exc}", 3
    code = out.review.exit_code(fail_on_worse=args.fail_on == "worse")
    return out.message, code


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=paths.MODELS, metavar="MODEL",
                   help="the model folder (models/gan, or what dvc artifacts get fetched)")
    p.add_argument("--generator", choices=("auto", "best", "last"), default="auto",
                   help="best: the generator with the best in-training FID; last: the final one; "
                        "auto: the last when G was trained with an EMA, else the best")
    p.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same images)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="where to run (auto: cuda > mps > cpu)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dcgan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"dcgan {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{sample,interpolate,info,review}")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    s = sub.add_parser("sample", help="draw images from a trained generator", formatter_class=fmt)
    _model_args(s)
    s.add_argument("-n", type=int, default=64, help="how many images")
    s.add_argument("-o", "--output", default="samples.png", help="a .png grid or a .npy array")
    s.add_argument("--drs", action="store_true",
                   help="discriminator rejection sampling (needs discriminator.safetensors)")
    s.add_argument("--drs-percentile", type=float, default=80.0,
                   help="with --drs: gamma = this percentile of F per batch (higher keeps fewer)")
    s.add_argument("--batch-size", type=int, default=256, help="generator batch size")
    s.set_defaults(fn=cmd_sample)

    i = sub.add_parser("interpolate", help="walk the latent space between random points",
                       formatter_class=fmt)
    _model_args(i)
    i.add_argument("--rows", type=int, default=8, help="walks (one per row)")
    i.add_argument("--steps", type=int, default=10, help="images per walk, ends included")
    i.add_argument("-o", "--output", default="interpolation.png", help="a .png grid or a .npy array")
    i.set_defaults(fn=cmd_interpolate)

    f = sub.add_parser("info", help="show what a model folder's model.json records",
                       formatter_class=fmt)
    f.add_argument("model", metavar="MODEL", help="the model folder")
    f.add_argument("--json", action="store_true", help="print model.json as it is")
    f.set_defaults(fn=cmd_info)

    from dcgan.metrics.registry import gate_keys

    r = sub.add_parser("review", help="is HEAD better, worse or within the noise of BASE? (a page for code review)",
                       formatter_class=fmt, epilog=REVIEW_CODES)
    r.add_argument("base", nargs="?", default="main", metavar="BASE", help="the revision to compare against")
    r.add_argument("head", nargs="?", default=None, metavar="HEAD",
                   help="the revision under review (default: the workspace, as `dvc repro` left it)")
    r.add_argument("-o", "--output", default="review.md",
                   help="the page (markdown); review.html and the pictures (review_files/) go beside it")
    r.add_argument("--metric", default="fid", choices=gate_keys(), help="the gated metric: it sets the exit code")
    r.add_argument("--fail-on", choices=("worse", "never"), default="worse",
                   help="worse: exit 1 when the gated metric is worse beyond the noise; never: exit 0 then")
    r.add_argument("--alpha", type=float, default=0.05, help="the one-sided tests' level")
    r.add_argument("--margin", action="append", default=[], metavar="METRIC=X",
                   help="a change must beat X (metric units) beyond the noise to count (the gate's min_improvement)")
    r.add_argument("--retrain-noise", default=None, metavar="FILE",
                   help="each metric's spread over unchanged retrains (benchmarks/review_noise.py writes it), added "
                        "to both runs' noise where it was measured on runs like HEAD's (default: review_noise.json "
                        "beside reports/metrics.json in the repository; none: not used)")
    r.add_argument("--retrain-sd", action="append", default=[], metavar="METRIC=SD",
                   help="that spread for one metric, over the file's")
    r.add_argument("--resamples", type=int, default=200,
                   help="the paired FID bootstrap's resamples per direction (the flow's gate: 500)")
    r.add_argument("--repo", default=".", help="the git + DVC repository")
    r.set_defaults(fn=cmd_review)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage error is exit 2, which `review` gives "not comparable"
        if exc.code == 2 and next((a for a in argv if not a.startswith("-")), None) == "review":
            return 3
        raise
    try:
        out = args.fn(args)
    except SettingError as exc:  # a library error about a setting: named by its flag here
        print(f"error: {exc.keyed(lambda name: '--' + name.replace('_', '-'))}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    message, code = out if isinstance(out, tuple) else (out, 0)
    print(message, file=sys.stderr if message.startswith("error: ") else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
