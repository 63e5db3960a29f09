"""multiprocessing.shared_memory's API, tested differentially: each body runs
against multiprocessing (its shared_memory module and Process) and against
corelet (corelet.shared_memory, corelet.Process). The lifetime of a segment
is where corelet means to differ (`better_in_corelet`, listed in
py/README.md): its name goes once no process holds it, however the holders
ended, and nothing warns at exit."""

import multiprocessing
import multiprocessing.managers
import multiprocessing.shared_memory
import os
import pickle
import subprocess
import sys
import textwrap
import types

import pytest
from support import child_env, intended_difference, pid_alive, wait_until

import corelet
import corelet.managers
import corelet.shared_memory

MODULES = {
    "multiprocessing": types.SimpleNamespace(pkg=multiprocessing, shm=multiprocessing.shared_memory),
    "corelet": types.SimpleNamespace(pkg=corelet, shm=corelet.shared_memory),
}


@pytest.fixture(params=list(MODULES))
def ms(request):
    return MODULES[request.param]


def better_in_corelet(ms, why):
    intended_difference(ms.pkg is multiprocessing, why)


def _exists(name):
    return os.path.exists("/dev/shm/" + name)


@pytest.fixture
def made(ms):
    """Segments a test makes: unlinked at its end if they are still there
    (multiprocessing's would be left behind, with a warning)."""
    segments = []
    yield segments
    for s in segments:
        s.close()
        if _exists(s.name):
            try:
                s.unlink()
            except FileNotFoundError:
                pass


@pytest.mark.parametrize("name", ["SharedMemory", "ShareableList"])
def test_the_names_are_there(ms, name):
    assert hasattr(ms.shm, name)


def test_create_attach_and_share_bytes(ms, made):
    s = ms.shm.SharedMemory(create=True, size=1000)
    made.append(s)
    assert s.size == 1000 and len(s.buf) == 1000
    assert _exists(s.name)
    assert repr(s) == f"SharedMemory({s.name!r}, size=1000)"
    s.buf[:5] = b"hello"
    other = ms.shm.SharedMemory(name=s.name)
    made.append(other)
    assert bytes(other.buf[:5]) == b"hello" and other.size == 1000
    other.buf[0] = ord("j")
    assert bytes(s.buf[:5]) == b"jello"


def test_a_named_segment(ms, made):
    name = f"test_shm_{os.getpid()}_{id(ms)}"
    s = ms.shm.SharedMemory(name=name, create=True, size=64)
    made.append(s)
    assert s.name == name
    with pytest.raises(FileExistsError):
        ms.shm.SharedMemory(name=name, create=True, size=64)


def test_bad_arguments(ms):
    with pytest.raises(ValueError, match="'size' must be a positive integer"):
        ms.shm.SharedMemory(create=True, size=-1)
    with pytest.raises(ValueError, match="different from zero"):
        ms.shm.SharedMemory(create=True, size=0)
    with pytest.raises(ValueError, match="'name' can only be None if create=True"):
        ms.shm.SharedMemory()
    with pytest.raises(FileNotFoundError):
        ms.shm.SharedMemory(name=f"no_such_segment_{os.getpid()}")


def test_unlink_removes_the_name_and_the_holders_keep_the_memory(ms):
    s = ms.shm.SharedMemory(create=True, size=16)
    s.buf[0] = 9
    other = ms.shm.SharedMemory(name=s.name)
    s.unlink()
    assert not _exists(s.name)
    with pytest.raises(FileNotFoundError):
        ms.shm.SharedMemory(name=s.name)
    assert other.buf[0] == 9
    with pytest.raises(FileNotFoundError):
        other.unlink()
    s.close()
    other.close()


def _write_into(mod_name, segment, text):
    segment.buf[: len(text)] = text
    segment.close()


