"""multiprocessing.connection's API, tested differentially: each body runs
against multiprocessing (its connection module, Pipe and Process) and
against corelet (corelet.connection, corelet.Pipe, corelet.Process)."""

import multiprocessing
import multiprocessing.connection
import os
import socket
import time
import types

import pytest

import corelet
import corelet.connection

MODULES = {
    "multiprocessing": types.SimpleNamespace(pkg=multiprocessing, connection=multiprocessing.connection),
    "corelet": types.SimpleNamespace(pkg=corelet, connection=corelet.connection),
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
