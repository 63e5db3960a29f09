"""multiprocessing.connection's API, tested differentially: each body runs
against multiprocessing (its connection module, Pipe and Process) and
against corelet (corelet.connection, corelet.Pipe, corelet.Process)."""

import multiprocessing
import multiprocessing.connection
import multiprocessing.reduction
import os
import socket
import time
import types

import pytest

import corelet
import corelet.connection

MODULES = {
    "multiprocessing": types.SimpleNamespace(pkg=multiprocessing, connection=multiprocessing.connection,
                                             send_handle=multiprocessing.reduction.send_handle,
                                             recv_handle=multiprocessing.reduction.recv_handle),
    "corelet": types.SimpleNamespace(pkg=corelet, connection=corelet.connection,
                                     send_handle=corelet.connection.send_handle,
                                     recv_handle=corelet.connection.recv_handle),
}


@pytest.fixture(params=list(MODULES))
def mc(request):
    return MODULES[request.param]


@pytest.mark.parametrize("name", ["Listener", "Client", "wait", "Pipe", "Connection", "deliver_challenge",
                                  "answer_challenge", "families"])
def test_the_names_are_there(mc, name):
    assert hasattr(mc.connection, name)


def _client(mod_name, address, key):
    mc = MODULES[mod_name]
    with mc.connection.Client(address, authkey=key) as conn:
        conn.send([2.25, None, "junk", float])
        assert conn.recv() == "thanks"


@pytest.mark.parametrize("family", ["AF_INET", "AF_UNIX"])
def test_listener_and_client_with_an_authkey(mc, family):
    address = ("127.0.0.1", 0) if family == "AF_INET" else None
    with mc.connection.Listener(address, family=family, authkey=b"secret") as listener:
        p = mc.pkg.Process(target=_client, args=("corelet" if mc.pkg is corelet else "multiprocessing",
                                                 listener.address, b"secret"))
        p.start()
        with listener.accept() as conn:
            assert conn.recv() == [2.25, None, "junk", float]
            conn.send("thanks")
        p.join(60)
        assert p.exitcode == 0


def _wrong_key(mod_name, address, out):
    mc = MODULES[mod_name]
    try:
        mc.connection.Client(address, authkey=b"wrong")
    except multiprocessing.AuthenticationError:
        out.send("refused")
    else:
        out.send("accepted")


def test_a_wrong_authkey_is_refused(mc):
    with mc.connection.Listener(("127.0.0.1", 0), authkey=b"right") as listener:
        r, w = multiprocessing.Pipe(duplex=False)
        p = multiprocessing.Process(target=_wrong_key, args=("corelet" if mc.pkg is corelet else "multiprocessing",
                                                            listener.address, w))
        p.start()
        with pytest.raises(multiprocessing.AuthenticationError):
            listener.accept()
        assert r.recv() == "refused"
        p.join(60)


def _send_later(conn, go):
    go.wait(60)
    conn.send("late")


def test_wait_over_pipe_ends_sockets_and_sentinels(mc):
    a, b = mc.pkg.Pipe()
    s1, s2 = socket.socketpair()
    try:
        t = time.monotonic()
        assert mc.connection.wait([a, s1], timeout=0.05) == []
        assert time.monotonic() - t >= 0.04
        assert mc.connection.wait([a, s1], timeout=0) == []
        b.send(1)
        assert mc.connection.wait([a, s1], timeout=30) == [a]
        s2.send(b"x")
        assert mc.connection.wait([a, s1], timeout=30) == [a, s1]
        assert a.recv() == 1 and s1.recv(1) == b"x"
        c1, c2 = mc.pkg.Pipe()
        go = mc.pkg.Event()
        p = mc.pkg.Process(target=_send_later, args=(c2, go))
        p.start()
        assert mc.connection.wait([c1, p.sentinel], timeout=0.05) == []
        go.set()
        assert c1 in mc.connection.wait([c1, p.sentinel], timeout=60)  # no time limit but the test's
        assert c1.recv() == "late"
        p.join(60)
        assert p.sentinel in mc.connection.wait([p.sentinel], timeout=60)
    finally:
        s1.close()
        s2.close()


def test_wait_sees_a_closed_peer(mc):
    a, b = mc.pkg.Pipe()
    b.close()
    assert mc.connection.wait([a], timeout=30) == [a]
    with pytest.raises(EOFError):
        a.recv()


# ---- ends and descriptors sent to other processes ---------------------------------

def _use_a_sent_end(carrier):
    end = carrier.recv()  # a Pipe end this process did not inherit
    end.send(("from the child", os.getpid()))
    assert end.recv() == "and back"
    end.close()
    carrier.send("done")


