"""The used-by paths with real DVC: repro, no-op repro, experiments, metrics diff."""

import json
import shutil

import pytest
import yaml

from dcgan.core import files
from tests.conftest import REPO

STAGES = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])  # every stage dvc.yaml declares

pytestmark = pytest.mark.slow


def test_repro_experiments_and_metrics_diff(project):
    # 1. dvc repro builds every stage
    first = project.dvc("repro")
    out = first.stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, out
    m1 = project.metrics()
    assert m1["fid"] > 0 and "is_mean" in m1
    assert (project.root / "reports/samples.png").is_file()
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    project.git_commit("first run")
    plots = json.loads(project.dvc("plots", "show", "--json").stdout)["data"]
    for plot_id in ("train_losses", "discriminator_outputs", "fid_during_training",
                    "reports/samples.png", "reports/reconstructions.png"):
        assert plot_id in plots, sorted(plots)

    # 1b. the shipped cache link type stores each large output once: the workspace file is the
    #     cache file (a hard link), and the train stage took the data digest from augment's
    #     record instead of re-reading the file
    aug = project.root / "data/augmented/train.npy"

    def stored_once() -> bool:
        cached = [f for f in (project.root / ".dvc/cache").rglob("*") if f.stat().st_ino == aug.stat().st_ino]
        return aug.stat().st_nlink == 2 and len(cached) == 1

    assert stored_once(), "the output is a copy of its cache file"
    assert "hashing it again" not in first.stdout + first.stderr
    shutil.rmtree(project.root / "data/augmented")
    project.dvc("checkout", "data/augmented")
    assert stored_once() and project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")
    assert files.recorded_digest(aug) == files.file_digest(aug)

    # 2. nothing changed: nothing runs
    again = project.dvc("repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout + again.stderr
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")

    # 2b. dvc status sees an edit to a module a stage runs, even one it imports indirectly
    # (seeding.py: the seed of every random draw), and only in the stages that run it
    # (issue 32's fan-out: the train section's schema, the metric catalogue and a dataset loader
    # rerun only the stages that read them; docs/fan_out.md prints the whole table)
    for module, expected in (("core/seeding.py", {"augment", "evaluator", "train", "sample", "evaluate"}),
                             ("app/report_md.py", {"report"}),
                             ("app/params/train.py", {"validate", "train", "report"}),
                             ("metrics/registry.py", {"validate", "evaluate", "report"}),
                             ("data/loaders.py", {"validate", "prepare"})):
        path = project.root / "src/dcgan" / module
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        stale = json.loads(project.dvc("status", "--json").stdout)
        assert set(stale) == expected, (module, sorted(stale))
        path.write_text(original)
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")

    # 2c. a train.* field's docstring edited: validate, train and report rerun; train's outputs
    #     come out byte-identical, so the stages after it stay cached, as DVC intends
    schema = project.root / "src/dcgan/app/params/train.py"
    text = schema.read_text()
    schema.write_text(text.replace('"""Adam beta1 (0.5 in the DCGAN paper)."""', '"""Adam\'s beta1 (0.5 in the DCGAN paper)."""'))
    assert schema.read_text() != text
    ran = project.dvc("repro").stdout
    assert {s for s in STAGES if f"Running stage '{s}'" in ran} == {"validate", "train", "report"}, ran
    project.git_commit("a train.* docstring")

    # 2c'. the review of that commit: no bit of the model changed, so nothing did
    r = project.sh("dcgan", "review", "-o", "out/review.md", "--", "HEAD~1", "HEAD", check=False)
    assert r.returncode == 0 and r.stdout.startswith("no change: fid "), r.stdout + r.stderr

    # 2d. the instrument holds still (issue 38): another training seed or device reruns the
    #     training run's stages only; the split, the copies and the evaluator have seeds of their
    #     own and the evaluator builds on the CPU, so the champion and a retrained candidate are
    #     measured by the same extractor against the same reference
    text = (project.root / "params.yaml").read_text()
    for key, value in (("seed", 1), ("device", "cpu")):
        params = yaml.safe_load(text)
        assert params["base"][key] != value
        params["base"][key] = value
        (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        stale = json.loads(project.dvc("status", "--json").stdout)
        assert set(stale) == {"validate", "train", "sample", "evaluate", "report"}, (key, sorted(stale))
    (project.root / "params.yaml").write_text(text)
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")

    # 3. an experiment with its own params and metrics, listed by dvc exp show
    exp = project.dvc("exp", "run", "-n", "lr-exp", "-S", "train.lr=0.001")
    assert "Running stage 'train'" in exp.stdout and "Running stage 'prepare'" not in exp.stdout
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    exps = [e for row in shown for e in (row.get("experiments") or [])]
    named = [e for e in exps if e.get("name") == "lr-exp"]
    assert named, json.dumps(shown)[:2000]
    data = named[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["lr"] == 0.001
    exp_metrics = data["metrics"]["reports/metrics.json"]["data"]
    assert exp_metrics["fid"] != m1["fid"]
    assert "loss_d" in data["metrics"]["dvclive/metrics.json"]["data"]["train"]

    # 4. the experiment applied and committed: dvc metrics diff between the two commits shows
    #    what changed (the trained model, so FID)
    project.dvc("exp", "apply", "lr-exp")
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")
    project.git_commit("train.lr 0.001")
    diff = json.loads(project.dvc("metrics", "diff", "HEAD~1", "HEAD", "--json").stdout)
    changed = diff["reports/metrics.json"]
    assert changed["fid"]["old"] == pytest.approx(m1["fid"]) and changed["fid"]["new"] == pytest.approx(exp_metrics["fid"])
    assert "protocol.n_samples" not in changed  # scored as before
    assert (project.root / "reports/report.md").is_file()

    # 4a. the pull-request review as the CI job runs it (.ci/review: rebuild, then dcgan review):
    #     both runs' features are in the cache, so FID is tested paired; the page has both grids
    #     and the curves, review.html beside it; the exit code is the verdict's
    shutil.copytree(REPO / ".ci", project.root / ".ci")
    r = project.sh(".ci/review", "HEAD~1", "out/review.md", check=False)
    page = (project.root / "out/review.md").read_text()
    word = {0: ("better", "within noise"), 1: ("worse",)}[r.returncode]
    assert r.stdout.splitlines()[-1].startswith(word) and "| fid (lower is better) | **" in page, r.stdout + r.stderr
    assert "paired bootstrap on both runs' features" in page and "FID tested with the paired bootstrap" in page
    for picture in ("base_samples.png", "head_samples.png", "curves.png"):
        assert f"](review_files/{picture})" in page and (project.root / "out/review_files" / picture).is_file()
    assert (project.root / "out/review.html").is_file()

    # 4b. an evaluate-only key: only the scoring stages are stale (scored differently, trained the same)
    text = (project.root / "params.yaml").read_text()
    params = yaml.safe_load(text)
    params["evaluate"]["num_samples"] = 50
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(project.dvc("status", "--json").stdout)) == {"validate", "evaluate", "report"}
    (project.root / "params.yaml").write_text(text)

    # 5. a bad value stops `dvc exp run -S` / `dvc repro` in the validate stage, before DVC
    #    deletes any stage's outputs: the workspace's models, data and metrics stay as they were
    def snapshot() -> dict[str, bytes]:
        files = [f for d in ("models/gan", "data/augmented", "data/prepared") for f in (project.root / d).rglob("*")]
        files += [project.root / "reports/metrics.json", project.root / "reports/samples.png"]
        return {str(f.relative_to(project.root)): f.read_bytes() for f in files if f.is_file()}

    before = snapshot()
    bad = project.dvc("exp", "run", "-S", "train.lr=-1", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "error: train.lr must be > 0, got -1.0" in out, out
    assert "Running stage 'train'" not in out
    assert snapshot() == before
    project.sh("git", "checkout", "--", "params.yaml")

    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["prepare"]["image_size"] = 48
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = project.dvc("repro", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "error: prepare.image_size must be a power of two" in out, out
    assert "Running stage 'prepare'" not in out
    assert snapshot() == before
    project.sh("git", "checkout", "--", "params.yaml")

    # 6. the shipped DVC remote: push, lose the cache and the outputs, pull them back
    push_delete_pull(project)


def push_delete_pull(project):
    """The repo's .dvc/config (default remote `storage`, a folder beside the repo): dvc push,
    delete the cache and the outputs, dvc pull: every output comes back byte-identical."""
    import hashlib
    import shutil

    from tests.conftest import REPO

    shutil.copy(REPO / ".dvc/config", project.root / ".dvc/config")
    remote = project.dvc("remote", "list").stdout.split()
    assert remote[:2] == ["storage", str((project.root.parent / "dcgan-dvc-storage").resolve())], remote
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")
    project.git_commit("pipeline outputs")
    # the cached outputs (the reports and dvclive files are `cache: false`: git holds them)
    outs = ("data/prepared", "data/augmented", "models/evaluator", "models/gan", "checkpoints/train",
            "data/samples/samples.npy", "data/samples/samples.json")

    def digests() -> dict[str, str]:
        files = [f for o in outs for f in ([project.root / o] if (project.root / o).is_file()
                                           else (project.root / o).rglob("*"))
                 if f.is_file() and f.name != ".gitignore"]
        return {str(f.relative_to(project.root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    before = digests()
    assert len(before) > 15
    pushed = project.dvc("push")
    assert "pushed" in pushed.stdout, pushed.stdout
    assert "are in sync" in project.dvc("status", "--cloud").stdout

    shutil.rmtree(project.root / ".dvc/cache")
    for o in outs:
        target = project.root / o
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert not any((project.root / o).exists() for o in outs)

    project.dvc("pull")
    assert digests() == before
    assert project.dvc("status").stdout.strip().startswith("Data and pipelines are up to date")
