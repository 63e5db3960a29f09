"""The 'spawn' and 'forkserver' start methods, tested differentially: every
test body runs against the standard library's multiprocessing and against
corelet (the `mp` fixture), each with both methods (the `method` fixture),
so a difference in behaviour shows as one failing side. The children are
fresh interpreters: what they get comes pickled, primitives included. The
differences corelet means to have are marked (better_in_corelet,
worse_in_corelet) and listed in py/README.md ("Differences from
multiprocessing")."""

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
from support import child_env, intended_difference, pid_alive, wait_until

import corelet
import corelet.connection

MODULES = {"multiprocessing": multiprocessing, "corelet": corelet}


@pytest.fixture(params=list(MODULES))
def mp(request):
    return MODULES[request.param]


@pytest.fixture(params=["spawn", "forkserver"])
def method(request):
    return request.param


@pytest.fixture
def ctx(mp, method):
    return mp.get_context(method)


# Changed by the parent after import: a fresh interpreter sees the module's own value.
MARK = "as imported"


# ---- the primitives reach the child as arguments ------------------------------------


def use_everything(out, lock, rlock, sem, bsem, event, cond, barrier, value, array, raw_value, raw_array,
                   jq, sq, conn):
    with lock:
        value.value += 1
    with rlock:
        with rlock:
            array[0] = 7.5
    sem.acquire()
    bsem.release()
    raw_value.value = 99
    raw_array[1] = 3
    with cond:
        cond.notify_all()
    index = barrier.wait(60)
    jq.put("job")
    sq.put("simple")
    conn.send(("pipe", MARK))
    out.put(("done", os.getpid(), index in (0, 1)))
    event.set()


def test_every_primitive_reaches_a_started_child(ctx):
    out, jq, sq = ctx.Queue(), ctx.JoinableQueue(), ctx.SimpleQueue()
    lock, rlock, sem, bsem = ctx.Lock(), ctx.RLock(), ctx.Semaphore(1), ctx.BoundedSemaphore(1)
    bsem.acquire()
    event, cond, barrier = ctx.Event(), ctx.Condition(), ctx.Barrier(2)
    value, array = ctx.Value("i", 41), ctx.Array("d", 3)
    raw_value, raw_array = ctx.RawValue("q", 0), ctx.RawArray("i", 4)
    a, b = ctx.Pipe()
    global MARK
    MARK = "changed in the parent"
    try:
        p = ctx.Process(target=use_everything, args=(out, lock, rlock, sem, bsem, event, cond, barrier, value,
                                                     array, raw_value, raw_array, jq, sq, b))
        p.start()
    finally:
        MARK = "as imported"
    assert barrier.wait(60) in (0, 1)
    done, pid, ok = out.get(timeout=60)
    assert (done, pid, ok) == ("done", p.pid, True)
    assert event.wait(60)
    assert a.recv() == ("pipe", "as imported")  # a fresh interpreter: the module as imported
    assert jq.get(timeout=60) == "job"
    jq.task_done()
    jq.join()
    assert sq.get() == "simple"
    p.join(60)
    assert p.exitcode == 0
    assert value.value == 42 and array[0] == 7.5
    assert raw_value.value == 99 and raw_array[:] == [0, 3, 0, 0]
    assert not sem.acquire(False)  # the child took the one unit
    assert bsem.acquire(False)  # the child gave it back
    bsem.release()
    with pytest.raises(ValueError):
        bsem.release()  # past its initial value


