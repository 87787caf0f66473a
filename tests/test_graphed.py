"""train.compile graph (issue 24) on the CPU: the static-buffer step is the eager step bit for bit,
its random numbers come from a tape rehearsed ahead from the same generators, and nothing in the
step reads a tensor back to the host (a check that fails when a sync is planted). The capture
itself runs on CUDA only: tests/test_graphed_cuda.py."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from dcgan.app.recipe import gan_config, make_run
from dcgan.training import graphed, objective
from dcgan.training.draws import Call, LiveDraws, Recorder, Schema, TapeDraws, rehearse
from dcgan.training.graphed import resolve_compile
from tests.conftest import CPU, digest, fit, tparams
from tests.helpers import channel_stats

SRC = str(Path(objective.__file__).resolve().parents[1])  # src/dcgan

SWITCHES = {
    "shipped": {},
    # every kind of draw (DiffAugment's three policies, WGAN-GP's weights), K = 2 and its softmax,
    # an encoder with the latent cycle, EMA, lazy R1 (two kinds of step), standardised inputs
    "everything": {"diffaug": ("color", "translation", "cutout"), "gp_lambda": 1.0, "r1_gamma": 0.1,
                   "reg_every": 2, "discriminators": 2, "d_aggregate": "softmax", "encoder": True,
                   "latent_cycle_weight": 0.5, "ema_decay": 0.9, "normalize": "meanstd"},
    # a growing batch (two more kinds of step) with lr scaling, the max aggregate, spectral norm,
    # TTUR, and an EMA whose decay ramps up (read from a device tensor set before each step)
    "schedule": {"batch_schedule": ((0, 16), (6, 32)), "lr_scaling": "sqrt", "discriminators": 2,
                 "d_aggregate": "max", "d_spectral": True, "prior": "uniform", "loss": "hinge",
                 "lr": 1e-4, "d_lr": 4e-4, "ema_decay": 0.999, "ema_rampup": 0.05},
    # ADA with colour (a grey image's share of it), p moving every 2 steps, on top of DiffAugment,
    # with K = 2 and lazy R1 (uncaptured on CUDA: its padding is read on the host)
    "ada": {"ada": "bgc", "ada_interval": 2, "ada_kimg": 0.05, "diffaug": ("translation",),
            "discriminators": 2, "r1_gamma": 0.1, "reg_every": 2},
}


def run(data, tmp_path, mode: str, over: dict, **kw):
    p = tparams(epochs=3, compile=mode, **over)
    return fit(p, gan_config(p, 16, 1, channel_stats(data)), data, tmp_path / mode, **kw)


@pytest.mark.parametrize("name", SWITCHES)
def test_the_static_step_trains_bit_identically_to_the_eager_step(data, tmp_path, name):
    eager = run(data, tmp_path, "none", SWITCHES[name])
    static = run(data, tmp_path, "graph", SWITCHES[name])
    assert static.step == eager.step >= 10
    for a, b in ((eager.g, static.g), *zip(eager.ds, static.ds, strict=True), (eager.e, static.e),
                 (eager.g_raw, static.g_raw)):
        assert (a is None) == (b is None) and (a is None or digest(a) == digest(b)), name


def test_a_static_run_resumes_exactly(data, tmp_path):
    over = SWITCHES["everything"]
    full = run(data, tmp_path / "a", "graph", over)
    run(data, tmp_path / "b", "graph", over, stop_after=7)
    resumed = run(data, tmp_path / "b", "graph", over)
    assert resumed.resumed_from_step == 6
    assert digest(resumed.g) == digest(full.g) and digest(resumed.ds[1]) == digest(full.ds[1])


def test_the_tape_holds_exactly_what_live_draws_give():
    gens = lambda key: torch.Generator().manual_seed(hash(key) % 1000)  # noqa: E731
    calls: list[Call] = []
    live = {k: Recorder(LiveDraws(gens(k), CPU), k, calls) for k in (("diffaug", 0), ("gp", 1))}
    expected = [live[("diffaug", 0)].rand(4, 1, 1, 1), live[("gp", 1)].rand(8, 1, 1, 1),
                live[("diffaug", 0)].randint(-2, 3, (4,)), live[("diffaug", 0)].rand(4, 1, 1, 1),
                live[("gp", 1)].randn(3, 2)]
    schema = Schema(tuple(calls))
    n_f, n_i = schema.sizes()
    floats, ints = torch.empty(n_f), torch.empty(n_i, dtype=torch.long)
    rehearse(schema, gens, floats, ints)
    tape = {k: TapeDraws(schema, k, floats, ints) for k in live}
    got = [tape[("diffaug", 0)].rand(4, 1, 1, 1), tape[("gp", 1)].rand(8, 1, 1, 1),
           tape[("diffaug", 0)].randint(-2, 3, (4,)), tape[("diffaug", 0)].rand(4, 1, 1, 1),
           tape[("gp", 1)].randn(3, 2)]
    assert got[-1].min() < 0  # normal draws, not uniform ones
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="where its schema has"):
        TapeDraws(schema, ("diffaug", 0), floats, ints).randint(-2, 3, (4,))  # out of order


# --- no host sync inside the step --------------------------------------------------------------


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


@contextmanager
def no_host_sync():
    """Raise when code under src/dcgan reads a tensor back to the host (``.item()``,
    ``bool(t)``, ``.cpu()``, ...): on a GPU each of these waits for the device. Calls from inside
    torch (e.g. the CPU optimizer reading its CPU step counter) are not the step's."""
    originals = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def guard(name):
        def wrapper(self, *a, **kw):
            caller = inspect.currentframe().f_back
            if caller is not None and caller.f_code.co_filename.startswith(SRC):
                raise AssertionError(f"host sync in the step: Tensor.{name} at "
                                     f"{caller.f_code.co_filename}:{caller.f_lineno}")
            return originals[name](self, *a, **kw)
        return wrapper

    for name in SYNCS:
        setattr(torch.Tensor, name, guard(name))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


