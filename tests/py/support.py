"""Helpers of the Python tests: child interpreters that import the same
corelet as the tests, the Ctrl-C check, and waiting for a condition or a
process's end."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest


def child_env(**extra):
    """The environment of a child interpreter that finds this corelet."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **extra)


def python(code, **kw):
    """Runs code (dedented) in a child interpreter; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=child_env(), capture_output=True, text=True, timeout=60, **kw
    )


def assert_ctrl_c_interrupts(body):
    """Runs body (dedented; it prints 'ready' before it waits) in a child,
    sends SIGINT once it is ready, and asserts that KeyboardInterrupt came
    out of the wait."""
    code = (
        "import sys\ntry:\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\nexcept KeyboardInterrupt:\n    print('interrupted', flush=True)\n    sys.exit(3)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)  # into the wait (the signal is handled either way)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "interrupted" in out


def wait_until(pred, timeout=30.0):
    """Whether pred() became true within timeout seconds (looked at every 10 ms)."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def pid_alive(pid):
    """Whether process pid runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def intended_difference(on_stdlib, why):
    """A difference corelet means to have (listed in py/README.md): the
    standard library's side of a differential test is expected to fail."""
    if on_stdlib:
        pytest.xfail("intended difference (py/README.md): " + why)
