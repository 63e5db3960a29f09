"""pytest setup: the corelet package comes from a build tree.

scripts/test runs pytest with PYTHONPATH=<build>/python; running pytest by
hand, set it the same way (or CORELET_BUILD=<build dir>).
"""

import os
import sys

build = os.environ.get("CORELET_BUILD")
if build:
    sys.path.insert(0, os.path.join(build, "python"))

try:
    import corelet  # noqa: F401
except ImportError as e:  # pragma: no cover - a setup error, said clearly
    raise SystemExit(
        "tests/py: cannot import corelet (%s); build it and run with "
        "PYTHONPATH=<build>/python or CORELET_BUILD=<build>" % e
    )
