"""The package installs: with cmake --install, and with pip from the source
tree using Debian's setuptools only (no PyPI)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import corelet

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(corelet.__file__).resolve().parents[2]  # <build>/python/corelet/__init__.py


def imports_from(path):
    out = subprocess.run(
        [sys.executable, "-c", "import corelet; print(corelet.__file__); print(corelet.run(lambda: 6 * 7))"],
        env=dict(os.environ, PYTHONPATH=str(path)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    file, answer = out.stdout.split()
    assert file.startswith(str(path)) and answer == "42"


@pytest.mark.skipif(not (BUILD / "CMakeCache.txt").exists(), reason="corelet does not come from a CMake build tree")
def test_cmake_install(tmp_path):
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(tmp_path)], check=True, capture_output=True)
    imports_from(tmp_path / "lib" / "python3" / "dist-packages")


@pytest.mark.skipif(not (BUILD / "CMakeCache.txt").exists(), reason="corelet does not come from a CMake build tree")
def test_pip_install_of_the_source_tree(tmp_path):
    target = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--target", str(target), str(ROOT)],
        env=dict(os.environ, CORELET_CMAKE_BUILD_DIR=str(BUILD), PIP_NO_INDEX="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    imports_from(target)
