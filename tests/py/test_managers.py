"""Managers, tested differentially: every test body runs against
multiprocessing.managers and against corelet.managers (the `mm` fixture:
the package and its managers module), so a difference in behaviour shows as
one failing side. Intended differences are marked `better_in_corelet` and
listed in py/README.md ("Differences from multiprocessing")."""

import gc
import multiprocessing
import multiprocessing.managers
import os
import pickle
import queue
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest
from support import intended_difference, pid_alive, wait_until

import corelet
import corelet.managers

MODULES = {
    "multiprocessing": types.SimpleNamespace(pkg=multiprocessing, managers=multiprocessing.managers),
    "corelet": types.SimpleNamespace(pkg=corelet, managers=corelet.managers),
}


@pytest.fixture(params=list(MODULES))
def mm(request):
    return MODULES[request.param]


def better_in_corelet(mm, why):
    intended_difference(mm.pkg is multiprocessing, why)


def run_child(mm, target, *args):
    p = mm.pkg.Process(target=target, args=args)
    p.start()
    p.join(60)
    assert p.exitcode == 0, f"child exit code {p.exitcode}"


# ---- the names ------------------------------------------------------------------

@pytest.mark.parametrize(
    "name", ["BaseManager", "SyncManager", "BaseProxy", "NamespaceProxy", "Token", "Server", "AutoProxy",
             "MakeProxyType", "RemoteError"]
)
def test_the_managers_names_are_there(mm, name):
    assert hasattr(mm.managers, name)


def test_manager_is_a_started_sync_manager(mm):
    m = mm.pkg.Manager()
    try:
        assert isinstance(m, mm.managers.SyncManager)
        assert m.address
        d = m.dict()
        d["x"] = 1
        assert d.copy() == {"x": 1}
    finally:
        m.shutdown()


# ---- the shared objects -----------------------------------------------------------

def _fill(d, lst, ns, v, a):
    d["child"] = os.getpid()
    d.update(k=[1, 2])
    lst.append("child")
    lst.extend([3, 4])
    ns.x = 42
    v.value = 2.5
    a[0] = 7


def test_dict_list_namespace_value_array_between_processes(mm):
    with mm.pkg.Manager() as m:
        d, lst, ns = m.dict({"a": 1}), m.list([0]), m.Namespace(y=1)
        v, a = m.Value("d", 0.0), m.Array("i", [0, 0, 0])
        run_child(mm, _fill, d, lst, ns, v, a)
        assert d["a"] == 1 and d["k"] == [1, 2] and d["child"] != os.getpid()
        assert len(d) == 3 and "k" in d and sorted(d.keys()) == ["a", "child", "k"]
        assert lst[:] == [0, "child", 3, 4] and lst[-1] == 4 and len(lst) == 4
        lst += [5]
        assert lst[-1] == 5
        assert (ns.x, ns.y) == (42, 1)
        assert v.value == 2.5
        assert list(a[:]) == [7, 0, 0] and len(a) == 3
        with pytest.raises(KeyError):
            d["missing"]
        with pytest.raises(IndexError):
            lst[100]
        with pytest.raises(AttributeError):
            ns.missing
        assert str(d) == str({"a": 1, "child": d["child"], "k": [1, 2]})


def _nested(outer):
    outer["inner"].append("from child")


def test_a_managed_list_inside_a_managed_dict(mm):
    with mm.pkg.Manager() as m:
        outer = m.dict()
        inner = m.list()
        outer["inner"] = inner
        inner.append("from parent")
        run_child(mm, _nested, outer)
        assert outer["inner"][:] == ["from parent", "from child"]
        assert inner[:] == ["from parent", "from child"]
        del inner
        gc.collect()
        outer["inner"].append("still there")  # the dict's reference keeps it alive
        assert len(outer["inner"]) == 3


def test_objects_are_freed_with_their_last_proxy(mm):
    with mm.pkg.Manager() as m:
        base = m._number_of_objects()
        lst = m.list([1])
        d = m.dict()
        assert m._number_of_objects() == base + 2
        del lst, d
        gc.collect()
        assert wait_until(lambda: m._number_of_objects() == base)


# ---- waiting objects ----------------------------------------------------------------

def _put_later(q, go):
    go.wait(60)
    q.put("late")


def test_queue_get_waits_for_a_put_from_another_process(mm):
    with mm.pkg.Manager() as m:
        q, go = m.Queue(), m.Event()
        p = mm.pkg.Process(target=_put_later, args=(q, go))
        p.start()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.05)
        with pytest.raises(queue.Empty):
            q.get_nowait()
        go.set()
        assert q.get(timeout=60) == "late"
        p.join(60)
        assert p.exitcode == 0
        q.put(1)
        assert q.qsize() == 1 and not q.empty()


