"""``scripts/ensure-test-tools.sh``, which ``make test`` runs first: a JDK 17+ (``java`` and ``javac``), Chromium and
curl are there, or installed with apt-get as root, or the run stops naming the Debian package to install.

The script runs for real with a PATH made for each case: the tools it uses, and fake ``java``/``javac`` printing a
chosen version, so a missing or old JDK is tested without uninstalling anything. Where it installs, a stand-in
``apt-get`` records its arguments and puts the fake JDK in place, as the real one would.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensure-test-tools.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _jdk(bin_dir: Path, version: str) -> None:
    """``java`` and ``javac`` answering ``-version`` as OpenJDK ``version`` does."""
    _fake(bin_dir, "java", f"echo 'openjdk version \"{version}\" 2025-04-15' >&2")
    _fake(bin_dir, "javac", f"echo 'javac {version}'")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH holding only what the script needs besides the tools it checks; this process is not root there."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "head"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    _fake(bin_dir, "id", "echo 1000")
    _fake(bin_dir, "chromium", "exit 0")
    _fake(bin_dir, "curl", "exit 0")
    return bin_dir


def _run(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=60
    )


def test_without_a_jdk_it_stops_naming_the_package(bin_dir: Path) -> None:
    result = _run(bin_dir)
    assert result.returncode == 1
    assert "java is not on PATH" in result.stdout
    assert "install them (as root): apt-get install openjdk-17-jdk-headless" in result.stderr


def test_a_java_without_javac_is_not_a_jdk(bin_dir: Path) -> None:
    _jdk(bin_dir, "17.0.15")
    (bin_dir / "javac").unlink()
    result = _run(bin_dir)
    assert result.returncode == 1 and "javac is not on PATH" in result.stdout
    assert "apt-get install openjdk-17-jdk-headless" in result.stderr


@pytest.mark.parametrize(("version", "major"), [("11.0.2", 11), ("1.8.0_292", 8)])
def test_a_jdk_older_than_17_is_refused(bin_dir: Path, version: str, major: int) -> None:
    _jdk(bin_dir, version)
    result = _run(bin_dir)
    assert result.returncode == 1
    assert f"{bin_dir}/java is version {major}, older than 17" in result.stdout
    assert "apt-get install openjdk-17-jdk-headless" in result.stderr


def test_without_chromium_it_stops_naming_the_package(bin_dir: Path) -> None:
    _jdk(bin_dir, "21.0.2")
    (bin_dir / "chromium").unlink()
    result = _run(bin_dir)
    assert result.returncode == 1
    assert "apt-get install chromium" in result.stderr and "openjdk" not in result.stderr


def test_as_root_it_installs_what_is_missing_with_apt_get(bin_dir: Path, tmp_path: Path) -> None:
    calls, package = tmp_path / "apt-get.calls", tmp_path / "openjdk-17-jdk-headless"
    package.mkdir()
    _jdk(package, "17.0.15")
    _fake(bin_dir, "id", "echo 0")
    copy = shutil.which("cp")
    _fake(bin_dir, "apt-get", f'echo "$*" >> {calls}\nif [ "$1" = install ]; then {copy} {package}/* {bin_dir}/; fi')
    result = _run(bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls.read_text().splitlines() == ["update", "install -y openjdk-17-jdk-headless"]
    assert "installed; JDK 17" in result.stdout
