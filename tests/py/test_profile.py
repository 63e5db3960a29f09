"""corelet.stats(), corelet.dump(), the stall detector and the dump signal
Times are only checked from below, against waits the test itself
made (a tasklet that spun 30 ms has run at least 30 ms whatever the load)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import corelet
from support import child_env, python


def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def by_name(st, name):
    return next((t for t in st["tasklets"] if t["name"] == name), None)


def test_stats_charge_run_time_and_waits_by_kind():
    box = {}

    async def sleeper():  # still asleep when the stats are read: cancelled after them
        await corelet.sleep(60)

    def receiver(ch):
        return (yield ch.recv())

    def reader(sock):  # (not run_blocking: its helper threads would stay, and no cluster could start after)
        return (yield sock.recv(1))

    def cpu():
        spin(0.015)  # under the stall threshold
        # Run time is sampled at the monitor thread's tick, which a loaded
        # machine may hold back: yield until the spin has been charged here
        # (counted, not assumed; up to 30 s).
        deadline = time.monotonic() + 30
        while by_name(corelet.stats(), "cpu")["run"] < 0.015 and time.monotonic() < deadline:
            yield corelet.sleep(0)

    async def main():
        ch = corelet.Channel()
        a, b = corelet.socketpair()
        tasks = [
            corelet.spawn(sleeper, name="sleeper"),
            corelet.spawn(receiver, ch, name="receiver"),
            corelet.spawn(reader, a, name="reader"),
        ]
        tasks.append(corelet.spawn(cpu, name="cpu"))  # last: the others park first
        await corelet.sleep(0.05)
        await tasks[-1]  # cpu has ended: its figures are only in the worker's totals
        box["st"] = corelet.stats()
        await ch.send(1)
        await b.sendall(b"x")
        tasks[0].cancel()
        with pytest.raises(corelet.Cancelled):
            await tasks[0]
        for t in tasks[1:]:
            await t
        a.close()
        b.close()

    corelet.run(main)
    st = box["st"]
    w = st["worker"]
    assert w["accounting"] is True
    assert w["worker"] is None and w["pid"] == os.getpid()
    assert w["busy"] >= 0.015
    assert w["uptime"] >= 0.05
    assert w["spawned"] >= 5 and w["live"] >= 4
    assert by_name(st, "cpu") is None  # ended: only in the totals
    r, s, b = by_name(st, "receiver"), by_name(st, "sleeper"), by_name(st, "reader")
    assert r["state"] == "parked" and r["waits_on"].startswith("Channel.recv")
    assert r["waits"]["sync"] >= 0.03 and r["waits"]["timer"] == 0
    assert s["waits"]["timer"] >= 0.03 and s["waits_on"].startswith("corelet.sleep")
    assert b["waits"]["io"] >= 0.03
    main = by_name(st, "main")
    assert main["state"] == "running" and st["tasklets"][0]["name"] == "main"
    assert r["parent"] == main["id"]
    here = os.path.basename(__file__)
    assert r["spawned_at"].rsplit("/", 1)[-1].startswith(here + ":"), r["spawned_at"]
    assert main["spawned_at"].rsplit("/", 1)[-1].startswith(here + ":"), "main's site is the caller of run"
    assert "in receiver" in r["stack"] and here in r["stack"]


def test_dump_shows_states_waits_and_python_stacks():
    box = {}

    def inner(ch):
        return (yield ch.recv())

    def outer(ch):
        return (yield corelet.spawn(inner, ch, name="inner").join())

    def main():
        ch = corelet.Channel()
        t = corelet.spawn(outer, ch, name="outer")
        yield corelet.sleep(0.01)
        box["dump"] = corelet.dump()
        yield ch.send(5)
        assert (yield t.join()) == 5

    corelet.run(main)
    d = box["dump"]
    assert d.startswith("corelet: dump of (pid %d): 3 tasklets" % os.getpid()), d
    assert '"outer" parked on Task.join' in d
    assert '"inner" parked on Channel.recv' in d
    assert "in inner" in d and "in outer" in d


def test_stats_and_dump_outside_run_are_usage_errors():
    with pytest.raises(corelet.UsageError, match="corelet.stats"):
        corelet.stats()
    with pytest.raises(corelet.UsageError, match="corelet.dump"):
        corelet.dump()
    with pytest.raises(ValueError):
        corelet.set_stall_threshold(-1)


def test_accounting_off():
    box = {}

    def main():
        yield corelet.sleep(0.01)
        box["st"] = corelet.stats()

    was = corelet.accounting()
    corelet.set_accounting(False)
    try:
        corelet.run(main)
    finally:
        corelet.set_accounting(was)
    assert box["st"]["worker"]["accounting"] is False
    assert box["st"]["worker"]["idle"] == 0.0


def test_stall_report_names_the_tasklet_and_its_line():
    # The hog runs without a switch until its stall has been reported (stats()
    # reads the count without marking progress), not for a guessed time: the
    # monitor thread that detects it may itself be held back on a loaded
    # machine. It gives up after 30 s.
    r = python(
        """
        import time, corelet
        def hog():
            end = time.monotonic() + 30
            while not corelet.stats(tasklets=False)["worker"]["stalls"] and time.monotonic() < end:
                pass
            return None
            yield
        def main():
            yield corelet.spawn(hog, name="hog").join()
            print("stalls", corelet.stats(tasklets=False)["worker"]["stalls"])
        corelet.run(main)
        """
    )
    assert r.returncode == 0, r.stderr
    assert "stalls 1" in r.stdout
    assert r.stderr.count("corelet: stall:") == 1, r.stderr
    assert 'corelet: stall: tasklet "hog" (#' in r.stderr
    assert "spawned at <string>:" in r.stderr
    assert 'File "<string>", line 5 in hog' in r.stderr or 'File "<string>", line 4 in hog' in r.stderr, r.stderr


def test_stall_threshold_setting():
    r = python(
        """
        import time, corelet
        corelet.set_stall_threshold(0)
        assert corelet.stall_threshold() == 0
        def main():
            end = time.monotonic() + 0.06
            while time.monotonic() < end:
                pass
            print("stalls", corelet.stats(tasklets=False)["worker"]["stalls"])
            return None
            yield
        corelet.run(main)
        """
    )
    assert r.returncode == 0, r.stderr
    assert "stalls 0" in r.stdout and "corelet: stall" not in r.stderr


def _dump_on_signal(code, expect, workers_env=None):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(**(workers_env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGQUIT)
        err = ""
        deadline = time.monotonic() + 30
        while not all(e in err for e in expect) and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            err += line
        assert proc.poll() is None, "the dump signal ended the program: " + err
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    return err


def test_dump_on_signal_in_a_hung_program():
    err = _dump_on_signal(
        """
        import corelet
        def stuck(sock):
            yield corelet.wait_readable(sock.fileno())
        def main():
            a, b = corelet.socketpair()
            t = corelet.spawn(stuck, a, name="stuck reader")
            yield corelet.sleep(0)
            print("ready", flush=True)
            yield t.join()
        corelet.run(main)
        """,
        ['"stuck reader" parked on', '"main" parked on Task.join', "in stuck"],
    )
    assert "corelet: dump of (pid " in err


def test_dump_signal_to_the_supervisor_reaches_every_worker():
    err = _dump_on_signal(
        """
        import corelet
        def main():
            print("ready", flush=True)
            yield corelet.sleep(60)
        corelet.run(main, workers=2)
        """,
        ["corelet: dump of worker 0 ", "corelet: dump of worker 1 ", '"main" parked on corelet.sleep'],
    )
    assert "killed by signal" not in err


def test_worker_stats_in_a_cluster():
    r = python(
        """
        import corelet
        def square(x):
            return x * x
        def main():
            assert (yield corelet.call_on(1, square, 7)) == 49
            w = corelet.stats(tasklets=False)["worker"]
            print(w["worker"], w["messages_out"] >= 1, w["messages_in"] >= 1, w["waits"]["remote"] > 0)
        corelet.run(main, workers=2)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True", "True", "True"], r.stdout + r.stderr