def _hold_lock(lock, held, release):
    with lock:
        held.set()
        release.wait(60)


def test_lock_between_processes(mm):
    with mm.pkg.Manager() as m:
        lock, held, release = m.Lock(), m.Event(), m.Event()
        p = mm.pkg.Process(target=_hold_lock, args=(lock, held, release))
        p.start()
        assert held.wait(60)
        assert lock.acquire(timeout=0.05) is False
        assert lock.acquire(False) is False
        release.set()
        assert lock.acquire(timeout=60) is True
        lock.release()
        p.join(60)
        assert p.exitcode == 0
        with pytest.raises(Exception):  # releasing an unlocked lock fails
            lock.release()


def test_rlock_is_reentrant_for_its_owner(mm):
    with mm.pkg.Manager() as m:
        r = m.RLock()
        assert r.acquire() and r.acquire()
        r.release()
        r.release()
        with pytest.raises(Exception):
            r.release()


def _wait_cond(cond, state):
    with cond:
        state["waiting"] = True
        cond.notify_all()
        ok = cond.wait_for(lambda: state.get("go"), timeout=60)
        state["woke"] = ok


def test_condition_between_processes(mm):
    with mm.pkg.Manager() as m:
        cond, state = m.Condition(), m.dict()
        p = mm.pkg.Process(target=_wait_cond, args=(cond, state))
        p.start()
        with cond:
            assert cond.wait_for(lambda: state.get("waiting"), timeout=60)
            state["go"] = True
            cond.notify()
        p.join(60)
        assert p.exitcode == 0 and state["woke"] is True
        with cond:
            assert cond.wait(0.01) is False


def _barrier_wait(b, out):
    out.put(b.wait(60))


def test_barrier_and_semaphore(mm):
    with mm.pkg.Manager() as m:
        b, out = m.Barrier(2), m.Queue()
        assert b.parties == 2 and b.n_waiting == 0 and not b.broken
        p = mm.pkg.Process(target=_barrier_wait, args=(b, out))
        p.start()
        mine = b.wait(60)
        p.join(60)
        assert sorted([mine, out.get(timeout=60)]) == [0, 1]
        s = m.BoundedSemaphore(1)
        assert s.acquire() and not s.acquire(False)
        s.release()
        with pytest.raises(ValueError):
            s.release()


def test_a_waiting_call_does_not_stall_other_clients(mm):
    with mm.pkg.Manager() as m:
        q, d = m.Queue(), m.dict()
        started = threading.Event()
        got = []

        def getter():
            q.qsize()  # this thread's connection (corelet: its channel) is open
            started.set()
            got.append(q.get(timeout=60))

        t = threading.Thread(target=getter)
        t.start()
        assert started.wait(60)
        for i in range(300):
            d[i] = i
        assert len(d) == 300
        q.put("done")
        t.join(60)
        assert got == ["done"]


# ---- registered types ------------------------------------------------------------

class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def fail(self):
        raise ValueError("counter says no")

    def child(self):
        return Counter(self.n * 10)

    def _hidden(self):
        return "hidden"


def _count(c, k):
    for _ in range(k):
        c.add()


def make_manager_class(mm):
    class MyManager(mm.managers.BaseManager):
        pass

    MyManager.register("Counter", Counter, method_to_typeid={"child": "ChildCounter"})
    MyManager.register("ChildCounter", create_method=False)  # the object a method gave: no callable
    MyManager.register("OnlyGet", Counter, exposed=("get",))
    return MyManager


def test_a_registered_type(mm):
    MyManager = make_manager_class(mm)
    with MyManager() as m:
        c = m.Counter(5)
        assert c.add() == 6 and c.add(k=4) == 10
        run_child(mm, _count, c, 5)
        assert c.get() == 15
        with pytest.raises(ValueError, match="counter says no"):
            c.fail()
        with pytest.raises(AttributeError):
            c._hidden()
        grand = c.child()  # method_to_typeid: a proxy of a new Counter
        assert grand.get() == 150 and c.get() == 15
        only = m.OnlyGet(3)
        assert only.get() == 3
        assert not hasattr(only, "add")


class Slow:
    def __init__(self):
        self.ev = threading.Event()

    def block(self):  # foreign blocking code
        return self.ev.wait(60)

    def unblock(self):
        self.ev.set()
        return True


def test_a_registered_types_blocking_method_stalls_only_its_caller(mm):
    class M(mm.managers.BaseManager):
        pass

    M.register("Slow", Slow)
    M.register("dict", dict, mm.managers.DictProxy)
    with M() as m:
        s, d = m.Slow(), m.dict()
        result = []
        t = threading.Thread(target=lambda: result.append(s.block()))
        t.start()
        time.sleep(0.05)
        d["a"] = 1  # served while block() waits
        assert d["a"] == 1
        assert s.unblock() is True
        t.join(60)
        assert result == [True]


