"""``dcgan review``: verdicts, exit codes and the page, on a real git + DVC repository whose
commits hold metrics as the pipeline writes them (tests/e2e/test_dvc_pipeline.py reviews commits
of a real `dvc repro`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcgan.app import cli
from dcgan.app.retrain.gate import PairedGain
from dcgan.app.retrain.rescore import diff_of
from dcgan.app.review import verdict as V
from dcgan.app.review.page import to_html
from tests.conftest import REPO

SHIPPED = json.loads((REPO / "reports/metrics.json").read_text())  # what the evaluate stage writes
GRID = (REPO / "reports/samples.png").read_bytes()


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, metrics: dict, message: str, grid: bytes = GRID) -> str:
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports/metrics.json").write_text(json.dumps(metrics))
    (root / "reports/samples.png").write_bytes(grid)
    curves = root / "dvclive/plots/metrics/train"
    curves.mkdir(parents=True, exist_ok=True)
    (curves / "fid.tsv").write_text("step\tfid\n100\t50\n200\t" + f"{metrics['fid']}\n")
    (root / "params.yaml").write_text(f"# {message}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repository with one commit on main: the shipped metrics."""
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, capture_output=True)
    commit(tmp_path, SHIPPED, "base")
    return tmp_path


def review(repo: Path, *args: str, capsys=None) -> tuple[int, str, str]:
    code = cli.main(["review", "--repo", str(repo), "-o", str(repo / "out/review.md"), *args])
    page = (repo / "out/review.md").read_text() if (repo / "out/review.md").is_file() else ""
    said = capsys.readouterr() if capsys else None
    return code, page, (said.out + said.err) if said else ""


def with_(**changes) -> dict:
    return {**SHIPPED, **changes}


def test_a_much_worse_model_exits_1_with_worse_and_both_grids(repo: Path, capsys):
    commit(repo, with_(fid=SHIPPED["fid"] + 10), "worse", grid=GRID[:-1] + b"\0")
    code, page, said = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 1, said
    assert said.startswith("worse: fid ")
    assert page.startswith("# Review: HEAD (") and "**WORSE** on fid (the gated metric)" in page.splitlines()[2]
    assert "| fid (lower is better) | **worse** |" in page
    grids = re.findall(r"!\[[^]]*\]\((review_files/(?:base|head)_samples\.png)\)", page)
    assert grids == ["review_files/base_samples.png", "review_files/head_samples.png"]
    assert (repo / "out/review_files/base_samples.png").read_bytes() == GRID
    assert (repo / "out/review_files/head_samples.png").read_bytes() != GRID
    assert "review_files/curves.png" in page and (repo / "out/review_files/curves.png").stat().st_size > 1000
    # --fail-on never: the same page, exit 0
    assert review(repo, "HEAD~1", "HEAD", "--fail-on", "never")[0] == 0


def test_an_unchanged_model_exits_0_and_a_change_inside_the_noise_is_within_noise(repo: Path, capsys):
    commit(repo, SHIPPED, "a comment in params.yaml")
    code, page, said = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 0 and said.startswith("no change: fid ") and "**NO CHANGE** on fid" in page
    commit(repo, with_(fid=SHIPPED["fid"] + 0.3 * SHIPPED["fid_se"]), "noise")
    code, page, said = review(repo, "HEAD~2", "HEAD", capsys=capsys)
    assert code == 0 and "**WITHIN NOISE** on fid" in page, said
    commit(repo, with_(fid=SHIPPED["fid"] - 5 * SHIPPED["fid_se"]), "better")
    code, page, _ = review(repo, "HEAD~3", "HEAD", capsys=capsys)
    assert code == 0 and "**BETTER** on fid" in page


def test_another_instrument_exits_2_naming_the_keys(repo: Path, capsys):
    commit(repo, with_(**{"protocol.extractor_id": "classifier-ms:000000000000",
                          "protocol.reference_id": "0000000000000000"}), "evaluator.seed=1")
    code, page, said = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 2
    assert said.startswith("not comparable: ") and "protocol.extractor_id" in said and "protocol.reference_id" in said
    assert "## Protocol: not comparable" in page and "## Tests" not in page
    assert "- `protocol.extractor_id: " in page and "- `protocol.reference_id: " in page


def test_the_workspace_is_the_default_head(repo: Path, capsys):
    (repo / "reports/metrics.json").write_text(json.dumps(with_(fid=SHIPPED["fid"] + 10)))
    code, page, _ = review(repo, capsys=capsys)  # main against the workspace
    assert code == 1 and page.startswith("# Review: workspace against main (")


BAD = [
    (["no-such-branch"], "'no-such-branch' names no commit"),
    (["--", "--output=x"], "'--output=x' names no commit"),  # user text is a value, never an option
    (["main", "--metric", "precision"], "invalid choice"),
    (["main", "--margin", "fid"], "--margin 'fid': write METRIC=NUMBER"),
    (["main", "--margin", "recall=1"], "--margin recall=1.0: needs a metric of fid"),
    (["main", "--alpha", "0.7"], "--alpha must be in (0, 0.5)"),
]


def test_bad_input_exits_3_with_one_line(repo: Path, capsys):
    for args, says in BAD:
        code, _, said = review(repo, *args, capsys=capsys)
        assert code == 3 and says in said, (args, said)
        assert not (repo / "out").exists()  # nothing written


def test_a_revision_without_metrics_or_with_broken_metrics_exits_3(repo: Path, capsys):
    (repo / "reports/metrics.json").unlink()
    git(repo, "commit", "-q", "-am", "no metrics")
    code, _, said = review(repo, "HEAD", "HEAD~1", capsys=capsys)
    assert code == 3 and "has no reports/metrics.json" in said, said
    (repo / "reports/metrics.json").write_text("[1, 2]")
    code, _, said = review(repo, "HEAD~1", capsys=capsys)
    assert code == 3 and "not a JSON object" in said, said
    assert cli.main(["review", "main", "--repo", str(repo), "-o", str(repo / "review.txt")]) == 3


