"""Retraining around the DVC pipeline: bring the data up to date, run a named experiment, score
the champion with its instrument, decide promotion, and register a promoted generator as a GTO
version, all or nothing.

Nothing here re-implements a stage: experiments run through ``dvc exp run``, metrics are
compared through ``dvc metrics diff``, and a promotion applies the experiment with
``dvc exp apply``, commits what it changed (``dvc.lock``, params, metrics) and registers the
generator artifact declared in ``dvc.yaml`` with GTO (a version tag and a stage tag). So git
holds the record of what ran and what was promoted, and anyone can fetch the model with
``dvc artifacts get <repo> generator --stage prod``. The Prefect flow (flows/retrain.py)
sequences these functions; they are plain Python so that they can be tested and reused
without Prefect.

Modules, one job each: :mod:`.shell` (running dvc/gto/git, stopping what was started, fetching
tags), :mod:`.experiment` (inputs, a clean start, ``dvc exp run``), :mod:`.fresh` (new data,
"nothing new"), :mod:`.notify` (messages, pictures), :mod:`.gate` (the promotion decision: one protocol, a gain beyond the noise), :mod:`.paired` (the
paired FID test on both runs' features), :mod:`.rescore` (the champion scored by the candidate's
instrument; its page is :func:`dcgan.app.review.retrain_page`), :mod:`.promotion` (commit, GTO tags, atomic push, undo, recovery), :mod:`.lock` (one run per workspace).
The names below are the flow's API.
"""

from dcgan.app.retrain.constants import (
    ARTIFACT,
    CHECKPOINT_STORE,
    CHECKPOINT_STORE_ENV,
    DEFAULT_STAGE,
    FEATURES,
    JOURNAL,
    LOCK_FILE,
    METRICS,
    RETRAIN_REPORTS,
    SAMPLE_GRID,
)
from dcgan.app.retrain.experiment import (
    check_inputs,
    default_name,
    experiment_rev,
    left_out_data,
    modified_tracked,
    require_clean,
    run_experiment,
    say_left_out,
)
from dcgan.app.retrain.fresh import data_sources, nothing_new, nothing_new_since, refresh_data
from dcgan.app.retrain.gate import (
    ALPHA,
    Comparison,
    PairedGain,
    decide,
    guardrails,
    not_compared,
    protocol_mismatch,
)
from dcgan.app.retrain.lock import WorkspaceBusy, workspace_lock
from dcgan.app.retrain.notify import image_markdown, send
from dcgan.app.retrain.paired import features_match, paired_fid_gain
from dcgan.app.retrain.promotion import (
    STEPS,
    Promotion,
    PromotionFailed,
    export_files,
    own_folder,
    promote,
    push,
    recover,
    stage_tag,
    undo,
)
from dcgan.app.retrain.rescore import (
    ChampionScore,
    Unscorable,
    candidate_diff,
    score_champion,
    unscorable_way_out,
    version_of,
)
from dcgan.app.retrain.shell import (
    ExperimentTimeout,
    StageFailed,
    check,
    children_stopped,
    failure_message,
    fetch_tags,
    git_out,
    git_remote,
    remote_configured,
    run_logged,
    stop_all,
    tool_env,
    use_branch,
)
from dcgan.core.errors import UserError

__all__ = ["CHECKPOINT_STORE", "CHECKPOINT_STORE_ENV", "data_sources", "nothing_new", "nothing_new_since", "refresh_data", "image_markdown", "send", "JOURNAL", "STEPS", "PromotionFailed", "recover", "undo", "candidate_diff", "unscorable_way_out", "version_of",
           "children_stopped", "fetch_tags", "stop_all", "left_out_data", "modified_tracked", "require_clean",
           "say_left_out", "ALPHA", "ARTIFACT", "ChampionScore", "Comparison", "Unscorable", "not_compared", "score_champion", "FEATURES", "PairedGain", "paired_fid_gain", "protocol_mismatch", "DEFAULT_STAGE", "ExperimentTimeout", "LOCK_FILE", "METRICS", "Promotion", "RETRAIN_REPORTS", "SAMPLE_GRID", "StageFailed", "UserError", "WorkspaceBusy", "check", "check_inputs", "decide", "default_name", "experiment_rev", "export_files", "failure_message", "features_match", "git_out", "git_remote", "guardrails", "own_folder", "promote", "push", "remote_configured", "run_experiment", "run_logged", "stage_tag", "tool_env", "use_branch", "workspace_lock"]