def test_start_initializer_runs_in_the_server(mm, tmp_path):
    path = tmp_path / "init"
    with mm.managers.SyncManager() as m:
        pass
    m = mm.managers.SyncManager()
    m.start(path.write_text, (str(os.getpid()),))
    try:
        assert path.read_text() == str(os.getpid())
        with pytest.raises(multiprocessing.ProcessError):
            m.start()
    finally:
        m.shutdown()
    with pytest.raises(TypeError):
        mm.managers.SyncManager().start(initializer=5)


# ---- over the network, authkeys ------------------------------------------------------

def _tcp_client(mm_name, address, key, out):
    mm = MODULES[mm_name]
    M = make_manager_class(mm)
    m = M(address=address, authkey=key)
    m.connect()
    c = m.Counter(100)
    out.put(c.add(1))


def test_a_manager_served_over_tcp_reached_from_another_process(mm):
    M = make_manager_class(mm)
    with M(address=("127.0.0.1", 0), authkey=b"secret") as m:
        host, port = m.address
        assert port != 0
        out = multiprocessing.SimpleQueue()
        p = multiprocessing.Process(target=_tcp_client,
                                    args=("corelet" if mm.pkg is corelet else "multiprocessing", m.address,
                                          b"secret", out))
        p.start()
        assert out.get() == 101
        p.join(60)
        assert p.exitcode == 0


def test_a_wrong_authkey_is_refused_with_authentication_error(mm):
    M = make_manager_class(mm)
    with M(address=("127.0.0.1", 0), authkey=b"right") as m:
        wrong = M(address=m.address, authkey=b"wrong")
        with pytest.raises(multiprocessing.AuthenticationError):
            wrong.connect()
        right = M(address=m.address, authkey=b"right")
        right.connect()
        assert right.Counter(1).get() == 1


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _frame(data):
    return struct.pack("!i", len(data)) + data


def test_nothing_is_unpickled_before_the_authkey_challenge_passed(mm, tmp_path):
    target = tmp_path / "pwned"
    M = make_manager_class(mm)
    with M(address=("127.0.0.1", 0), authkey=b"key") as m:
        s = socket.create_connection(m.address, timeout=30)
        hdr = s.recv(4)
        (n,) = struct.unpack("!i", hdr)
        challenge = b""
        while len(challenge) < n:
            challenge += s.recv(n - len(challenge))
        assert challenge.startswith(b"#CHALLENGE#")
        s.sendall(_frame(pickle.dumps(_Touch(str(target)))))  # instead of the digest
        reply = s.recv(64)
        assert b"#FAILURE#" in reply
        s.close()
        # The server goes on serving the others.
        ok = M(address=m.address, authkey=b"key")
        ok.connect()
        assert ok.Counter(2).get() == 2
    assert not target.exists()


def _server_in_child(mm_name, address, key, ready):
    mm = MODULES[mm_name]
    M = make_manager_class(mm)
    server = M(address=address, authkey=key).get_server()
    ready.put(server.address)
    server.serve_forever()


def test_get_server_serve_forever_and_a_dead_manager(mm):
    ready = multiprocessing.SimpleQueue()
    p = multiprocessing.Process(
        target=_server_in_child,
        args=("corelet" if mm.pkg is corelet else "multiprocessing", ("127.0.0.1", 0), b"k", ready),
    )
    p.start()
    address = ready.get()
    M = make_manager_class(mm)
    m = M(address=address, authkey=b"k")
    m.connect()
    c = m.Counter(7)
    assert c.add() == 8
    os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    # A call to a dead manager fails at once with an error; it never hangs.
    errors = []

    def call():
        try:
            c.add()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "a call to a dead manager hung"
    assert errors and isinstance(errors[0], (OSError, EOFError))


def test_a_multiprocessing_client_talks_to_this_server_and_back(mm):
    # Both ways at once: the proxies of the other package reach this one's server.
    other = MODULES["multiprocessing" if mm.pkg is corelet else "corelet"]
    Mine, Theirs = make_manager_class(mm), make_manager_class(other)
    with Mine(address=("127.0.0.1", 0), authkey=b"x") as m:
        t = Theirs(address=m.address, authkey=b"x")
        t.connect()
        c = t.Counter(1)
        assert c.add(2) == 3


# ---- the server's life -----------------------------------------------------------