def test_a_segment_pickles_by_name_to_a_child(ms, made):
    s = ms.shm.SharedMemory(create=True, size=32)
    made.append(s)
    again = pickle.loads(pickle.dumps(s))
    made.append(again)
    assert again.name == s.name and again.size == 32
    p = ms.pkg.Process(target=_write_into, args=("", s, b"from the child"))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert bytes(s.buf[:14]) == b"from the child"


def _bump_list(sl):
    sl[0] += 1
    sl[2] = "changed"
    sl.shm.close()


def test_shareable_list(ms, made):
    sl = ms.shm.ShareableList([1, 2.5, "text", b"raw", None, True])
    made.append(sl.shm)
    assert list(sl) == [1, 2.5, "text", b"raw", None, True]
    assert len(sl) == 6 and sl.count(1) == 2 and sl.index("text") == 2  # True == 1
    assert repr(sl) == f"ShareableList({list(sl)!r}, name={sl.shm.name!r})"
    with pytest.raises(ValueError, match="exceeds available storage"):
        sl[2] = "x" * 100
    other = ms.shm.ShareableList(name=sl.shm.name)
    made.append(other.shm)
    assert list(other) == list(sl)
    p = ms.pkg.Process(target=_bump_list, args=(sl,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert sl[0] == 2 and other[2] == "changed"
    with pytest.raises(IndexError):
        sl[6]


def test_either_module_attaches_the_others_segment():
    theirs = multiprocessing.shared_memory.SharedMemory(create=True, size=8)
    theirs.buf[0] = 1
    mine = corelet.shared_memory.SharedMemory(name=theirs.name)
    assert mine.buf[0] == 1
    mine.close()
    theirs.close()
    theirs.unlink()

    mine = corelet.shared_memory.SharedMemory(create=True, size=8)
    mine.buf[0] = 2
    sl = corelet.shared_memory.ShareableList([7, "seven"])
    assert isinstance(mine, multiprocessing.shared_memory.SharedMemory)
    assert isinstance(sl, multiprocessing.shared_memory.ShareableList)
    # Read with multiprocessing's own ShareableList layout code: the same layout.
    read = multiprocessing.shared_memory.ShareableList.__getitem__
    attached = corelet.shared_memory.ShareableList(name=sl.shm.name)
    assert read(attached, 1) == "seven"
    for s in (mine, sl.shm, attached.shm):
        s.close()
    assert wait_until(lambda: not _exists(mine.name) and not _exists(sl.shm.name))


# ---- the end of a segment ------------------------------------------------------


def _program(ms, body):
    """Runs body (dedented) in a fresh interpreter with `mod` being ms's
    package and `shm` its shared_memory; (returncode, stdout, stderr)."""
    pkg = "corelet" if ms.pkg is corelet else "multiprocessing"
    code = f"import {pkg} as mod\nfrom {pkg} import shared_memory as shm\n" + textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


CHILD_ATTACHES_AND_NOBODY_UNLINKS = """
    import sys
    def child(s, sl):
        s.buf[0] = 5
        sl[0] = "done"
    if __name__ == "__main__":
        s = shm.SharedMemory(create=True, size=4096)
        sl = shm.ShareableList(["waiting", 1])
        p = mod.Process(target=child, args=(s, sl))
        p.start()
        p.join()
        assert s.buf[0] == 5 and sl[0] == "done"
        print(s.name, sl.shm.name)
        print(getattr(getattr(shm, "_reaper", None), "reaper_pid", None))
"""


def test_nothing_is_left_behind_and_nothing_warns(ms):
    better_in_corelet(ms, "a segment goes when its last holder ends; nothing warns at exit")
    code, out, err = _program(ms, CHILD_ATTACHES_AND_NOBODY_UNLINKS)
    assert code == 0, err
    names, reaper = out.split("\n")[0].split(), out.split("\n")[1]
    assert len(names) == 2
    assert wait_until(lambda: not any(_exists(n) for n in names)), names
    assert "resource_tracker" not in err and "leaked" not in err, err
    assert reaper.isdigit()
    assert wait_until(lambda: not pid_alive(int(reaper))), "the reaper outlived what it watched"


def test_a_segment_lives_while_any_holder_does_however_the_others_end(ms):
    better_in_corelet(ms, "a segment stays while an unrelated process holds it, and goes when it ends")
    pkg = "corelet" if ms.pkg is corelet else "multiprocessing"
    head = f"import sys\nfrom {pkg} import shared_memory as shm\n"
    creator = subprocess.Popen(
        [sys.executable, "-c", head + "s = shm.SharedMemory(create=True, size=4096)\ns.buf[0] = 7\n"
         "print(s.name, flush=True)\nsys.stdin.read()"],
        env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    name = creator.stdout.readline().strip()
    holder = subprocess.Popen(
        [sys.executable, "-c", head + f"s = shm.SharedMemory(name={name!r})\nprint(s.buf[0], flush=True)\n"
         "sys.stdin.read()"],
        env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "7"
        creator.kill()
        creator.wait(30)
        # The holder still has it: its name stays (the holder could be told it
        # by a third process); an unrelated process attaches and reads it.
        later = subprocess.run(
            [sys.executable, "-c", head + f"s = shm.SharedMemory(name={name!r})\nprint(s.buf[0])"],
            env=child_env(), capture_output=True, text=True, timeout=60,
        )
        assert later.stdout.strip() == "7", later.stderr
        holder.kill()
        holder.wait(30)
        assert wait_until(lambda: not _exists(name)), name
    finally:
        for p in (creator, holder):
            p.kill()
            p.wait()
        if _exists(name):
            os.unlink("/dev/shm/" + name)


def _hold_for_a_while(s, ready, go):
    ready.set()
    go.wait(60)
    assert s.buf[0] == 3


def test_a_forked_child_that_inherits_a_segment_holds_it(ms):
    better_in_corelet(ms, "a segment goes when its last holder ends")
    s = ms.shm.SharedMemory(create=True, size=64)
    name = s.name
    s.buf[0] = 3
    ready, go = ms.pkg.Event(), ms.pkg.Event()
    p = ms.pkg.Process(target=_hold_for_a_while, args=(s, ready, go))
    p.start()
    try:
        assert ready.wait(30)
        s.close()  # the child's inherited descriptor still holds it
        again = ms.shm.SharedMemory(name=name)
        assert again.buf[0] == 3
        again.close()
        go.set()
        p.join(30)
        assert p.exitcode == 0
        assert wait_until(lambda: not _exists(name)), name
    finally:
        go.set()
        p.join(30)
        if _exists(name):
            os.unlink("/dev/shm/" + name)


# ---- SharedMemoryManager ---------------------------------------------------------


def test_a_shared_memory_manager_unlinks_its_segments_at_shutdown(ms):
    managers = corelet.managers if ms.pkg is corelet else multiprocessing.managers
    with managers.SharedMemoryManager() as smm:
        s = smm.SharedMemory(64)
        sl = smm.ShareableList([1, "one"])
        names = [s.name, sl.shm.name]
        assert all(_exists(n) for n in names)
        assert sl[1] == "one" and s.size == 64
    assert not any(_exists(n) for n in names)
    s.close()
    sl.shm.close()


def test_a_shared_memory_managers_server_lists_and_releases_segments(ms):
    managers = corelet.managers if ms.pkg is corelet else multiprocessing.managers
    with managers.SharedMemoryManager() as smm:
        s = smm.SharedMemory(16)

        def ask(*request):  # one request per connection, as the manager's own calls
            with smm._Client(smm.address, authkey=smm._authkey) as conn:
                return multiprocessing.managers.dispatch(conn, None, *request)

        assert ask("list_segments") == [s.name]
        ask("release_segment", (s.name,))
        assert ask("list_segments") == []
        assert not _exists(s.name)
        s.close()
