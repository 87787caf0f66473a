"""train.precision: auto picks bf16 only where the hardware runs it fast (each kind of machine
faked), the loop and the stages record what it became, and TQDM_DISABLE silences every bar."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dcgan.app.params.whole import parse_params
from dcgan.app.recipe import gan_config, make_run, resolve_recipe
from dcgan.core.devices import cpu_flags, resolve_precision
from dcgan.core.progress import progress
from tests.conftest import CPU, fit, tiny_params

CUDA = torch.device("cuda")
X86 = {"fpu", "sse2", "avx", "avx2", "fma"}
SAPPHIRE = X86 | {"avx512f", "avx512bw", "avx512_bf16", "amx_bf16", "amx_tile"}
COOPER = X86 | {"avx512f", "avx512bw", "avx512_bf16"}
SKYLAKE = X86 | {"avx512f", "avx512bw", "avx512dq"}


def no_probe():
    raise AssertionError("the flags settle it: no timing probe")


@pytest.mark.parametrize(("capability", "flags", "want", "words"), [
    ("AVX512", COOPER, "bf16", "avx512_bf16"),  # Cooper Lake, Zen 4/5: AVX-512 BF16
    ("AVX512", SAPPHIRE, "bf16", "amx_bf16/avx512_bf16"),  # Sapphire Rapids: AMX too
    ("AVX512", SKYLAKE, "fp32", "no AVX-512 BF16 or AMX units"),  # AVX-512 without BF16
    ("AVX2", X86, "fp32", "no AVX-512 BF16 or AMX units"),  # this project's AVX2-only EPYC
    ("AVX2", COOPER, "fp32", "PyTorch's CPU capability is AVX2"),  # ATEN_CPU_CAPABILITY=avx2
    ("DEFAULT", {"fp", "asimd", "sve"}, "fp32", "no bf16 in the CPU features"),  # Arm, no BF16
])
def test_auto_on_cpus_decided_by_capability_and_flags(capability, flags, want, words):
    got, why = resolve_precision("auto", CPU, capability=capability, flags=flags, probe=no_probe)
    assert got == want
    assert why.startswith("auto:") and words in why and capability in why


@pytest.mark.parametrize(("flags", "ratio", "want"), [
    (None, 1.9, "bf16"),  # flags unreadable (not Linux): the probe decides
    (None, 0.05, "fp32"),
    (None, 1.1, "fp32"),  # faster, but not by enough to be worth the rounding
    ({"fp", "asimd", "bf16"}, 2.5, "bf16"),  # an Arm CPU that says bf16: confirmed by timing
    ({"fp", "asimd", "bf16"}, 0.5, "fp32"),
])
def test_auto_probes_where_the_flags_do_not_settle_it(flags, ratio, want):
    calls = []

    def probe():
        calls.append(1)
        return ratio

    got, why = resolve_precision("auto", CPU, capability="DEFAULT", flags=flags, probe=probe)
    assert (got, len(calls)) == (want, 1)
    assert f"{ratio:.2f}x" in why


@pytest.mark.parametrize(("cc", "want"), [((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"),
                                          ((7, 5), "fp32"), ((6, 0), "fp32")])
def test_auto_on_cuda_follows_the_compute_capability(cc, want):
    got, why = resolve_precision("auto", CUDA, cuda_capability=cc, probe=no_probe)
    assert got == want and f"{cc[0]}.{cc[1]}" in why


def test_auto_elsewhere_is_fp32_and_explicit_values_pass_through():
    assert resolve_precision("auto", torch.device("mps"), probe=no_probe)[0] == "fp32"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, CPU, capability="AVX2", flags=X86, probe=no_probe) == (
            explicit, "as set")


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\n"
                   "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512_bf16\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\nCPU implementer\t: 0x41\n")
    assert cpu_flags(str(x86)) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert cpu_flags(str(arm)) == {"fp", "asimd", "bf16", "sve"}
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_the_loop_refuses_auto_and_trains_exactly_the_resolved_format(tmp_path, data):
    """Precision is decided once, by the train stage: the library refuses ``auto``, and a run
    given the resolved format is the run the stage makes (model.json records it: test_stages)."""
    want, _ = resolve_precision("auto", CPU)
    p = dataclasses.replace(resolve_recipe(parse_params(tiny_params()).train, "grey"), precision="auto")
    cfg = gan_config(p, 16, 1)
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        make_run(p, cfg, batch_size=p.batch_size, precision=p.precision)
    ran = fit(dataclasses.replace(p, precision=want), cfg, data, tmp_path / "x", "fp", stop_after=2)
    assert ran.step == 2


def test_shipped_params_say_auto():
    from tests.conftest import shipped_params

    assert shipped_params()["train"]["precision"] == "auto"
    with pytest.raises(Exception, match="train.precision"):
        parse_params(tiny_params(train={"precision": "fp8"}))


# --- TQDM_DISABLE ------------------------------------------------------------------------------


def test_tqdm_disable_beats_an_explicit_disable_false(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress(range(3), disable=False).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not progress(range(3), disable=False).disable
    assert progress(range(3), disable=True).disable
    monkeypatch.delenv("TQDM_DISABLE")
    assert not progress(range(3), disable=False).disable


@pytest.mark.parametrize("env", ["1", None])
def test_training_bar_obeys_tqdm_disable(tmp_path, data, monkeypatch, capsys, env):  # noqa: F811
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    p = resolve_recipe(parse_params(tiny_params()).train, "grey")
    fit(p, gan_config(p, 16, 1), data, tmp_path, "fp", stop_after=2)
    err = capsys.readouterr().err
    assert ("train:" in err) == (env is None), err  # the bar's "train: ..% ..| 2/5 [..step/s]"
