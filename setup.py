"""pip install of the source tree, with Debian's tools only (no PyPI):

    /usr/bin/python3 -m pip install --no-build-isolation --no-deps .    # into a venv, or --target DIR

The extension is built by CMake (the project's own build: find_package for
every dependency, see scripts/deps); CORELET_CMAKE_BUILD_DIR names a build
directory to reuse (it is configured there if it is not yet).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(os.environ.get("CORELET_CMAKE_BUILD_DIR") or Path(self.build_temp) / "cmake").resolve()
        if not (build_dir / "CMakeCache.txt").exists():
            subprocess.check_call(
                [
                    "cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                    "-DCORELET_BUILD_TESTS=OFF", "-DCORELET_BUILD_PERF=OFF", "-DCORELET_BUILD_EXAMPLES=OFF",
                    "-DCORELET_BUILD_PYTHON=ON", f"-DPython3_EXECUTABLE={sys.executable}",
                ]
            )
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_corelet", "-j", str(os.cpu_count() or 1)])
        built = sorted((build_dir / "python" / "corelet").glob("_corelet*.so"))
        if not built:
            raise RuntimeError(f"corelet: the CMake build in {build_dir} made no extension")
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(
    name="corelet",
    version="0.1.0",
    description="Coroutine and green-thread hybrid runtime: tasklets on a C++ scheduler, one process per core",
    packages=["corelet"],
    package_dir={"corelet": "py/corelet"},
    ext_modules=[Extension("corelet._corelet", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
)