def test_a_pipe_end_goes_through_a_pipe_to_a_process_that_did_not_inherit_it(mc):
    carrier, their_carrier = mc.pkg.Pipe()
    p = mc.pkg.Process(target=_use_a_sent_end, args=(their_carrier,))
    p.start()
    a, b = mc.pkg.Pipe()  # made after the child started
    carrier.send(b)
    b.close()  # the child's copy keeps it open: no EOF yet
    assert a.recv() == ("from the child", p.pid)
    a.send("and back")
    assert carrier.recv() == "done"
    with pytest.raises(EOFError):  # the child closed the last copy
        a.recv()
    p.join(60)
    assert p.exitcode == 0


def _echo_on(end):
    end.send(end.recv() * 2)
    end.close()
    return "echoed"


def test_a_pipe_end_goes_to_a_pool_worker(mc):
    a, b = mc.pkg.Pipe()
    with mc.pkg.Pool(1) as pool:
        result = pool.apply_async(_echo_on, (b,))
        a.send(21)
        assert a.recv() == 42
        assert result.get(60) == "echoed"


def test_a_closed_end_does_not_pickle(mc):
    a, b = mc.pkg.Pipe()
    b.close()
    with pytest.raises(OSError, match="handle is closed"):  # as multiprocessing's Queue and Pipe pickle it
        multiprocessing.reduction.ForkingPickler.dumps(b)
    a.close()


def _write_through_a_received_descriptor(mod_name, conn):
    fd = MODULES[mod_name].recv_handle(conn)
    os.write(fd, b"through the sent descriptor")
    os.close(fd)
    conn.send("written")


def test_send_handle_over_a_pipe(mc):
    conn, theirs = mc.pkg.Pipe()
    name = "corelet" if mc.pkg is corelet else "multiprocessing"
    p = mc.pkg.Process(target=_write_through_a_received_descriptor, args=(name, theirs))
    p.start()
    r, w = os.pipe()
    try:
        mc.send_handle(conn, w, p.pid)
        os.close(w)
        w = -1
        assert conn.recv() == "written"
        assert os.read(r, 100) == b"through the sent descriptor"
        p.join(60)
        assert p.exitcode == 0
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_send_handle_over_a_listener_connection(mc):
    name = "corelet" if mc.pkg is corelet else "multiprocessing"
    with mc.connection.Listener(None, family="AF_UNIX", authkey=b"k") as listener:
        p = mc.pkg.Process(target=_receive_from_a_listener, args=(name, listener.address))
        p.start()
        with listener.accept() as conn:
            r, w = os.pipe()
            mc.send_handle(conn, w, p.pid)
            os.close(w)
            assert conn.recv() == "written"
            assert os.read(r, 100) == b"through the sent descriptor"
            os.close(r)
        p.join(60)
        assert p.exitcode == 0


def _receive_from_a_listener(mod_name, address):
    with MODULES[mod_name].connection.Client(address, authkey=b"k") as conn:
        _write_through_a_received_descriptor(mod_name, conn)


def test_recv_handle_of_an_ordinary_message_says_so():
    a, b = corelet.Pipe()
    b.send("not a descriptor")
    with pytest.raises(OSError, match="not a send_handle"):
        corelet.connection.recv_handle(a)


def test_a_pipe_end_has_no_descriptor_and_says_what_to_use():
    a, b = corelet.Pipe()
    with pytest.raises(OSError, match="corelet.connection.wait"):
        a.fileno()


def _worker_number():
    return corelet.this_worker()


def test_a_cluster_starts_after_an_end_was_sent_and_not_while_one_waits_to_be():
    from multiprocessing import resource_sharer
    from multiprocessing.reduction import ForkingPickler

    a, b = corelet.Pipe()
    received = ForkingPickler.loads(ForkingPickler.dumps(b))  # the resource sharer's thread starts here
    received.send("via the copy")
    assert a.recv() == "via the copy"

    def main():
        return (yield corelet.spawn_on(1, _worker_number).join())

    assert corelet.run(main, workers=2) == 1  # the idle sharer was stopped for the fork
    pending = ForkingPickler.dumps(b)  # never received
    try:
        with pytest.raises(corelet.UsageError, match="has not been received yet"):
            corelet.run(main, workers=2)
    finally:
        resource_sharer.stop(timeout=30)
        b._tx._q.close_writer()  # the count the unreceived pickle held
    del pending


# ---- corelet only: wait in a tasklet --------------------------------------------------

def test_wait_is_an_operation_in_a_tasklet():
    a, b = corelet.Pipe()
    s1, s2 = socket.socketpair()

    def main():
        assert (yield corelet.connection.wait([a, s1], timeout=0.01)) == []

        def sender():
            yield corelet.sleep(0.01)
            s2.send(b"y")

        corelet.spawn(sender)
        ready = yield corelet.connection.wait([a, s1])
        return ready

    try:
        assert corelet.run(main) == [s1]
    finally:
        s1.close()
        s2.close()