def test_the_html_page_names_only_images_that_exist(repo: Path, capsys):
    commit(repo, with_(fid=SHIPPED["fid"] + 10), "worse")
    review(repo, "HEAD~1", "HEAD", capsys=capsys)
    html = (repo / "out/review.html").read_text()
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(srcs) == 3 and all((repo / "out" / s).is_file() for s in srcs), srcs
    assert "<table>" in html and "WORSE" in html


def se_diff(old: float, new: float, se: float, key: str = "fid") -> dict:
    return diff_of({key: old, f"{key}_se": se}, {key: new, f"{key}_se": se})


def test_the_rule_is_the_gates_in_both_directions():
    # lower is better for FID: +z*se*sqrt(2) beyond the noise is worse at alpha 0.05
    edge = 1.6449 * np.sqrt(2) * 0.5
    assert V.judge_metric(se_diff(5, 5 + edge * 1.01, 0.5), "fid").word == V.WORSE
    assert V.judge_metric(se_diff(5, 5 + edge * 0.99, 0.5), "fid").word == V.NOISE
    assert V.judge_metric(se_diff(5, 5 - edge * 1.01, 0.5), "fid").word == V.BETTER
    # higher is better for IS
    assert V.judge_metric(se_diff(5, 5 + edge * 1.01, 0.5, "is_mean"), "is_mean").word == V.BETTER
    # a margin widens "within noise" on both sides; so does the retrain noise
    assert V.judge_metric(se_diff(5, 5 + edge * 1.01, 0.5), "fid", margin=0.1).word == V.NOISE
    assert V.judge_metric(se_diff(5, 5 + edge * 1.3, 0.5), "fid", retrain_sd=0.5).word == V.NOISE
    assert V.judge_metric(se_diff(5, 5, 0.5), "fid").word == V.NO_CHANGE
    # no standard error: the change cannot be told from noise
    assert V.judge_metric(diff_of({"fid": 5}, {"fid": 9}), "fid").word == V.NOT_COMPARABLE


def test_the_paired_test_decides_fid_where_it_ran():
    up = PairedGain(gain=-2.0, low=-2.5, high=-1.5, p_value=0.99, resamples=200, n=100)
    down = PairedGain(gain=2.0, low=1.5, high=2.5, p_value=0.004, resamples=200, n=100)
    v = V.judge_metric(se_diff(5, 7, 5.0), "fid", paired=(up, down))  # the standard errors alone: noise
    assert v.word == V.WORSE and v.p_worse == 0.004 and "paired bootstrap" in v.test
    assert V.judge(se_diff(5, 7, 5.0), paired=(up, down)).exit_code() == 1


def test_to_html_keeps_the_markdown_tables_and_images():
    out = to_html("# T\n\n| a | b |\n|---|---|\n| ![x](f/x.png) | 2 |\n", "T")
    assert out.startswith("<!DOCTYPE html>") and "<table>" in out and '<img alt="x" src="f/x.png"' in out


WORKFLOW = REPO / ".github/workflows/review.yml"


def test_the_review_workflow_is_valid_and_runs_the_tested_script(tmp_path: Path):
    check = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    ok = subprocess.run([*check, str(WORKFLOW)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the check can fail: a misspelt key is refused
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("timeout-minutes:", "timout-minutes:"))
    assert subprocess.run([*check, str(bad)], capture_output=True, text=True).returncode != 0
    text = WORKFLOW.read_text()
    # the commands it runs are the ones tests/e2e/test_dvc_pipeline.py runs (.ci/review), the
    # base branch passed as a value through the environment, never spliced into the script
    assert '.ci/review "origin/${BASE_REF}" review.md' in text and "BASE_REF: ${{ github.base_ref }}" in text
    assert "cml comment create --publish review.md" in text and "1) echo \"::error::worse" in text
    assert (REPO / ".ci/review").stat().st_mode & 0o111


def test_the_retrain_noise_applies_only_to_runs_measured_like_it(repo: Path, capsys):
    from dcgan.app.review import NOISE_PROTOCOL

    noise = {"runs": [0, 1, 2], "machine": "m", "retrain_sd": {"fid": 10.0, "is_mean": 0.0, "kid_mean": 0.0},
             "protocol": {k: SHIPPED.get(f"protocol.{k}") for k in NOISE_PROTOCOL}}
    (repo / "reports/review_noise.json").write_text(json.dumps(noise))
    commit(repo, with_(fid=SHIPPED["fid"] + 10), "worse by 10")
    code, page, _ = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 0 and "**WITHIN NOISE** on fid" in page  # 10 is inside two retrains' spread of 10
    assert "retrain noise from " in page and "fid 10" in page
    # measured on other data (another holdout size): not used, and the page says so
    noise["protocol"]["n_samples"] += 1
    (repo / "reports/review_noise.json").write_text(json.dumps(noise))
    code, page, _ = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 1 and "was measured on other runs (n_samples differ): not used" in page
    # --retrain-sd wins over the file; none turns the file off
    assert review(repo, "HEAD~1", "HEAD", "--retrain-sd", "fid=10")[0] == 0
    (repo / "reports/review_noise.json").write_text("{}")
    code, _, said = review(repo, "HEAD~1", "HEAD", capsys=capsys)
    assert code == 3 and "is not benchmarks/review_noise.py's output" in said
    assert review(repo, "HEAD~1", "HEAD", "--retrain-noise", "none")[0] == 1
