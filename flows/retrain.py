"""Scheduled retraining around the DVC pipeline, with a promotion gate (Prefect).

    python flows/retrain.py -S train.lr=1e-3 --name lr-1e-3      # one run now
    python flows/retrain.py --serve --cron "0 3 * * 1"          # serve on a schedule
    prefect deploy --all                                          # or deploy prefect.yaml

The flow drives DVC and never re-implements a stage, so dvc.lock stays the record of what ran:

1. a promotion a crash interrupted is finished or undone; modified tracked files refuse the run
   in one line (a run starts from what is committed); the git remote's tags are fetched, so the
   champion is the remote's version in ``stage``;
2. the data brought up to date (``dvc update`` of imports, ``dvc add`` of added folders, the
   changed .dvc files committed), then ``dvc pull`` when a DVC remote is configured; with the
   champion's own tree and no override that changes a value, "nothing new since vX" and no
   training;
3. the pipeline as a named experiment, ``dvc exp run --temp -n NAME -S key=value ...``, in a
   temporary copy, so the workspace is untouched until a promotion; its checkpoints kept outside
   the copy (a retry or the next run resumes); stopped with its stages after
   ``experiment_timeout`` seconds, or when the run is stopped (Ctrl-C, SIGTERM, cancellation);
4. the champion sampled and scored by the candidate's own sample and evaluate stages, params,
   evaluator and data (dcgan.app.retrain.rescore); none yet: the first model, judged on its own
   floors; one that cannot be re-scored refuses promotion, in one line with the ways on
   (``allow_first``);
5. the gate (dcgan.app.retrain.gate): a one-sided test at level ``alpha`` that the gain is more
   than ``min_improvement``: for FID a paired bootstrap of both models' features on all
   generated samples, otherwise the runs' bootstrap standard errors; then the guardrails;
6. promotion, all or nothing (dcgan.app.retrain.promotion): ``dvc exp apply`` of the
   experiment's commit id, a commit of what it changed on ``branch``, a GTO version of the
   ``generator`` artifact assigned to ``stage``, ``dvc push``, one ``git push --atomic`` of the
   commit and both tags; any failure puts the repository back as it was;
7. ``dvc exp push`` of the experiment. Failures, crashes, cancellations and promotions are sent
   to ``$DCGAN_NOTIFY`` (Apprise URLs).

Artifacts with stable keys (history across runs in the UI): ``dcgan-metrics-diff`` (markdown),
``dcgan-metrics`` (table), ``dcgan-samples`` (champion and candidate grids, inline pictures).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.tasks import exponential_backoff
from pydantic import Field

from dcgan.app import retrain as rt
from dcgan.app import review
from dcgan.core import files
from dcgan.metrics.registry import gate_keys

ARTIFACT_DIFF, ARTIFACT_TABLE, ARTIFACT_SAMPLES = "dcgan-metrics-diff", "dcgan-metrics", "dcgan-samples"
# the gate's metric: one of the metric registry's ranked keys (a Literal in the deployment schema)
GateMetric = Literal[gate_keys()]  # type: ignore[valid-type]
Paired = tuple[rt.PairedGain, rt.PairedGain] | None
"""The paired FID test both ways (candidate better, candidate worse), where it ran."""
NETWORK_RETRIES = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=10),
                   "retry_jitter_factor": 0.5}


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _log(line: str) -> None:
    get_run_logger().info(line)


def _workspace(workspace: str | None) -> Path:
    """The DVC project to work in: the argument, $DCGAN_WORKSPACE, or the current directory."""
    root = Path(workspace or os.environ.get("DCGAN_WORKSPACE") or ".").resolve()
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise rt.UserError(f"{root} is not a DVC project (no dvc.yaml / .dvc); set workspace")
    return root


@task(**NETWORK_RETRIES)
def pull_inputs(root: Path) -> None:
    # --allow-missing: outputs that were never pushed (a new remote) are rebuilt, not an error
    rt.check("dvc", ["pull", "--allow-missing"], root, _log)


def _worth_retrying(task, task_run, state) -> bool:
    """Retry an experiment whose stage was killed or crashed (out of memory, a lost device), not
    one that ran out of time or stopped on a user error (bad params or data: the same again)."""
    try:
        state.result()
    except rt.StageFailed as exc:
        return exc.retryable
    except BaseException:  # noqa: BLE001 (a timeout or a user error: the same again)
        return False
    return False


@task(retries=1, retry_delay_seconds=30, retry_condition_fn=_worth_retrying)
def train_candidate(root: Path, name: str, overrides: dict[str, str], timeout: float) -> str:
    # the limit is enforced on the dvc process group itself: a Prefect task timeout alone
    # would leave `dvc exp run` and its stages running. The checkpoints live outside the
    # experiment's temporary copy, so a retry (or the next run) resumes where this one stopped
    return rt.run_experiment(root, name, overrides, _log, timeout=timeout,
                             env={rt.CHECKPOINT_STORE_ENV: str(root / rt.CHECKPOINT_STORE)})


@task
def refresh_inputs(root: Path) -> list[str]:
    """The data brought up to date from their sources (dvc update / dvc add), committed."""
    return rt.refresh_data(root, _log)


@task(**NETWORK_RETRIES)
def fetch_champions(root: Path) -> str | None:
    """The git remote's tags, so the champion is the remote's version in the stage, not only what
    this clone happens to hold (a fresh clone, a process worker that never fetched)."""
    return rt.fetch_tags(root, _log)


@task
def gate_candidate(root: Path, name: str, rev: str, metric: str, min_improvement: float, alpha: float,
                   resamples: int, stage: str, timeout: float, allow_first: bool) -> tuple[dict, rt.Comparison, Paired]:
    """The champion (the model in ``stage``) re-scored by the candidate's instrument, then the
    gate. With no champion, the first model, checked against its own floors only. A champion
    that cannot be re-scored refuses the run (one line with the ways out), unless
    ``allow_first``. Also the paired FID test both ways, where it ran (the page's verdicts)."""
    champion, paired = rt.stage_tag(root, stage), None
    if champion is None:
        diff = rt.candidate_diff(root, rev)
        comparison = rt.decide(diff, metric, min_improvement, None, alpha, champion=False)
        comparison.reason = f"no version of {rt.ARTIFACT} is in stage {stage}: {comparison.reason}"
    else:
        try:
            scored = rt.score_champion(root, rev, champion, root / rt.RETRAIN_REPORTS / name / "champion", _log,
                                       min_improvement, resamples, timeout)
            diff = scored.diff
            comparison = rt.decide(diff, metric, min_improvement, scored.paired if metric == "fid" else None, alpha)
            if scored.paired is not None and scored.paired_worse is not None:
                paired = (scored.paired, scored.paired_worse)
            comparison.reason = f"champion {champion} re-scored by the candidate's instrument: {comparison.reason}"
        except rt.Unscorable as exc:
            diff = rt.candidate_diff(root, rev)
            if allow_first:
                comparison = rt.decide(diff, metric, min_improvement, None, alpha, champion=False)
                comparison.reason = (f"allow_first: the champion {champion} cannot be re-scored ({exc}), so this "
                                     f"run is judged as a first model: {comparison.reason}")
            else:
                comparison = rt.not_compared(metric, rt.unscorable_way_out(root, champion, stage, exc))
    get_run_logger().info(comparison.reason)
    return diff, comparison, paired


@task
def report_candidate(root: Path, name: str, rev: str, overrides: dict[str, str], diff: dict,
                     comparison: rt.Comparison, paired: Paired = None, alpha: float = rt.ALPHA) -> Path:
    """The run's report: files under reports/retrain/NAME/ and the three artifacts. The metrics
    diff is ``dcgan review``'s page (one renderer): its pictures are files beside
    metrics_diff.md, and inline in the Prefect UI."""
    folder = rt.own_folder(root / rt.RETRAIN_REPORTS) / name
    rt.export_files(root, rev, [rt.SAMPLE_GRID], folder)
    grids = [review.Picture("champion (re-scored here)", "champion/samples.png",
                            _read(folder / "champion" / "samples.png")),
             review.Picture(f"candidate {name}", "samples.png", _read(folder / "samples.png"))]
    page = functools.partial(review.retrain_page, name, overrides, diff, comparison, grids, paired=paired,
                             alpha=alpha)
    files.write_text(folder / "metrics_diff.md", page(link=lambda file, _: file))
    markdown = page(link=review.data_uri)
    new = {k: row["new"] for k, row in diff.items()}
    files.write_json(folder / "metrics.json", new)
    create_markdown_artifact(key=ARTIFACT_DIFF, markdown=markdown,
                             description=f"{name}: baseline vs new metrics, overrides")
    rows = [{"metric": k, "value": v, "floor": new.get(f"{k}_floor")}
            for k, v in sorted(new.items()) if not k.startswith("protocol.") and not k.endswith("_floor")]
    create_table_artifact(key=ARTIFACT_TABLE, table=rows, description=f"{name}: new metrics")
    pictures = [("champion (re-scored here)", folder / "champion" / "samples.png"), (f"candidate {name}",
                                                                                   folder / "samples.png")]
    create_markdown_artifact(key=ARTIFACT_SAMPLES, markdown=rt.image_markdown(
        [pic for pic in pictures if pic[1].is_file()], f"{name}: samples"), description=f"{name}: sample grids")
    return folder


@task
def register_model(root: Path, name: str, rev: str, comparison: rt.Comparison,
                  stage: str) -> rt.Promotion:
    promotion = rt.promote(root, name, rev, comparison, _log, stage)
    get_run_logger().info(f"promoted {name}: {promotion.version_tag} in stage {stage} "
                          f"({promotion.stage_tag}) on {promotion.branch} at {promotion.commit[:12]}")
    return promotion


@task(**NETWORK_RETRIES)
def publish_results(root: Path, name: str) -> list[str]:
    return rt.push(root, name, _log)


def _notify_state(flow, flow_run, state) -> None:
    """State hook: a failed, crashed or cancelled run is sent to $DCGAN_NOTIFY, with its one-line
    reason and where to look."""
    ui = os.environ.get("PREFECT_UI_URL")
    where = f"\n{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui else ""
    run = (flow_run.parameters or {}).get("name") or flow_run.name
    rt.send(f"dcgan retrain {run}: {state.name}", f"{state.message or state.name}{where}", "failure", print)


@flow(name="dcgan-retrain", log_prints=True, on_failure=[_notify_state], on_crashed=[_notify_state],
      on_cancellation=[_notify_state])
def retrain(overrides: dict[str, str] = {},  # noqa: B006 (Prefect parameters are copied per run)
            name: str | None = None, promote: bool = True, metric: GateMetric = "fid",
            min_improvement: Annotated[float, Field(ge=0)] = 0.0,
            alpha: Annotated[float, Field(gt=0, lt=0.5)] = rt.ALPHA,
            gate_resamples: Annotated[int, Field(ge=20)] = 500, stage: str = rt.DEFAULT_STAGE,
            branch: str | None = None, workspace: str | None = None,
            lock_timeout: Annotated[float, Field(ge=0)] = 3600.0,
            experiment_timeout: Annotated[float, Field(gt=0)] = 6 * 3600.0,
            allow_first: bool = False) -> dict[str, Any]:
    """Retrain as a DVC experiment and promote the model if ``metric`` improves.

    Args:
        overrides: params to set for this run, ``{"train.lr": "1e-3"}`` (``dvc exp run -S``).
        name: the experiment's name (default ``retrain-<UTC time>``).
        promote: False only reports the comparison.
        metric: the gate: fid, is_mean or kid_mean (the metrics with a bootstrap standard error).
        min_improvement: a margin: how much better (metric units, >= 0) the new run must be than the
            baseline, beyond the noise.
        alpha: the gate's level: the chance that an equally good model is promoted on noise alone.
        gate_resamples: bootstrap rounds of the paired FID test.
        stage: the GTO stage a promoted version is assigned (``dvc artifacts get --stage``).
        branch: the git branch promotions are committed on (default: the current one); it is
            checked out (created at HEAD if new) before the experiment, which runs on top of it.
        workspace: the DVC project (default $DCGAN_WORKSPACE, else the working directory).
        lock_timeout: seconds to queue behind another retrain of the same workspace.
        experiment_timeout: seconds before ``dvc exp run`` and its stages are stopped.
        allow_first: promote without a comparison when the champion cannot be re-scored (another
            image size, its model gone from every remote): the way out of "never re-scorable".
    """
    logger = get_run_logger()
    overrides = {str(k): str(v) for k, v in dict(overrides).items()}
    device = os.environ.get("DCGAN_DEVICE")  # set by the deployment's job variables
    if device and "base.device" not in overrides:
        overrides["base.device"] = device
    name = name or rt.default_name()
    rt.check_inputs(overrides, name, metric, stage, min_improvement, alpha, gate_resamples)
    root = _workspace(workspace)

    with rt.workspace_lock(root, lock_timeout, logger.info), rt.children_stopped(logger.info):
        rt.recover(root, logger.info)  # a promotion a crash interrupted: finished or undone first
        rt.require_clean(root)
        on = rt.use_branch(root, branch, logger.info)
        if rt.git_remote(root):
            fetch_champions(root)
        refresh_inputs(root)  # before dvc pull, which would check the tracked folders out as committed
        if rt.remote_configured(root):
            pull_inputs(root)
        rt.say_left_out(root, logger.info)
        same = rt.nothing_new_since(root, stage, overrides)
        if same:
            logger.info(same)
            return {"name": name, "promoted": False, "reason": same, "nothing_new": True, "branch": on}
        rev = train_candidate(root, name, overrides, experiment_timeout)
        rt.own_folder(root / rt.RETRAIN_REPORTS)
        diff, comparison, paired = gate_candidate(root, name, rev, metric, min_improvement, alpha, gate_resamples,
                                                  stage, experiment_timeout, allow_first)
        folder = report_candidate(root, name, rev, overrides, diff, comparison, paired, alpha)
        promotion = None
        if promote and comparison.promote:
            promotion = register_model(root, name, rev, comparison, stage)
            rt.send(f"dcgan retrain {name}: promoted {promotion.version_tag} to {stage}", comparison.reason, "success")
        elif not promote:
            logger.info("promote=False: nothing is applied, committed or tagged")
        elif comparison.improvement is None:  # refused without a comparison: a person has to act
            rt.send(f"dcgan retrain {name}: not compared", comparison.reason, "failure", logger.info)
        pushed = publish_results(root, name)
        if promotion:
            pushed = [f"git push --atomic {promotion.branch} {promotion.version_tag} {promotion.stage_tag}", *pushed]
    return {"name": name, "experiment_rev": rev, "promoted": promotion is not None,
            "reason": comparison.reason, "gain": comparison.improvement, "gain_ci": [comparison.low, comparison.high],
            "p_value": comparison.p_value, "test": comparison.test, "branch": on, "report": str(folder), "metric": metric,
            "baseline": comparison.baseline, "new": comparison.new, "pushed": pushed,
            **({"version": promotion.version, "version_tag": promotion.version_tag,
                "stage": promotion.stage, "stage_tag": promotion.stage_tag,
                "commit": promotion.commit} if promotion else {})}


def _parse_set(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: -S expects key=value, got {item!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    d = {k: p.default for k, p in inspect.signature(retrain.fn).parameters.items()}
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a params override for this run, as in dvc exp run -S (repeatable)")
    ap.add_argument("--name", help="experiment name (default retrain-<UTC time>)")
    ap.add_argument("--no-promote", action="store_true", help="compare only; never promote")
    ap.add_argument("--metric", default=d["metric"], choices=gate_keys(), help="the promotion gate (a metric with a standard error)")
    ap.add_argument("--min-improvement", type=float, default=d["min_improvement"],
                    help="a margin: how much better than the baseline the metric must get beyond the noise "
                         "(its own units, >= 0)")
    ap.add_argument("--alpha", type=float, default=d["alpha"],
                    help="the gate's level: the chance an equally good model is promoted on noise (0.05)")
    ap.add_argument("--gate-resamples", type=int, default=d["gate_resamples"],
                    help="bootstrap rounds of the paired FID test")
    ap.add_argument("--stage", default=d["stage"], help="GTO stage a promoted version is assigned")
    ap.add_argument("--branch", default=d["branch"],
                    help="git branch promotions are committed on (default: the current one)")
    ap.add_argument("--workspace", help="the DVC project (default: the working directory)")
    ap.add_argument("--lock-timeout", type=float, default=d["lock_timeout"],
                    help="seconds to queue behind another retrain of this workspace")
    ap.add_argument("--experiment-timeout", type=float, default=d["experiment_timeout"],
                    help="seconds before dvc exp run and its stages are stopped")
    ap.add_argument("--allow-first", action="store_true",
                    help="promote without a comparison when the champion cannot be re-scored (see docs/deployment.md)")
    ap.add_argument("--serve", action="store_true", help="serve the flow on --cron instead of running once")
    ap.add_argument("--cron", default="0 3 * * 1", help="cron schedule for --serve (default: Mondays 03:00)")
    args = ap.parse_args(argv)
    params = {"overrides": _parse_set(args.set), "name": args.name, "promote": not args.no_promote,
              "metric": args.metric, "min_improvement": args.min_improvement, "alpha": args.alpha,
              "gate_resamples": args.gate_resamples, "stage": args.stage,
              "branch": args.branch, "workspace": args.workspace, "lock_timeout": args.lock_timeout,
              "experiment_timeout": args.experiment_timeout, "allow_first": args.allow_first}
    if args.serve:
        retrain.serve(name="dcgan-retrain-served", cron=args.cron,
                      parameters={k: v for k, v in params.items() if k != "name"})
        return 0
    try:
        result = retrain(**params)
    except rt.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'promoted' if result['promoted'] else 'not promoted'}: {result['reason']}")
    if result["promoted"]:
        print(f"{result['version_tag']} is in stage {result['stage']}: dvc artifacts get "
              f"<repo> {rt.ARTIFACT} --stage {result['stage']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