def test_trace_of_a_cluster_is_valid_with_runs_waits_and_message_flows(tmp_path):
    import json

    out = tmp_path / "trace.json"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import corelet
                def square(x):
                    return x * x
                def main():
                    total = 0
                    for i in range(5):
                        total += (yield corelet.call_on(1, square, i))
                    yield corelet.sleep(0.001)
                    print(total)
                corelet.run(main, workers=2)
                """
            ),
        ],
        env=child_env(CORELET_TRACE=str(out)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "30"
    events = json.loads(out.read_text())  # a strict parse: the file is a closed array
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert any(n.startswith("corelet worker 0 ") for n in names) and any(n.startswith("corelet worker 1 ") for n in names)
    pids = {e["pid"] for e in events if e["ph"] == "X" and e.get("cat") == "run"}
    assert len(pids) == 2, "a track per worker"
    assert any(e["ph"] == "X" and e["name"] == "main" and e["dur"] >= 0 for e in events)
    begins = [e for e in events if e["ph"] == "b" and e["cat"] == "wait"]
    ends = [e for e in events if e["ph"] == "e" and e["cat"] == "wait"]
    assert begins and len(begins) == len(ends)
    assert any(e["args"]["kind"] == "remote" for e in begins), "main waits on its remote calls"
    assert any(e["args"]["kind"] == "timer" for e in begins)
    starts = {(e["name"], e["id"]): e for e in events if e["ph"] == "s"}
    finishes = {(e["name"], e["id"]): e for e in events if e["ph"] == "f"}
    assert sum(1 for k in starts if k[0] == "call") >= 5 and sum(1 for k in starts if k[0] == "reply") >= 5
    assert starts.keys() == finishes.keys(), "every message is a flow from one worker to another"
    for key, s in starts.items():
        f = finishes[key]
        assert s["pid"] != f["pid"] and f["ts"] >= s["ts"]
