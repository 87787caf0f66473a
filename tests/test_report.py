"""The report's in-training FID trajectory: D's outputs beside each FID, and the late-fall line."""

from __future__ import annotations

import pandas as pd

from dcgan.app.report_md import LATE_FALL, fid_trajectory, late_fall, render, trajectory_section


def curves(fids: list[tuple[int, float]]) -> dict[str, pd.DataFrame]:
    steps = list(range(0, 1001, 20))
    return {"fid": pd.DataFrame(fids, columns=["step", "fid"]),
            "d_real": pd.DataFrame({"step": steps, "d_real": [s / 1000 for s in steps]}),
            "d_fake": pd.DataFrame({"step": steps, "d_fake": [1 - s / 1000 for s in steps]})}


def test_each_fid_gets_the_d_outputs_logged_at_or_before_its_step():
    traj = fid_trajectory(curves([(110, 50.0), (500, 10.0)]))
    assert list(traj["step"]) == [110, 500]
    assert list(traj["d_real"]) == [0.1, 0.5]  # windows ending at steps 100 and 500
    assert list(traj["d_fake"]) == [0.9, 0.5]


def test_a_late_fall_is_flagged_with_where_the_best_was():
    fell = late_fall(fid_trajectory(curves([(200, 30.0), (400, 10.0), (1000, 31.0)])))
    assert fell.startswith("**Quality fell late in training**")
    assert "best in-training FID 10 at step 400" in fell and "step 1,000" in fell and "3.10×" in fell
    held = late_fall(fid_trajectory(curves([(200, 30.0), (400, 10.0), (1000, 10.0 * LATE_FALL * 0.99)])))
    assert held.startswith("No late fall")
    assert late_fall(fid_trajectory(curves([(200, 30.0), (400, 10.0),
                                            (1000, 10.0 * LATE_FALL)]))).startswith("**Quality fell")


def test_no_fid_logged_means_no_section_and_render_includes_it_otherwise():
    assert trajectory_section({}) == [] and fid_trajectory({"loss_d": pd.DataFrame()}) is None
    data = {"dataset": "digits", "source": "sklearn", "n_train": 1, "n_holdout": 1, "channels": 1,
            "image_size": 32, "mean": [0.1], "std": [0.2]}
    model = {"g_width": 8, "d_width": 8, "latent_dim": 16, "step": 1000, "epochs": 2}
    text = render({}, data, model, {}, [], {}, "figs", curves=curves([(500, 9.0), (1000, 20.0)]))
    assert "## Quality during training" in text and "**Quality fell late" in text
    assert "## Quality during training" not in render({}, data, model, {}, [], {}, "figs")
