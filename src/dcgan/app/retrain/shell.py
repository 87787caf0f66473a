"""Running dvc, gto and git for the retraining flow: the project's own tools first on PATH,
output lines sent to the flow's log, a time limit that stops a command with everything it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from dcgan.core.errors import UserError

Log = Callable[[str], None]


class StageFailed(UserError):
    """``dvc exp run`` failed; the message is the failing stage's own error line.
    ``retryable``: not a user error (a stage's exit code 2: bad params, data): a stage killed
    (out of memory, a lost device, a pre-empted node) or crashed, worth another attempt."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ExperimentTimeout(UserError):
    """``dvc exp run`` ran past its time limit and was stopped with its stages."""


def tool_env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH, so that dvc, gto and the stages' ``python``
    are the project's even when a Prefect worker was started without activating the venv."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1", "GTO_NO_ANALYTICS": "1"}


def tool(name: str) -> str:
    """The project's own ``dvc`` or ``gto`` beside this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if name in ("dvc", "gto") and local.is_file() else name


def capture(cmd: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``dvc``/``gto``/``git`` ARGS quietly for what it prints (reads: --json, lists)."""
    return subprocess.run([tool(cmd), *args], cwd=cwd, capture_output=True, text=True, env=tool_env())


_LIVE: dict[int, subprocess.Popen] = {}
"""The process groups :func:`run_logged` has started and not yet seen end, by group id."""
_LIVE_LOCK = threading.Lock()


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to ``proc``'s whole process group, SIGKILL ``grace`` seconds later if its leader is
    still there, and SIGKILL again for stragglers that outlived it (a stage that closed its
    output). Never raises for a group that is already gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            break
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop_all(log: Log | None = None) -> int:
    """Stop every process group this process started through :func:`run_logged` that is still
    running (the flow calls it before it releases the workspace lock); returns how many."""
    with _LIVE_LOCK:
        live = list(_LIVE.values())
        _LIVE.clear()
    for proc in live:
        if log:
            log(f"stopping {Path(str(proc.args[0])).name} (process group {proc.pid}) and everything it started")
        stop_group(proc, grace=5.0)
    return len(live)


@contextlib.contextmanager
def children_stopped(log: Log | None = None) -> Iterator[None]:
    """Whatever leaves this block (a return, an error, Ctrl-C, Prefect's TerminationSignal on
    SIGTERM or cancellation), no process group started inside it is left running."""
    try:
        yield
    finally:
        stop_all(log)


def run_logged(cmd: list[str], cwd: Path, log: Log, env: dict[str, str] | None = None,
               timeout: float | None = None) -> tuple[int, list[str]]:
    """Run ``cmd`` in ``cwd``, sending each output line to ``log``; return (code, lines).

    The command runs in its own process group, so a Ctrl-C at the terminal reaches this process
    alone, which then stops the group: whatever ends the wait (``timeout``, an exception,
    KeyboardInterrupt, Prefect's TerminationSignal) stops the command and everything it started
    (the stages of ``dvc exp run``) with SIGTERM, then SIGKILL 10 s later. Past ``timeout``
    seconds :class:`ExperimentTimeout` is raised. Stragglers of a command that ended are killed.
    """
    full_env = {**tool_env(), "TQDM_DISABLE": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        stop_group(proc)

    timer = threading.Timer(timeout, expire) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                log(line)
        code = proc.wait()
    except BaseException:
        stop_group(proc)
        raise
    finally:
        if timer:
            timer.cancel()
        with contextlib.suppress(ProcessLookupError, PermissionError):  # stragglers that closed their output
            os.killpg(proc.pid, signal.SIGKILL)
        with _LIVE_LOCK:
            _LIVE.pop(proc.pid, None)
        if proc.stdout:
            proc.stdout.close()
    if expired.is_set():
        raise ExperimentTimeout(f"{' '.join([Path(cmd[0]).name, *cmd[1:3]])} ran past its "
                                f"{timeout:g} s limit; it was stopped with everything it started")
    return code, lines


def dvc(args: list[str], cwd: Path, log: Log, env: dict[str, str] | None = None,
        timeout: float | None = None) -> tuple[int, list[str]]:
    """``dvc ARGS`` in ``cwd`` through :func:`run_logged`; return (code, output lines)."""
    return run_logged([tool("dvc"), *args], cwd, log, env, timeout)


def check(cmd: str, args: list[str], cwd: Path, log: Log) -> list[str]:
    """Run ``dvc``/``gto``/``git`` ARGS; a non-zero exit raises UserError with its error lines."""
    code, lines = run_logged([tool(cmd), *args], cwd, log)
    if code != 0:
        raise UserError(f"{cmd} {' '.join(args)} failed: {failure_message(lines)}")
    return lines


def dvc_json(args: list[str], cwd: Path) -> object:
    res = capture("dvc", [*args, "--json"], cwd)
    if res.returncode != 0:
        raise UserError(f"dvc {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return json.loads(res.stdout or "null")


def git_out(args: list[str], cwd: Path) -> str | None:
    """``git ARGS`` stdout, stripped; None when git exits non-zero."""
    res = capture("git", args, cwd)
    return res.stdout.strip() if res.returncode == 0 else None


def failure_message(lines: list[str]) -> str:
    """The stage's own ``error: ...`` lines if it printed any, else the tool's ERROR lines."""
    ours = [ln for ln in lines if ln.startswith("error: ")]
    theirs = [ln for ln in lines if ln.startswith(("ERROR:", "fatal:", "❌"))]
    picked = ours or theirs or lines[-5:]
    return "; ".join(picked) if picked else "exited without output"


def remote_configured(cwd: Path) -> bool:
    res = capture("dvc", ["remote", "list"], cwd)
    return res.returncode == 0 and bool(res.stdout.strip())


def git_remote(cwd: Path) -> str | None:
    """The git remote commits, tags and experiments go to: ``origin``, else the first one."""
    names = (git_out(["remote"], cwd) or "").split()
    return "origin" if "origin" in names else (names[0] if names else None)


def use_branch(cwd: Path, branch: str | None, log: Log) -> str:
    """The branch promotions are committed on: ``branch`` (checked out, created at HEAD when
    new) or the current one. Called before the experiment, so that its baseline is that
    branch's last promoted model."""
    current = git_out(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    if branch in (None, "", current):
        if not current:
            raise UserError(f"{cwd} is on a detached HEAD: check out a branch or pass branch=")
        return current
    if git_out(["check-ref-format", "--branch", branch], cwd) is None:
        raise UserError(f"branch {branch!r} is not a valid git branch name")
    exists = git_out(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd) is not None
    check("git", ["checkout", *([] if exists else ["-b"]), branch], cwd, log)
    return branch


def fetch_tags(cwd: Path, log: Log) -> str | None:
    """Fetch every tag of the git remote (GTO's versions and stages among them), so that the
    champion is chosen from what the remote holds; returns the remote, or None where there is
    none. A remote that cannot be read stops the run before it trains, in one line."""
    remote = git_remote(cwd)
    if remote is None:
        return None
    code, lines = run_logged([tool("git"), "fetch", "-q", "--force", remote, "+refs/tags/*:refs/tags/*"], cwd, log,
                             timeout=600)
    if code != 0:
        raise UserError(f"the tags of git remote {remote} cannot be fetched ({failure_message(lines)}), so the "
                        f"champion is unknown: nothing was trained; retry when the remote answers")
    return remote
