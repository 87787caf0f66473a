"""benchmarks/gpu_check.sh and gpu_check.py on the CPU: what of them can be checked without a GPU
(the no-CUDA exit, the arguments, the JSON and every failure rule, the CUDA tests' own logic in
a dry run, and that everything they import is on the GPU machine's image)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def passing_report(gc) -> dict:
    records = [{"check": c} for c in gc.RECORDED]
    records[0].update(gap=1e-7, bound=4e-7)
    row = {"batch": 64, "graph_img_s": 12_000.0, "eager_img_s": 7_000.0, "graph_peak_bytes": 1_100,
           "eager_peak_bytes": 1_000}
    return {"tests": {"tests": 11, "failures": 0, "errors": 0, "skipped": 0}, "records": records,
            "speed": [row, {**row, "batch": 256, "graph_img_s": 6_000.0}], "minutes_total": 5.0,
            "minutes_budget": 8.0}


def test_without_cuda_the_script_exits_non_zero_in_one_line(tmp_path):
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(tmp_path / "out")], cwd=REPO,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "no CUDA device" in lines[0], lines
    assert not (tmp_path / "out" / "gpu_check.json").exists()  # nothing checked, nothing claimed
    no_torch = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHON": "/bin/false"}, timeout=60)
    assert no_torch.returncode == 2 and no_torch.stdout.count("\n") == 1 and "has no torch" in no_torch.stdout


def test_bad_arguments_are_refused(gc):
    for argv in (["--warmup", "2"], ["--minutes", "0"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as exc:
            gc.main(argv)
        assert exc.value.code == 2


def test_each_failure_rule_fails_the_run(gc):
    assert gc.verdicts(passing_report(gc)) == []

    def fails(change, expected):
        report = passing_report(gc)
        change(report)
        got = gc.verdicts(report)
        assert any(expected in line for line in got), got

    fails(lambda r: r["tests"].update(skipped=1), "1 skipped")
    fails(lambda r: r["tests"].update(failures=2), "2 failures")
    fails(lambda r: r["tests"].update(tests=0), "no CUDA test ran")
    fails(lambda r: r["records"].pop(), "no record of the check 'auto_batch'")
    fails(lambda r: r["records"][0].update(gap=5e-7), "outside the one-ulp control")
    fails(lambda r: r["speed"][0].update(graph_img_s=7_000.0), "batch 64: the captured step (7000 img/s) is not faster")
    fails(lambda r: r["speed"][1].update(graph_peak_bytes=1_600), "batch 256: the captured step's peak memory is 1.60x")
    fails(lambda r: r.update(minutes_total=8.5), "over the budget of 8")
    slower_at_256 = passing_report(gc)
    slower_at_256["speed"][1]["graph_img_s"] = 1.0  # only batch 64 must be faster
    assert gc.verdicts(slower_at_256) == []


def test_a_run_that_leaves_steps_out_writes_its_json_and_fails(gc, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gc, "environment", lambda: {"gpu": "none (test)"})
    assert gc.main(["--out", str(tmp_path), "--skip-tests", "--skip-speed"]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] is False and report["environment"] == {"gpu": "none (test)"}
    assert report["failures"] == ["left out: the CUDA tests (--skip-tests)", "left out: the speed rows (--skip-speed)"]


def test_the_cuda_tests_dry_run_on_the_cpu_and_their_junit_and_records_are_read(gc, tmp_path):
    """tests/test_graphed_cuda.py's checks that call no CUDA API, on the CPU (fp32 only: bf16 is
    slow on AVX2 CPUs): they pass, record their numbers, and the skipped CUDA-API ones fail the
    verdict, as a skip on the GPU machine would."""
    xml, records = tmp_path / "junit.xml", tmp_path / "records.jsonl"
    env = {**os.environ, "DCGAN_CUDA_TESTS_DEVICE": "cpu", "DCGAN_GPU_RECORD": str(records)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-k", "not bf16", "-p",
                           "no:cacheprovider", f"--junitxml={xml}", "tests/test_graphed_cuda.py"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    tests = gc.parse_junit(xml)
    assert tests["tests"] >= 8 and tests["failures"] == tests["errors"] == 0 and tests["skipped"] >= 4, tests
    got = gc.read_records(records)
    assert {r["check"] for r in got} == {"captured_vs_eager", "resume", "prefetch"}
    assert all(r["gap"] == 0.0 <= r["bound"] for r in got)  # on the CPU the static step is the eager step
    lines = gc.verdicts({"tests": tests, "records": got})
    assert any("skipped" in line for line in lines) and any("'replay_sync'" in line for line in lines)


def test_what_the_gpu_check_imports_is_on_the_gpu_machine(tmp_path):
    """Import gpu_check's and the CUDA tests' modules on a Python that sees only the GPU image and
    what gpu_check.sh carries (:func:`gpu_image_python`): dvc, dvclive, prefect and their kin must
    not be needed there, and are indeed out of sight."""
    python, carried = gpu_image_python(tmp_path)
    code = textwrap.dedent("""
        import importlib, sys
        sys.path[:0] = ["benchmarks"]
        for m in ("gpu_check", "train_speed", "tests.test_graphed_cuda", "dcgan.training.autobatch"):
            importlib.import_module(m)
        for m in ("dvc", "dvclive", "prefect"):
            try:
                importlib.import_module(m)
            except ModuleNotFoundError:
                continue
            raise SystemExit(f"{m} is visible")
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), str(carried)])}
    done = subprocess.run([str(python), "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-1000:] + done.stderr[-2000:]


def test_the_pipeline_script_without_cuda_exits_non_zero_in_one_line(tmp_path):
    done = subprocess.run(["bash", "benchmarks/gpu_pipeline.sh", str(tmp_path / "out")], cwd=REPO,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "no CUDA device" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_the_wheels_named_for_the_gpu_machine_are_the_locked_versions():
    """benchmarks/gpu_wheels*.txt pin what requirements.lock pins, and name dvc, dvclive, prefect
    and gto; none of them is already on the GPU image. gpu_check_wheels.txt (make gpu-wheels-min)
    pins pydantic, its helpers and typing-extensions as the lock does."""
    def pins(path):
        return dict(line.split("==") for line in (REPO / path).read_text().splitlines()
                    if line and not line.startswith("#"))

    norm = lambda n: n.lower().replace("_", "-")  # noqa: E731
    lock = {norm(k): v.split()[0] for k, v in
            (line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line)}
    wheels = {norm(k): v for k, v in {**pins("benchmarks/gpu_wheels.txt"), **pins("benchmarks/gpu_wheels_sdist.txt")}.items()}
    carried = {norm(k): v for k, v in pins("benchmarks/gpu_check_wheels.txt").items()}
    assert set(carried) == {"pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"}
    assert all(lock[k] == v for k, v in carried.items()), {k: (v, lock.get(k)) for k, v in carried.items()}
    image = {norm(line.strip()) for line in (REPO / "benchmarks/gpu_image_packages.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {"dvc", "dvclive", "prefect", "gto"} <= set(wheels)
    assert all(lock[k] == v for k, v in wheels.items()), {k: (v, lock.get(k)) for k, v in wheels.items() if lock.get(k) != v}
    assert not set(wheels) & image


CARRIED = tuple(line.split("==")[0] for line in (REPO / "benchmarks/gpu_check_wheels.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
"""What gpu_check.sh installs into a folder of its own (``pip install --target``) on the GPU machine."""


def gpu_image_python(tmp_path):
    """A Python that sees what the GPU machine's python3 sees: a venv without pip whose
    sitecustomize hides every installed package the GPU image lacks
    (benchmarks/gpu_image_packages.txt), beside this venv's site-packages (a .pth file), and the
    carried packages copied into a folder of their own, as gpu_check.sh's ``pip install --target``
    leaves them: a carried package is found only where PYTHONPATH says. Returns (python, that folder)."""
    import importlib.metadata as md
    import shutil
    from pathlib import Path

    import pydantic

    norm = lambda n: n.lower().replace("_", "-")  # noqa: E731
    image = {norm(line.strip()) for line in (REPO / "benchmarks/gpu_image_packages.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    hidden = {name for name in CARRIED if norm(name) not in image}  # typing_extensions is on the image
    for d in md.distributions():
        if norm(d.metadata["Name"]) in image | {"dcgan"}:
            continue
        for f in d.files or []:
            top = f.parts[0]
            if top.endswith(".py"):
                hidden.add(top[:-3])
            elif len(f.parts) > 1 and not top.endswith((".dist-info", ".data")) and top != "..":
                hidden.add(top)
    hidden -= {"tests", "benchmarks", "__pycache__", "bin", "share", "include", "lib"}
    venv, carried = tmp_path / "gpu-image", tmp_path / "dcgan-site"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    ours = Path(pydantic.__file__).parents[1]
    # a .pth file's import line runs at every start of this Python (a sitecustomize may be shadowed
    # by the system's own): this venv's packages are visible, then filtered by _gpu_image
    (site / "image.pth").write_text(f"{ours}\nimport _gpu_image\n")
    carried.mkdir()
    for name in CARRIED:
        src = ours / name if (ours / name).is_dir() else ours / f"{name}.py"
        (shutil.copytree if src.is_dir() else shutil.copy)(src, carried / src.name)
    (site / "_gpu_image.py").write_text(textwrap.dedent(f"""
        import importlib.abc, importlib.machinery, sys
        HIDDEN, OURS = {sorted(hidden)!r}, {str(ours)!r}
        class Image(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if "." in name or name not in HIDDEN:
                    return None
                # found anywhere on the path but in this venv (e.g. the carried folder, when
                # PYTHONPATH names it), or nowhere
                spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if p != OURS])
                if spec is None or spec.origin is None:  # a bare folder (the repo's dvclive/) is no package
                    raise ModuleNotFoundError(f"{{name}} is not on the GPU image", name=name)
                return spec
        sys.meta_path.insert(0, Image())
    """))
    return venv / "bin" / "python", carried


def test_the_cuda_tests_child_processes_import_the_app_as_on_the_gpu_machine(tmp_path):
    """Issue 40: tests/test_graphed_cuda.py's child processes replaced PYTHONPATH, dropping the
    folder gpu_check.sh installs pydantic into. Here, on a Python that sees only the GPU image and
    that folder, the dry run of the child-process path passes, and a child started the old way
    cannot import the application."""
    python, carried = gpu_image_python(tmp_path)
    path = os.pathsep.join([str(REPO / "src"), str(REPO), str(carried)])  # as gpu_check.sh exports it
    env = {**os.environ, "PYTHONPATH": path, "DCGAN_CUDA_TESTS_DEVICE": "cpu",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # this venv's plugins are not the image's
    old_way = {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    lost = subprocess.run([str(python), "-c", "import dcgan.app.recipe"], cwd=REPO, env=old_way,
                          capture_output=True, text=True, timeout=120)
    assert lost.returncode != 0 and "pydantic is not on the GPU image" in lost.stderr, lost.stderr[-1000:]
    done = subprocess.run([str(python), "-m", "pytest", "-q", "-m", "cuda", "-k", "child_process", "-p",
                           "no:cacheprovider", "tests/test_graphed_cuda.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_a_killed_run_keeps_the_steps_that_finished(gc, tmp_path, monkeypatch):
    """Issue 40: gpu_check.json is written after every step, so a run the shell's timeout kills
    during the last speed row still leaves the tests' results and the first row."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gc, "environment", lambda: {"gpu": "none (test)"})
    monkeypatch.setattr(gc, "cuda_tests", lambda out, timeout_s: passing_report(gc) | {"tests_timeout_s": timeout_s})
    rows = iter(passing_report(gc)["speed"])

    def speed_row(batch, rounds, steps, warmup):
        if batch == 256:
            raise KeyboardInterrupt  # stands in for the kill: nothing after this point runs
        return next(rows)

    monkeypatch.setattr(gc, "speed_row", speed_row)
    with pytest.raises(KeyboardInterrupt):
        gc.main(["--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["finished"] is False and report["steps_left"] == ["speed_batch_256"] and report["ok"] is False
    assert report["tests"]["tests"] == 11 and report["tests_timeout_s"] == int(8 * 60 * gc.TESTS_SHARE)
    assert [r["batch"] for r in report["speed"]] == [64] and not list(tmp_path.glob("*.part"))


def test_the_timeouts_nest_so_the_innermost_fires_first(gc):
    """A child process of the CUDA tests < the pytest run < the whole budget < the shell's net."""
    import re

    from tests.helpers import CHILD_TIMEOUT_S as child_s

    tests_s = 8 * 60 * gc.TESTS_SHARE
    shell_s = int(re.search(r"timeout (\d+) ", (REPO / "benchmarks/gpu_check.sh").read_text()).group(1))
    assert 2 * child_s < tests_s < 8 * 60 < shell_s  # the capture test starts two children


def test_the_memory_rule_reads_the_peaks_once_warm(gc):
    """Issue 40: the first round's peak (cuDNN's autotuning workspaces, paid by whichever loop
    runs first) is left out of the memory rule; a single round is all there is."""
    assert gc.steady_peak([5_000, 1_000, 1_100]) == 1_100
    assert gc.steady_peak([1_000]) == 1_000


def test_a_record_with_a_control_of_its_own_is_judged_by_it(gc):
    report = passing_report(gc)
    report["records"][2].update(gap=3e-5, bound=1e-5, compared="moved from cpu vs whole on cuda",
                                control="4x CPU vs CUDA whole runs")
    got = gc.verdicts(report)
    assert len(got) == 1 and "moved from cpu vs whole on cuda 3e-05 outside 4x CPU vs CUDA whole runs 1e-05" in got[0]


PINS = [tuple(line.split("==")) for line in (REPO / "benchmarks/gpu_check_wheels.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")]


def fake_wheel(folder, name: str, version: str):
    """A pure-Python wheel ``name==version`` (a package that says its version), as pip installs one."""
    import zipfile

    dist = f"{name}-{version}"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{k},,\n" for k in [*files, f"{dist}.dist-info/RECORD"])
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def test_the_install_step_puts_the_carried_wheels_first_or_says_why_not_in_one_line(tmp_path):
    """Issue 40: gpu_check.sh's install step (``--install-only``: the step alone, no GPU), on
    wheels the test builds with the pinned names and versions. A decoy folder on PYTHONPATH holds
    the same distributions, as the GPU image's own packages would: the installed folder must come
    before it. A Python that puts the decoy first anyway, a missing wheel and a broken one each
    stop the script with exit 2 and one line."""
    wheels, site, decoy = tmp_path / "whl", tmp_path / "site", tmp_path / "decoy"
    wheels.mkdir()
    for name, version in PINS:
        fake_wheel(wheels, name, version)
        info = decoy / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    env = {**os.environ, "PYTHON": sys.executable, "DCGAN_WHEELS": str(wheels), "DCGAN_SITE": str(site),
           "PYTHONPATH": str(decoy)}

    def install(**over):
        done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--install-only"], cwd=REPO, env={**env, **over},
                              capture_output=True, text=True, timeout=120)
        return done.returncode, (done.stdout + done.stderr).strip().splitlines()

    rc, lines = install()
    assert rc == 0 and lines == [f"gpu_check: {len(PINS)} carried wheels installed into {site}: "
                                 + " ".join(f"{n}=={v}" for n, v in PINS)], lines
    assert all((site / name / "__init__.py").is_file() for name, _ in PINS)

    first = tmp_path / "python-decoy-first"  # an image whose python puts its own packages first
    first.write_text(f'#!/bin/sh\nPYTHONPATH="{decoy}:$PYTHONPATH" exec {sys.executable} "$@"\n')
    first.chmod(0o755)
    rc, lines = install(PYTHON=str(first))
    assert rc == 2 and len(lines) == 1 and "does not see the carried wheels first" in lines[0], lines
    assert f"in {decoy}" in lines[0]

    name, version = PINS[-1]
    wheel = wheels / f"{name}-{version}-py3-none-any.whl"
    wheel.write_bytes(b"not a zip file")
    rc, lines = install()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("gpu_check: the carried wheels did not install:"), lines
    wheel.unlink()
    rc, lines = install()
    assert rc == 2 and len(lines) == 1 and f"holds no wheel of {name}=={version}" in lines[0], lines
