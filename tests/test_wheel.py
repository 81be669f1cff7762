"""A regular wheel carries the bundled data: install it in a fresh venv and run it elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_lists_models_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    # No build isolation: the build backend (hatchling) comes from the test extras, offline.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            "-q",
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(dist.glob("cfgexplorer-*.whl"))
    env_dir = tmp_path / "venv"
    # The venv sees this interpreter's packages for the dependencies; cfgexplorer itself
    # is installed from the wheel into the venv, which comes first on sys.path. CI installs
    # cfgexplorer into that same interpreter, so pip must not count that copy as satisfying
    # the wheel: --ignore-installed puts the wheel in the venv regardless.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            "-q",
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import cfgexplorer, cfgexplorer.paths as p; "
            "print(cfgexplorer.__file__); print(p.data_dir())",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    ).stdout.split()
    assert where[0].startswith(str(env_dir))
    assert where[1].startswith(str(env_dir))
    for script in ("cfgexplorer", "config-explorer"):
        out = subprocess.run(
            [str(env_dir / "bin" / script), "models"],
            check=True,
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=env,
        ).stdout
        assert len(json.loads(out)) >= 60