def _make_manager_and_die(mm_name, w):
    mm = MODULES[mm_name]
    m = mm.pkg.Manager()
    os.write(w, f"{m._process.pid}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_server_dies_with_the_process_that_started_it(mm):
    better_in_corelet(mm, "the server has the kernel's parent-death signal; multiprocessing's outlives a SIGKILL")
    r, w = os.pipe()
    p = multiprocessing.Process(target=_make_manager_and_die,
                                args=("corelet" if mm.pkg is corelet else "multiprocessing", w))
    p.start()
    os.close(w)
    with os.fdopen(r) as f:
        pid = int(f.readline())
    p.join(60)
    try:
        assert wait_until(lambda: not pid_alive(pid)), "the manager's server outlived its parent"
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_server_is_shut_down_at_exit(mm, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import {mm.pkg.__name__} as mp
        if __name__ == "__main__":
            m = mp.Manager()
            d = m.dict(a=1)
            print(m._process.pid, flush=True)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split()[0])
    assert wait_until(lambda: not pid_alive(pid))
    assert "Traceback" not in out.stderr


def test_a_manager_through_pool_workers(mm):
    with mm.pkg.Manager() as m:
        d = m.dict()
        with mm.pkg.Pool(2) as pool:
            pool.starmap(d.__setitem__, [(i, i * i) for i in range(10)])
        assert d.copy() == {i: i * i for i in range(10)}


def test_manager_pool(mm):
    with mm.pkg.Manager() as m:
        pool = m.Pool(2)
        assert pool.apply(pow, (2, 5)) == 32
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
        assert pool.apply_async(pow, (3, 2)).get(60) == 9
        pool.close()
        pool.join()


# ---- a leak check (corelet only: it is corelet's code) --------------------------------

def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_no_leak_over_10000_manager_calls():
    with corelet.Manager() as m:
        d, q = m.dict(), m.Queue()
        server = m._process.pid

        def rounds(n):
            for i in range(n):
                d[i % 10] = i
                d.get(i % 10)
                q.put(i)
                q.get()

        rounds(500)
        gc.collect()
        objects, rss, server_rss = len(gc.get_objects()), _rss_kb(os.getpid()), _rss_kb(server)
        rounds(2500)  # 10,000 calls
        gc.collect()
        assert len(gc.get_objects()) - objects < 200
        assert _rss_kb(os.getpid()) - rss < 4096
        assert _rss_kb(server) - server_rss < 4096


# ---- corelet's shared-memory channel (corelet only: multiprocessing has none) ----------

def test_calls_on_this_host_go_through_a_shared_memory_channel():
    with corelet.Manager() as m:
        d = m.dict()
        d["a"] = 1
        channel = d._tls.corelet_channel
        assert channel is not None
        big = b"x" * (3 << 20)  # larger than the channel's ring, both ways
        d["big"] = big
        assert d["big"] == big
        assert d["a"] == 1
        results = []

        def worker(k):
            for i in range(200):
                d[k] = i
            results.append((d[k], d._tls.corelet_channel is not channel))

        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [(199, True)] * 4  # a channel per thread
        with pytest.raises(KeyError):
            d["missing"]


def _count_in_a_pool_worker(d, n):
    for i in range(n):
        d["pool"] = i
    return d["pool"], "connection" not in d._tls.__dict__  # never over the socket


def test_a_tasklet_and_a_pool_worker_call_through_the_channel_too():
    with corelet.Manager() as m:
        d, q = m.dict(), m.Queue()

        def main():
            for i in range(100):
                d["tasklet"] = i
            q.put("from the tasklet")
            yield corelet.sleep(0)
            # mp's socket path would have left its connection in the proxy's thread-local state
            return d["tasklet"], q.get(timeout=30), "connection" not in d._tls.__dict__

        assert corelet.run(main) == (99, "from the tasklet", True)
        with corelet.Pool(1) as pool:
            assert pool.apply(_count_in_a_pool_worker, (d, 100)) == (99, True)


def test_a_call_through_the_channel_to_a_dead_manager_fails_at_once():
    m = corelet.Manager()
    d = m.dict()
    opened, killed, errors = threading.Event(), threading.Event(), []

    def call():
        d["a"] = 1  # this thread's channel is open
        assert d._tls.corelet_channel is not None
        opened.set()
        killed.wait(60)
        try:
            d["a"]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    assert opened.wait(60)
    os.kill(m._process.pid, signal.SIGKILL)
    m._process.join(60)
    killed.set()
    t.join(30)
    assert not t.is_alive(), "a call to a dead manager hung"
    assert errors and isinstance(errors[0], ConnectionResetError), errors
    assert "is gone" in str(errors[0])
    m.shutdown()



class _RefusesPickling:
    def __reduce__(self):
        raise ValueError("this object refuses pickling")


class Maker:
    def bad(self):
        return _RefusesPickling()

    def good(self):
        return "fine"


def test_a_result_that_cannot_be_pickled_fails_that_call_only(mm):
    class M(mm.managers.BaseManager):
        pass

    M.register("Maker", Maker)
    with M() as m:
        maker = m.Maker()
        with pytest.raises(mm.managers.RemoteError, match="refuses pickling"):
            maker.bad()
        assert maker.good() == "fine"  # the connection goes on