class Guarded(graphed.StaticStep):
    """The static step with every run after the first of its kind (the eager one that records
    its draws) under :func:`no_host_sync`: its step function, the public constructor argument,
    wrapped."""

    def __init__(self, s, nets, objective, step_fn, **kw):
        seen: set[tuple[int, bool]] = set()

        def guarded(nets, objective, b):
            kind = (b.size, s.run.objective.regularises(b.step))
            if kind not in seen:
                seen.add(kind)
                return step_fn(nets, objective, b)
            with no_host_sync():
                return step_fn(nets, objective, b)

        super().__init__(s, nets, objective, guarded, **kw)


def test_nothing_in_the_static_step_reads_back_to_the_host(data, tmp_path, monkeypatch):
    from dcgan.training import loop

    monkeypatch.setattr(loop, "StaticStep", Guarded)
    run(data, tmp_path, "graph", SWITCHES["everything"], stop_after=8)


def test_a_planted_host_sync_fails_the_check(data, tmp_path, monkeypatch):
    from dcgan.training import loop

    monkeypatch.setattr(loop, "StaticStep", Guarded)
    # a line planted in objective.py itself: a Python branch on a tensor reads it back
    planted = ("def logged(self, d, g):\n"
               "    if float(d.loss_d) > 1e9:\n"
               "        pass\n"
               "    return real_logged(self, d, g)\n")
    scope = {"real_logged": objective.GANObjective.logged}
    exec(compile(planted, objective.__file__, "exec"), scope)  # noqa: S102 (the test's plant)
    monkeypatch.setattr(objective.GANObjective, "logged", scope["logged"])
    with pytest.raises(AssertionError, match=r"host sync in the step: Tensor.__float__"):
        run(data, tmp_path, "graph", {}, stop_after=4)


# --- the mode -----------------------------------------------------------------------------------


def test_auto_captures_where_it_can_and_the_loop_refuses_unresolved_auto():
    cuda = torch.device("cuda")
    assert resolve_compile("auto", cuda, "bf16", 1)[0] == "graph"
    assert resolve_compile("auto", CPU, "bf16", 1) == ("none", "CUDA graphs need a CUDA device, not cpu")
    assert resolve_compile("auto", cuda, "fp16", 1)[0] == "none"
    assert resolve_compile("auto", cuda, "fp32", 2)[0] == "none"
    assert resolve_compile("reduce-overhead", CPU, "fp32", 1)[0] == "reduce-overhead"
    # an explicit graph under DDP resolves as auto does (eager), and says why (issue 31, item 5)
    mode, why = resolve_compile("graph", cuda, "bf16", 2)
    assert mode == "none" and "2 processes" in why and "not captured" in why
    assert resolve_compile("graph", cuda, "bf16", 1) == ("graph", "as set")
    p = dataclasses.replace(tparams(), compile="auto")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        make_run(p, gan_config(p, 16, 1), batch_size=p.batch_size, precision=p.precision)


def test_why_a_step_is_not_captured_is_said(data, tmp_path):
    lines: list[str] = []
    run(data, tmp_path, "graph", {}, stop_after=1, log=lines.append)
    assert any("not captured (CUDA graphs need a CUDA device, not cpu)" in m for m in lines), lines