def add_under_lock(value, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def test_two_children_add_to_one_value_under_its_lock(ctx):
    value = ctx.Value("i", 0)
    ps = [ctx.Process(target=add_under_lock, args=(value, 2000)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert value.value == 4000


def test_a_primitive_pickles_only_while_a_child_starts(ctx):
    for make in (ctx.Lock, ctx.Queue, ctx.Event, lambda: ctx.Value("i", 1)):
        with pytest.raises(RuntimeError, match="inheritance"):
            pickle.dumps(make())


# ---- what the child is --------------------------------------------------------------


def report(out, module):
    mp = MODULES[module]
    parent = mp.parent_process()
    out.put((mp.current_process().name, parent.pid, parent.is_alive(), mp.get_start_method()))


def test_the_child_knows_its_parent_and_its_start_method(ctx, mp, method):
    out = ctx.Queue()
    p = ctx.Process(target=report, args=(out, mp.__name__), name="reporter")
    p.start()
    assert out.get(timeout=60) == ("reporter", os.getpid(), True, method)
    p.join(60)
    assert p.exitcode == 0


def exit_with(code):
    sys.exit(code)


def fail():
    raise KeyError("the child's own error")


def test_exit_codes(ctx):
    cases = [(exit_with, (3,), 3), (exit_with, (None,), 0), (fail, (), 1)]
    for target, args, code in cases:
        p = ctx.Process(target=target, args=args)
        p.start()
        p.join(60)
        assert p.exitcode == code, target


def wait_forever(event):
    event.wait()


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_terminate_and_kill_and_the_sentinel(ctx, mp, how):
    event = ctx.Event()
    p = ctx.Process(target=wait_forever, args=(event,), daemon=True)
    p.start()
    try:
        p.join(0.05)
        assert p.is_alive() and p.exitcode is None
        assert mp.connection.wait([p.sentinel], timeout=0.05) == []
    finally:
        getattr(p, how)()
    assert mp.connection.wait([p.sentinel], timeout=60) == [p.sentinel]
    p.join(60)
    assert p.exitcode == (-signal.SIGTERM if how == "terminate" else -signal.SIGKILL)
    assert not p.is_alive()
    p.close()


def test_an_unpicklable_target_fails_at_start(ctx):
    p = ctx.Process(target=lambda: None)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        p.start()


def start_a_fork_child(out):
    ctx = MODULES[out.get()].get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=q.put, args=("grandchild",))
    p.start()
    out.put(q.get(timeout=60))
    p.join(60)


def test_a_started_child_starts_children_itself(ctx, mp):
    out = ctx.Queue()
    out.put(mp.__name__)
    p = ctx.Process(target=start_a_fork_child, args=(out,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert out.get(timeout=10) == "grandchild"


def put_in(d, lst):
    d["child"] = os.getpid()
    lst.append("from the child")


def test_a_managers_proxies_reach_a_started_child(ctx):
    with ctx.Manager() as m:
        d, lst = m.dict(), m.list()
        p = ctx.Process(target=put_in, args=(d, lst))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert d["child"] == p.pid and list(lst) == ["from the child"]


def square(x):
    return x * x


def test_a_pool_of_the_context(ctx):
    with ctx.Pool(2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]


# ---- the start method as the program's ------------------------------------------------


def test_set_start_method_makes_processes_and_primitives_for_it(mp, method):
    mp.set_start_method(method, force=True)
    try:
        assert mp.get_start_method() == method
        q, v = mp.Queue(), mp.Value("i", 0)
        p = mp.Process(target=add_under_lock, args=(v, 10))
        p.start()
        p.join(60)
        assert p.exitcode == 0 and v.value == 10
        q.put(1)
        assert q.get(timeout=10) == 1
    finally:
        mp.set_start_method("fork", force=True)


def take(lock, value):
    with lock:
        value.value += 1


def test_corelet_says_what_to_make_for_a_spawned_child(method):
    fork = corelet.get_context("fork")
    p = corelet.get_context(method).Process(target=take, args=(fork.Lock(), fork.Value("i", 0)))
    with pytest.raises(RuntimeError, match=r"corelet.Lock was made for the 'fork' start method.*get_context"):
        p.start()
    assert p.pid is None  # nothing started


# ---- programs: the main module, preloading, a daemon child's end ----------------------


def run_program(tmp_path, body, **kw):
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], env=child_env(), capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, **kw)


def test_a_main_module_without_its_guard_is_the_bootstrapping_error(tmp_path, mp, method):
    r = run_program(tmp_path, f"""
        import {mp.__name__} as mp
        def f():
            pass
        p = mp.get_context({method!r}).Process(target=f)
        p.start()
        p.join(60)
        print("exit", p.exitcode, flush=True)
        """)
    assert "bootstrapping phase" in r.stderr
    assert "exit 1" in r.stdout


def test_functions_of_the_main_script_reach_the_child(tmp_path, mp, method):
    r = run_program(tmp_path, f"""
        import {mp.__name__} as mp

        def greet(q, who):
            q.put("hello " + who + " from " + __name__)

        if __name__ == "__main__":
            ctx = mp.get_context({method!r})
            q = ctx.Queue()
            p = ctx.Process(target=greet, args=(q, "parent"))
            p.start()
            print(q.get(timeout=60), flush=True)
            p.join(60)
            print("exit", p.exitcode)
        """)
    assert r.stdout.split("\n")[:2] == ["hello parent from __mp_main__", "exit 0"], r.stderr


def test_forkserver_preload(tmp_path, mp):
    (tmp_path / "preloaded.py").write_text("import os\nIMPORTED_IN = os.getpid()\n")
    r = run_program(tmp_path, f"""
        import os, sys
        import {mp.__name__} as mp

        def where(q):
            import preloaded
            q.put(preloaded.IMPORTED_IN != os.getpid())

        if __name__ == "__main__":
            sys.path.insert(0, os.getcwd())
            mp.set_forkserver_preload(["preloaded", "no_such_module_anywhere"])
            ctx = mp.get_context("forkserver")
            q = ctx.Queue()
            p = ctx.Process(target=where, args=(q,))
            p.start()
            print("imported before the fork:", q.get(timeout=60), flush=True)
            p.join(60)
        """)
    assert "imported before the fork: True" in r.stdout, r.stderr


def test_a_daemon_child_ends_with_a_parent_that_is_killed(tmp_path, mp, method):
    intended_difference(mp is multiprocessing, "a daemon child ends with its parent however the parent ends")
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        import {mp.__name__} as mp

        def linger():
            time.sleep(120)

        if __name__ == "__main__":
            p = mp.get_context({method!r}).Process(target=linger, daemon=True)
            p.start()
            print(p.pid, flush=True)
            os.kill(os.getpid(), 9)
        """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=child_env(),
                            cwd=tmp_path)
    pid = int(proc.stdout.readline())
    proc.wait(60)
    try:
        assert wait_until(lambda: not pid_alive(pid), 60), "the daemon child outlived its parent"
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
