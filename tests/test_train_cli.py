"""launch/train.py as a user meets it: --help, typos, and stopping at any moment (Ctrl-C,
SIGTERM) with one line, a checkpoint when there is a step to save, and no process or
shared memory left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import run_train_cli, train_command

ROOT = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), e.g. the loader's workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start(workdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = train_command(f"--workdir={workdir}", "--config.data.workers=2", *args)
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 240.0) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, seen
        line = proc.stdout.readline()
        assert line or proc.poll() is None, seen
        seen += line
    return seen


def test_help_exits_0_and_points_to_the_config_fields_and_workdir():
    result = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "train.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "configs/base.py" in result.stdout and "workdir/<config" in result.stdout
    assert "--allow_config_change" in result.stdout


def test_a_typo_in_a_config_field_is_one_line_with_the_close_match(tmp_path):
    result = run_train_cli("--config.train.stepz=5", f"--workdir={tmp_path / 'run'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown config field 'train.stepz'" in lines[0] and "train.steps" in lines[0]
    assert not (tmp_path / "run").exists()


def test_ctrl_c_while_training_saves_and_leaves_no_worker_or_shared_memory(tmp_path):
    workdir = tmp_path / "run"
    proc = start(workdir, "--config.train.steps=100000", "--config.train.checkpoint_every=100000")
    try:
        read_until(proc, "compiled in")
        deadline = time.monotonic() + 120
        while not (workdir / "metrics.jsonl").exists():  # a few steps trained
            assert time.monotonic() < deadline
            time.sleep(0.2)
        workers = descendants(proc.pid)
        assert workers  # the loader's worker processes
        proc.send_signal(signal.SIGINT)
        for pid in workers:  # a terminal's Ctrl-C reaches the workers too
            os.kill(pid, signal.SIGINT)
        output = proc.communicate(timeout=180)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "stopped by SIGINT after step" in output
    assert "Traceback" not in output and "leaked" not in output, output
    assert any((workdir / "checkpoints" / "latest").iterdir())
    time.sleep(1)
    assert not [pid for pid in workers if alive(pid)]


def test_sigterm_during_start_up_exits_cleanly_without_orphans(tmp_path):
    proc = start(tmp_path / "run")
    try:
        read_until(proc, "compiling the train step")  # corpus built, workers running
        workers = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=180)[0]
    finally:
        proc.kill()
    assert proc.returncode == 143, output
    assert "stopped by SIGTERM" in output and "rerun the same command" in output
    assert "Traceback" not in output and "leaked" not in output, output
    time.sleep(1)
    assert not [pid for pid in workers if alive(pid)]