def test_inductor_with_channels_last_on_cuda_is_refused_in_one_line(data):
    """The inductor failure of issue 24 (channels_last ConvTranspose2d backward): refused before
    any work, naming the way out. (Setup checks the device; no CUDA device is needed to check.)"""
    from dcgan.app.params.typed import keyed
    from dcgan.core.errors import UserError
    from dcgan.training.distributed import SINGLE
    from dcgan.training.settings import Setup

    p = tparams(compile="default", channels_last=True)
    run = make_run(p, gan_config(p, 16, 1), batch_size=p.batch_size, precision=p.precision)
    with pytest.raises(UserError, match="^compile default with channels_last on CUDA fails in inductor"):
        Setup(run, 0, torch.device("cuda"), SINGLE)
    # the application names the key the value came from
    with pytest.raises(UserError, match="^train.compile default with .*use compile graph, or channels_last off"):
        with keyed("train"):
            Setup(run, 0, torch.device("cuda"), SINGLE)
    Setup(run, 0, CPU, SINGLE)  # on the CPU inductor handles it
    q = tparams(compile="default", channels_last=False)
    Setup(make_run(q, gan_config(q, 16, 1), batch_size=q.batch_size, precision=q.precision), 0,
          torch.device("cuda"), SINGLE)


# --- resume across devices (issue 31, item 4) ---------------------------------------------------


def as_if_saved_by_a_captured_run(path: Path) -> None:
    """Rewrite a checkpoint's optimizer groups into the form a CUDA run with compile graph saves:
    capturable Adam, its learning rate a tensor."""
    state = torch.load(path, weights_only=True)
    for opt in (state["opt_g"], *state["opt_d"], *([state["opt_e"]] if "opt_e" in state else [])):
        for group in opt["param_groups"]:
            group["capturable"], group["lr"] = True, torch.tensor(float(group["lr"]))
    torch.save(state, path)


def test_a_checkpoint_of_a_captured_run_resumes_eagerly_bit_for_bit(data, tmp_path):
    """The reverse direction of a CPU checkpoint resumed on CUDA: Adam's state saved capturable,
    with a tensor lr, resumed by a plain eager run. Loaded as saved, Adam refuses its first step;
    converted on load, the run ends exactly where an uninterrupted one does."""
    from dcgan.training.checkpoint import list_checkpoints

    over = SWITCHES["everything"]
    full = run(data, tmp_path / "a", "none", over)
    run(data, tmp_path / "b", "none", over, stop_after=7)
    newest = list_checkpoints(tmp_path / "b" / "none")[0]
    as_if_saved_by_a_captured_run(newest)
    assert torch.load(newest, weights_only=True)["opt_g"]["param_groups"][0]["capturable"] is True
    resumed = run(data, tmp_path / "b", "none", over)
    assert resumed.resumed_from_step == 6
    assert digest(resumed.g) == digest(full.g) and digest(resumed.e) == digest(full.e)


def test_an_eager_optimizer_state_takes_the_captured_form_and_back_unchanged():
    """CPU checkpoint -> capturable Adam (what a CUDA run with compile graph builds): the groups
    keep capturable and this run's lr tensor, the step counts go to the parameters' device as
    float32. Loaded plainly, the groups would say capturable False, which a captured step cannot
    run. Converted back to the plain form and stepped (with the lr the loop sets before each
    step), it matches the original bit for bit."""
    from dcgan.training.optimizers import load_optimizer

    torch.manual_seed(0)
    w = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]

    def plain(params):
        return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), foreach=True)

    original = plain(w)
    for _ in range(3):
        for t in w:
            t.grad = torch.randn_like(t)
        original.step()
    saved = copy.deepcopy(original.state_dict())  # as a checkpoint holds it: its own tensors
    twins = [torch.nn.Parameter(t.detach().clone()) for t in w]
    lr = torch.tensor(1.0)
    captured = torch.optim.Adam(twins, lr=lr, betas=(0.5, 0.999), foreach=True, capturable=True)
    naive = torch.optim.Adam(twins, lr=torch.tensor(1.0), foreach=True, capturable=True)
    naive.load_state_dict(saved)
    assert naive.param_groups[0]["capturable"] is False  # what a captured step would be handed
    load_optimizer(captured, saved)
    group = captured.param_groups[0]
    assert group["capturable"] is True and group["lr"] is lr and lr.item() == pytest.approx(2e-4)
    assert all(captured.state[t]["step"].dtype == torch.float32 for t in twins)
    back = plain(twins)
    load_optimizer(back, captured.state_dict())
    assert back.param_groups[0]["capturable"] is False and isinstance(back.param_groups[0]["lr"], float)
    back.param_groups[0]["lr"] = 2e-4  # the loop sets the lr before every step (a float32 tensor held it)
    for a, b in ((w, original), (twins, back)):
        torch.manual_seed(1)
        for t in a:
            t.grad = torch.randn_like(t)
        b.step()
    assert all(torch.equal(a, b) for a, b in zip(w, twins, strict=True))
