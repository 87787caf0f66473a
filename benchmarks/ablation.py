"""Ablation of the DCGAN-recipe techniques at the shipped training length, over paired seeds,
on two data settings, with the power of every comparison stated.

    python benchmarks/ablation.py                               # every setting and row
    python benchmarks/ablation.py --settings digits --rows plain r1 --seeds 5
    python benchmarks/ablation.py --report-only                 # rewrite the table from the log

The protocol (docs/techniques.md):

- **Length**: every run trains ``train.epochs`` of params.yaml (the shipped length), not a
  shortened budget; the second setting has 3.5x the images and so 3.5x the steps.
- **Seeds**: ``base.seed`` 0..n-1 for every row (paired: row and plain DCGAN share seeds and so
  data order and initial weights), at least 5 for plain DCGAN and the shipped default, at least
  3 for the others (``--seeds`` raises every row to that many).
- **Settings**: ``digits``, the default pipeline's training set (data/augmented/train.npy:
  1,438 digits and augment.copies of them); ``digits10k``, the same 1,438 prepared digits with 6
  augmented copies (10,066 images, the size of the set in issue 21's real-data measurement), so
  each run takes 3,140 steps instead of 880: long enough for plain DCGAN's late drift to show.
- **Scoring**: the generator the pipeline ships (best by in-training FID), ``--samples``
  images (2,000) drawn as the sample stage draws them (DRS for the DRS row), FID and IS with the
  evaluate stage's extractor against the training set's features.
- **Two noises**: the FID estimator's (standard deviation over ``--bootstrap`` resamples of
  each run's generated set) and the seed-to-seed one (standard deviation over seeds).
- **Tests**: each row against plain DCGAN on the seeds both have: mean paired difference with
  its 95% interval, paired t-test, and the smallest difference the comparison could detect
  (80% power, alpha 0.05). A row that is not separated is "cannot tell", never "the same".
- **Late collapse**: each run's in-training FID trajectory is kept; "last/best" is the last
  evaluation's FID over the best one.

Each trained model is cached under ``--cache`` (keyed by setting, training switches and seed),
so the DRS row reuses the R1 models and an interrupted study resumes where it stopped. Every
run's numbers go to reports/ablation.json; the table to reports/ablation.md (text after the
NOTES marker there is kept).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablation_data  # noqa: E402
import ganrun  # noqa: E402
from seedstats import paired, spread  # noqa: E402

from dcgan.app.params.whole import load_params  # noqa: E402
from dcgan.core.devices import pick_device  # noqa: E402
from dcgan.core.seeding import derive_seed  # noqa: E402
from dcgan.data.arrays import load_images  # noqa: E402

# plain DCGAN: every technique off (the rows add theirs on top), at the width every row of
# reports/ablation.md was trained with (params.yaml's g_width/d_width auto would pick by data kind)
OFF = {"r1_gamma": 0.0, "gp_lambda": 0.0, "reg_every": 4, "loss": "bce", "ema_decay": 0.0, "ema_rampup": 0.0,
       "diffaug": (), "encoder": False, "d_spectral": False, "discriminators": 1, "g_width": 32, "d_width": 32,
       "min_images": 0}  # rows set their length in epochs (Row.length)
R1 = {"r1_gamma": 0.1, "reg_every": 4}


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    train: dict
    drs: bool = False
    min_seeds: int = 3
    settings: tuple[str, ...] = ("digits", "digits10k")
    data: str = "train"
    """train: the training set with offline augmentation (augment's output); prepared: without it,
    for as many steps (epochs times the augmented set's size over the prepared one's)."""
    length: int = 1
    """train.epochs times this."""


GREY, ALL = ("digits", "digits10k"), ("digits", "digits10k", "colour")
CCT = ("color", "translation", "cutout")
BASE_ROWS: dict[str, Row] = {
    "plain": Row("plain DCGAN", {}, min_seeds=5, settings=ALL),
    "r1": Row("R1 γ 0.1 every 4 steps (lazy)", R1, min_seeds=5, settings=ALL),
    "r1_drs": Row("R1 + DRS (same models as R1)", R1, drs=True),
    "r1_ema": Row("R1 + EMA of G (0.995)", {**R1, "ema_decay": 0.995}),
    "r1_diffaug": Row("R1 + DiffAugment (translation, cutout)", {**R1, "diffaug": ("translation", "cutout")},
                      settings=("digits",)),  # DiffAugment is for small sets; left off the 10k one for time
    "hinge": Row("hinge loss", {"loss": "hinge"}),
    "r1_lazy16_ema": Row("R1 γ 0.1 every 16 steps + EMA of G (0.999, ramp-up 0.05): the grey recipe since issue 37",
                         {"r1_gamma": 0.1, "reg_every": 16, "ema_decay": 0.999, "ema_rampup": 0.05}, min_seeds=5),
    # the colour candidates (issue 29), each on top of plain DCGAN
    "r1_001": Row("R1 γ 0.01", {"r1_gamma": 0.01}, settings=("colour",)),
    "r1_1": Row("R1 γ 1", {"r1_gamma": 1.0}, settings=("colour",)),
    "ema_ramp": Row("EMA of G 0.999, ramp-up 0.05", {"ema_decay": 0.999, "ema_rampup": 0.05}, settings=("colour",)),
    "diffaug": Row("DiffAugment (color, translation, cutout)", {"diffaug": CCT}, settings=("colour",)),
    "width64": Row("the paper's width (g/d width 64)", {"g_width": 64, "d_width": 64}, settings=("colour",)),
    "ttur": Row("TTUR (G lr 1e-4, D lr 4e-4)", {"lr": 1e-4, "d_lr": 4e-4}, settings=("colour",)),
    "hinge_sn": Row("hinge loss + spectral norm in D", {"loss": "hinge", "d_spectral": True}, settings=("colour",)),
    "no_aug": Row("offline augmentation off", {}, settings=("colour",), data="prepared"),
    "diffaug_no_aug": Row("DiffAugment (c, t, c) in place of offline augmentation", {"diffaug": CCT},
                          settings=("colour",), data="prepared"),
    "meanstd": Row("mean/std input normalisation", {"normalize": "meanstd"}, settings=("colour",)),
    "d2": Row("2 discriminators (mean)", {"discriminators": 2}, settings=("colour",)),
    # the shipped-length winners combined (the two lowest mean FIDs)
    "colour_recipe": Row("width 64 + R1 γ 0.01 (the two best rows combined)",
                         {"g_width": 64, "d_width": 64, "r1_gamma": 0.01}, settings=("colour",)),
}
LONG = 4
"""The long rows train this many times the shipped length."""
SHIPPED_COLOUR = "plain_x4"
"""The row that is what a user got on colour data before issue 37 added the EMA (the colour recipe: plain
DCGAN, 5,120 steps = 4x the shipped length on this setting): 5 seeds, as plain DCGAN has."""
ROWS: dict[str, Row] = {**BASE_ROWS, **{
    f"{name}_x{LONG}": dataclasses.replace(row, label=f"{row.label}, {LONG}× length", length=LONG,
                                           min_seeds=5 if f"{name}_x{LONG}" == SHIPPED_COLOUR else 3,
                                           settings=("colour",))
    for name, row in BASE_ROWS.items() if "colour" in row.settings and not row.drs}}
SETTINGS = {name: s.what for name, s in ablation_data.SETTINGS.items()}
NOTES = "<!-- NOTES: text below this line is kept when benchmarks/ablation.py rewrites the table -->"


def run_key(setting: str, row: Row, seed: int, digest: str, epochs: int) -> str:
    """What a trained model depends on: data, switches, seed and length (not DRS)."""
    sw = "-".join(f"{k}={v}" for k, v in sorted(row.train.items())) or "plain"
    return f"{setting}-{digest}-e{epochs}-{sw}-s{seed}".replace(" ", "").replace("'", "")


def jobs(settings: list[str], rows: list[str], seeds: int) -> list[tuple[str, int, list[str]]]:
    """(setting, seed, rows sharing one trained model), seed-major, so that a study cut short
    still has paired seeds; rows that differ only in sampling (DRS) train once."""
    out = []
    n_max = max(seeds or ROWS[r].min_seeds for r in rows)
    for setting in settings:
        for seed in range(n_max):
            groups: dict[str, list[str]] = {}
            for name in rows:
                row = ROWS[name]
                if setting in row.settings and seed < (seeds or row.min_seeds):
                    model = json.dumps([row.train, row.data, row.length], sort_keys=True, default=list)
                    groups.setdefault(model, []).append(name)
            out += [(setting, seed, names) for names in groups.values()]
    return out


@dataclasses.dataclass
class SettingCtx:
    """One data setting, built (ablation_data.py): params, training images, scorers."""

    params: object
    images: dict[str, np.ndarray]
    """{"train": with offline augmentation, "prepared": without}."""
    digest: dict[str, str]
    prepared: str
    evaluator: str
    scorer: ganrun.Scorer
    judge: ganrun.Scorer | None

    @classmethod
    def load(cls, name: str, data_root: Path, device, pipe: ablation_data.Pipeline | None = None) -> SettingCtx:
        f = ablation_data.build(name, data_root, pipe or ablation_data.Pipeline())
        params = load_params(f.params)
        size, ch = params.prepare.image_size, params.prepare.channels
        images = {"train": load_images(f.train, channels=ch, size=size),
                  "prepared": load_images(f.prepared / "train.npy", channels=ch, size=size)}
        return cls(params, images, {k: ganrun.data_digest(x) for k, x in images.items()}, str(f.prepared),
                   str(f.evaluator), ganrun.Scorer.load(params, str(f.evaluator), str(f.prepared), device),
                   ganrun.Scorer.judge(params, str(f.judge), images["prepared"], device) if f.judge else None)


def trained_for(setting: str, row: Row, seed: int, ctx: dict):
    sc: SettingCtx = ctx["settings"][setting]
    params = ganrun.with_seed(sc.params, seed, **{**OFF, **row.train})
    # equal steps: a row on the prepared images alone trains as many steps as one on the augmented set
    per_epoch = len(sc.images["train"]) // len(sc.images[row.data])
    params = ganrun.with_seed(params, seed, epochs=params.train.epochs * row.length * per_epoch)
    key = run_key(setting, row, seed, sc.digest[row.data], params.train.epochs)
    path = ganrun.cache_path(ctx["cache"], key)
    if path.is_file():
        return params, ganrun.load_trained(path, params, ctx["device"], ganrun.data_stats(sc.prepared))
    trained = ganrun.train_run(params, sc.images[row.data], ctx["device"], sc.evaluator, sc.prepared, key)
    ganrun.save_trained(path, trained)
    return params, trained


def still_improving(fids: list[float]) -> bool:
    """The run's last in-training FID is its best and below the one before: more training would
    likely have helped."""
    return len(fids) > 1 and fids[-1] <= min(fids) and fids[-1] < fids[-2]


def one_run(setting: str, row_name: str, seed: int, ctx: dict) -> dict:
    row, sc = ROWS[row_name], ctx["settings"][setting]
    params, trained = trained_for(setting, row, seed, ctx)
    images, extra = ganrun.draw(trained, ctx["samples"], derive_seed(seed, "ablation_sample"),
                                ctx["device"], params.sample, row.drs)
    m = sc.scorer.score(images, seed, ctx["bootstrap"], params.evaluate.is_splits)
    if sc.judge is not None:
        j = sc.judge.score(images, seed, 0, params.evaluate.is_splits)
        m.update({"judge_fid": j["fid"], "judge_is": j["is_mean"]})
    traj = trained.trajectory
    fids = [t["fid"] for t in traj]
    return {**m, **extra, "steps": trained.steps, "train_s": trained.train_s, "precision": trained.precision,
            "best_fid_in_training": min(fids) if fids else None,
            "last_over_best": fids[-1] / min(fids) if fids else None,
            "still_improving": still_improving(fids), "trajectory": traj}


def record(log_path: Path, meta: dict, setting: str, row: str, seed: int, result: dict) -> dict:
    """Add one run to the log file under a lock (shards of one study write the same file)."""
    import fcntl

    with open(log_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = json.loads(log_path.read_text()) if log_path.is_file() else {}
        log["_meta"] = {**log.get("_meta", {}), **meta}
        log.setdefault(setting, {}).setdefault(row, {})[str(seed)] = result
        tmp = log_path.with_suffix(".part")
        tmp.write_text(json.dumps(log, indent=1) + "\n")
        tmp.replace(log_path)
    return log


def values(log: dict, setting: str, row: str, key: str) -> dict[int, float]:
    runs = log.get(setting, {}).get(row, {})
    return {int(s): r[key] for s, r in runs.items() if r.get(key) is not None}


def _fmt_paired(pr) -> str:
    if pr.n < 2:
        return "—"
    return f"{pr.mean:+.3g} ± {pr.half_width:.2g}"


def compare(log: dict, setting: str, name: str, base: str, key: str = "fid"):
    """The paired comparison of row ``name`` with row ``base`` on the seeds both have."""
    fid, ref = values(log, setting, name, key), values(log, setting, base, key)
    common = [s for s in sorted(fid) if s in ref]
    return paired([fid[s] for s in common], [ref[s] for s in common])


def table(log: dict, setting: str) -> list[str]:
    judged = any(values(log, setting, name, "judge_fid") for name in ROWS)
    cols = ("| row | seeds | FID ↓ mean ± 95% CI | seed SD | estimator SD | IS ↑ | ΔFID vs plain (paired) | "
            "detectable ΔFID | verdict vs plain | vs R1 alone: ΔFID, verdict | "
            + ("judge FID ↓ | judge ΔFID vs plain, verdict | " if judged else "")
            + "last/best FID (max) | still improving at the end | train s/run |")
    lines = [cols, "|" + "---|" * (cols.count("|") - 1)]
    for name, row in ROWS.items():
        fid = values(log, setting, name, "fid")
        if not fid:
            continue
        f = [fid[s] for s in sorted(fid)]
        seed_sd = f"{np.std(f, ddof=1):.2g}" if len(f) > 1 else "—"
        boot = list(values(log, setting, name, "fid_boot_sd").values())
        iss = list(values(log, setting, name, "is_mean").values())
        lob = list(values(log, setting, name, "last_over_best").values())
        secs = list(values(log, setting, name, "train_s").values())
        vs = ["—", "—", "—"]
        if name != "plain" and values(log, setting, "plain", "fid"):
            pr = compare(log, setting, name, "plain")
            vs = [_fmt_paired(pr), f"{pr.detectable:.2g}" if pr.n > 1 else "—", pr.verdict()]
        on_r1 = "—"
        if name != "r1" and row.train.get("r1_gamma") and values(log, setting, "r1", "fid"):
            pr = compare(log, setting, name, "r1")
            on_r1 = f"{_fmt_paired(pr)}, {pr.verdict()}"
        judge = ""
        if judged:
            jf = list(values(log, setting, name, "judge_fid").values())
            jv = "—"
            if name != "plain" and values(log, setting, "plain", "judge_fid"):
                pr = compare(log, setting, name, "plain", "judge_fid")
                jv = f"{_fmt_paired(pr)}, {pr.verdict()}"
            judge = f"{spread(jf) if jf else '—'} | {jv} | "
        imp = list(values(log, setting, name, "still_improving").values())
        lines.append(
            f"| {row.label} | {len(f)} | {spread(f)} | {seed_sd} | {np.mean(boot):.2g} | {spread(iss)} | "
            f"{vs[0]} | {vs[1]} | {vs[2]} | {on_r1} | {judge}{np.mean(lob):.2f} ({max(lob):.2f}) | "
            f"{f'{sum(imp)} of {len(imp)}' if imp else '—'} | {np.mean(secs):.0f} |")
    return lines


def long_table(log: dict, setting: str) -> list[str]:
    """The 4×-length rows against the shipped colour recipe (plain DCGAN at 4× length), paired:
    does anything beat what a user gets?"""
    base = SHIPPED_COLOUR
    longs = [n for n, r in ROWS.items() if r.length > 1 and n != base and values(log, setting, n, "fid")]
    if not longs or not values(log, setting, base, "fid"):
        return []
    lines = [f"4× rows against **{ROWS[base].label}** (what a user got on colour data before issue 37), paired on the seeds "
             "both have:", "",
             "| row | seeds | ΔFID (paired) | detectable ΔFID | verdict | judge ΔFID (paired) | judge verdict |",
             "|---|---|---|---|---|---|---|"]
    for name in longs:
        pr, pj = compare(log, setting, name, base), compare(log, setting, name, base, "judge_fid")
        lines.append(f"| {ROWS[name].label} | {pr.n} | {_fmt_paired(pr)} | "
                     f"{f'{pr.detectable:.2g}' if pr.n > 1 else '—'} | {pr.verdict()} | {_fmt_paired(pj)} | "
                     f"{pj.verdict() if pj.n else '—'} |")
    return lines + [""]


def winner(log: dict, setting: str) -> str:
    """The row with the lowest mean FID over the seeds every row has (a fair race), and how it
    compares with plain DCGAN."""
    rows = [name for name in ROWS if values(log, setting, name, "fid")]
    common = sorted(set.intersection(*(set(values(log, setting, n, "fid")) for n in rows))) if rows else []
    if not common:
        return ""
    means = {n: float(np.mean([values(log, setting, n, "fid")[s] for s in common])) for n in rows}
    best = min(means, key=means.get)
    text = (f"Lowest mean FID on the seeds every row has ({', '.join(map(str, common))}): "
            f"**{ROWS[best].label}** ({means[best]:.3g}; plain DCGAN {means.get('plain', math.nan):.3g})")
    if best != "plain" and "plain" in rows:
        text += f"; against plain DCGAN on all paired seeds: {compare(log, setting, best, 'plain').verdict()}"
    return text + "."


def render(log: dict, meta: dict, old_text: str) -> str:
    notes = old_text.split(NOTES, 1)[1].strip("\n") if NOTES in old_text else ""
    parts = [
        "# Ablation at the shipped training length, over paired seeds",
        "",
        f"Machine: {meta.get('machine', '?')}; precision {meta.get('precision', '?')}. Protocol "
        "(docs/techniques.md): every run trains the shipped `train.epochs`; `base.seed` 0..n-1 for "
        "every row (paired with plain DCGAN); the shipped generator (best by in-training FID) draws "
        f"{meta.get('samples', '?')} images, scored by the evaluate stage's extractor against the "
        "training set. *Seed SD*: FID's standard deviation over seeds. *Estimator SD*: FID's "
        f"standard deviation over {meta.get('bootstrap', '?')} bootstrap resamples of one run's "
        "samples (mean over the row's runs): the noise of the sample count alone. *ΔFID vs plain*: "
        "mean of the per-seed differences ± 95% CI (negative = better than plain). *Detectable "
        "ΔFID*: the smallest true difference this paired test finds with 80% power (alpha 0.05); "
        "below it a row is \"cannot tell\", not \"the same\". *vs R1 alone*: rows that add a "
        "technique on top of R1, paired with the R1 runs (DRS there samples from the very same "
        "models). *last/best*: the last in-training "
        "FID over the best one (mean over seeds, max in brackets); above 1 the run got worse late. "
        "*Still improving at the end*: runs whose last in-training FID was their best and below the "
        "one before (more training would likely have helped). *Judge*: FID in a second feature "
        "space, a classifier trained by the evaluator stage with another seed on another split "
        "(benchmarks/ablation_data.py), against the same training images; where the judge and the "
        "evaluator disagree, neither verdict is taken alone. Rows marked *4× length* train 4× "
        "`train.epochs`; rows without offline augmentation train as many steps as those with it.",
        "Reproduce: `python benchmarks/ablation.py` (all runs in reports/ablation.json).",
        "",
    ]
    for setting, what in SETTINGS.items():
        if setting not in log:
            continue
        some = next(r for rs in log[setting].values() for r in rs.values())
        parts += [f"## {setting}: {what}, {some['steps']} steps per run", "", *table(log, setting), "",
                  winner(log, setting), "", *long_table(log, setting)]
    parts += [NOTES, *([notes] if notes else []), ""]
    return "\n".join(parts)


def machine() -> str:
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
        kind = "AVX-512 BF16" if "avx512_bf16" in flags.split() else "AVX2"
    except (OSError, StopIteration):
        kind = "?"
    try:  # the CPU's model: the same flags run at different speeds on AMD and Intel
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = "CPU"
    return f"{os.cpu_count()} {model} cores, {kind}, torch {torch.__version__}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--seeds", type=int, default=0, help="seeds per row (0: each row's minimum, 5 or 3)")
    ap.add_argument("--samples", type=int, default=2000, help="generated images scored per run")
    ap.add_argument("--bootstrap", type=int, default=50, help="resamples for the estimator's noise")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-root", default=".ablation-data",
                    help="where the settings' data, evaluators and judges are built (ablation_data.py)")
    ap.add_argument("--params", default="params.yaml", help="the params every setting starts from")
    ap.add_argument("--augmented", default="data/augmented/train.npy", help="the digits setting's training set")
    ap.add_argument("--prepared", default="data/prepared", help="the digits settings' prepared data")
    ap.add_argument("--evaluator", default="models/evaluator", help="the digits settings' evaluator")
    ap.add_argument("--cache", default=".ablation-cache", help="trained models, reused across rows and reruns")
    ap.add_argument("--log", default="reports/ablation.json")
    ap.add_argument("--out", default="reports/ablation.md")
    ap.add_argument("--report-only", action="store_true", help="no runs: rewrite the table from --log")
    ap.add_argument("--rerun", action="store_true",
                    help="run (or, from the cache, rescore) runs the log already has, instead of keeping them")
    ap.add_argument("--only-seeds", type=int, nargs="+", help="run just these seeds (of those --seeds asks for)")
    ap.add_argument("--shard", type=ganrun.shard, default="0/1",
                    help="K/N: run every Nth job from the Kth, K from 0 (0/2 and 1/2: two processes, one study)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads per process (0: torch's default); 2 shards of 1 thread beat "
                         "1 process of 2 threads by ~1.35x on 2 cores")
    args = ap.parse_args()
    log_path, out = Path(args.log), Path(args.out)
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    meta = log.pop("_meta", {})
    if not args.report_only:
        k, n = args.shard
        if args.threads:
            torch.set_num_threads(args.threads)
        device = pick_device(args.device)
        pipe = ablation_data.Pipeline(*(Path(p).resolve() for p in (args.params, args.prepared, args.augmented,
                                                                      args.evaluator)))
        settings = {s: SettingCtx.load(s, Path(args.data_root), device, pipe) for s in args.settings}
        ctx = {"settings": settings, "device": device, "cache": Path(args.cache), "samples": args.samples,
               "bootstrap": args.bootstrap}
        meta = {"machine": machine(), "samples": args.samples, "bootstrap": args.bootstrap,
                "epochs": load_params(args.params).train.epochs, "threads": torch.get_num_threads(),
                "processes": n}
        for setting, sc in settings.items():
            print(f"{setting}: {len(sc.images['train'])} images, {sc.params.train.epochs} epochs", flush=True)
        # runs already in the log are kept (the cache of trained models may be gone: a new
        # machine); --rerun trains or rescores them again
        todo = [(s, seed, [m for m in names if args.rerun or str(seed) not in log.get(s, {}).get(m, {})])
                for s, seed, names in jobs(args.settings, args.rows, args.seeds)
                if args.only_seeds is None or seed in args.only_seeds]
        for i, (setting, seed, names) in enumerate([j for j in todo if j[2]]):
            if i % n != k:
                continue
            for name in names:
                r = one_run(setting, name, seed, ctx)
                meta["precision"] = r["precision"]
                log = record(log_path, meta, setting, name, seed, r)
                meta = log.pop("_meta")
                print(f"  {setting} {name} seed {seed}: FID {r['fid']:.3f} (boot SD {r['fid_boot_sd']:.3f}), "
                      f"IS {r['is_mean']:.3f}, last/best {r['last_over_best']:.2f}, "
                      f"{r['steps']} steps in {r['train_s']:.0f} s", flush=True)
        if k != n - 1:  # the last shard writes the table (rerun with --report-only when all are done)
            return 0
        log = json.loads(log_path.read_text()) if log_path.is_file() else {}
        meta = log.pop("_meta", meta)
    text = render(log, meta, out.read_text() if out.is_file() else "")
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
