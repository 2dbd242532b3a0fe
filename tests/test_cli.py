"""The console scripts (``mp3gan-train`` …, pyproject.toml's [project.scripts]) and the
``launch/*.py`` shims over the same code in mp3gan/cli/: entries resolve, --help exits 0,
messages name the command, and mp3gan-train finds a config's ``configs.*`` imports from
any directory. Cheap: no training, no compile."""

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import tomllib

import pytest
from absl import flags
from helpers import CLI_MODULES, ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
LAUNCH = sorted(path.stem for path in (ROOT / "launch").glob("*.py"))


def entry(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding only a link to this checkout's ``mp3gan``: on PYTHONPATH it runs
    this code without making the checkout's ``configs`` importable the easy way."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "mp3gan").symlink_to(ROOT / "mp3gan", target_is_directory=True)
    return folder


def run_script(site, name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    """The console script ``name`` as pip's wrapper runs it: its entry function, called
    with no arguments, with sys.argv[0] the script's path."""
    module, attr = SCRIPTS[name].split(":")
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import {attr}; {attr}()"
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_every_launch_script_has_a_console_script_entry_that_resolves():
    modules = {CLI_MODULES.get(name, name) for name in LAUNCH}
    assert set(SCRIPTS) == {f"mp3gan-{module}" for module in modules}
    for name, target in SCRIPTS.items():
        assert target == f"mp3gan.cli.{name.removeprefix('mp3gan-')}:run"
        function = entry(target)
        assert callable(function)
        inspect.signature(function).bind()  # pip's wrapper calls it with no arguments


@pytest.mark.parametrize("name", LAUNCH)
def test_launch_scripts_are_shims_over_the_same_main(name):
    spec = importlib.util.spec_from_file_location(f"shim_{name}", ROOT / "launch" / f"{name}.py")
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)  # a second import defines no absl flag twice
    module = importlib.import_module(f"mp3gan.cli.{CLI_MODULES.get(name, name)}")
    assert shim.main is module.main
    assert module.__doc__ and module.main.__annotations__


def test_train_flags_are_defined_once_by_the_package_module():
    importlib.import_module("mp3gan.cli.train")
    for name in ("config", "workdir", "allow_config_change", "distributed"):
        assert flags.FLAGS.find_module_defining_flag(name) == "mp3gan.cli.train"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_of_each_console_script_exits_0_under_its_name(name, site, tmp_path):
    result = run_script(site, name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if name == "mp3gan-train":
        assert "--allow_config_change" in result.stdout and "configs/base.py" in result.stdout
    else:
        assert result.stdout.startswith(f"usage: {name} ")


def test_a_usage_error_names_the_console_script(site, tmp_path):
    result = run_script(site, "mp3gan-restore", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith("mp3gan-restore: error: ")


def test_train_script_from_another_folder_gives_the_one_line_typo_error(site, tmp_path):
    config = ROOT / "configs" / "tiny.py"  # imports `configs.base`: found beside it
    result = run_script(
        site, "mp3gan-train", "--config", str(config), "--config.train.stepz=1", cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mp3gan-train: error: unknown config field 'train.stepz'")
    assert "train.steps" in lines[0] and str(config) in lines[0]
    assert list(tmp_path.iterdir()) == []  # no work directory made
