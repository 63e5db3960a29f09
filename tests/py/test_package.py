"""The package's shape: its modules import one another without a cycle, and
each primitive name is a class whose objects are its instances, whether
they are the in-process ones (made in a tasklet) or the cross-process ones
(made in plain code)."""

import ast
import inspect
import pickle
import weakref
from pathlib import Path

import pytest

import corelet

PACKAGE = Path(__file__).resolve().parents[2] / "py" / "corelet"

# name -> constructor arguments
SWITCHED = {
    "Queue": (),
    "JoinableQueue": (),
    "Lock": (),
    "RLock": (),
    "Semaphore": (2,),
    "BoundedSemaphore": (2,),
    "Event": (),
    "Condition": (),
    "Barrier": (2,),
}


# ---- the import graph ------------------------------------------------------------


def package_modules():
    """module name -> parsed source; "__init__" is the package itself. The
    extension (_corelet) is a module too, one that imports none of these."""
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def imports_of(tree, modules):
    """The package modules that tree imports, at its top or inside functions:
    ``import corelet.x``, ``from corelet.x import y``, ``from . import x``,
    ``from .x import y``, ``import_module("corelet.x")``. Importing a name of
    the package itself (``from . import run``, ``import corelet``) imports
    __init__."""

    def module(dotted):
        parts = dotted.split(".")
        if parts[0] != "corelet":
            return None
        return parts[1] if len(parts) > 1 else "__init__"

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(module(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module
            else:
                assert node.level == 1, "the package is flat: no import reaches above it"
                base = "corelet" + (f".{node.module}" if node.module else "")
            target = module(base)
            if target == "__init__":
                found.update(a.name if a.name in modules else "__init__" for a in node.names)
            else:
                found.add(target)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(module(node.args[0].value))
    found.discard(None)
    return found


def import_graph():
    trees = package_modules()
    modules = set(trees) | {"_corelet"}
    graph = {name: imports_of(tree, modules) for name, tree in trees.items()}
    graph["_corelet"] = set()
    for name, targets in graph.items():
        assert targets <= modules, f"{name} imports {targets - modules}, not modules of the package"
    return graph


def find_cycle(graph):
    """A cycle as a list of modules (first == last), or None."""
    state = {}  # module -> "open" while on the path, "done" after
    path = []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return path[path.index(n) :] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        path.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return None


def test_the_finder_sees_lazy_relative_and_package_imports():
    tree = ast.parse(
        "from . import _corelet, run\n"
        "from ._sync import Lock\n"
        "import corelet._wire\n"
        "def f():\n"
        "    from ._queues import Queue\n"
        "    import os\n"
    )
    modules = {"__init__", "_corelet", "_sync", "_wire", "_queues"}
    assert imports_of(tree, modules) == {"_corelet", "__init__", "_sync", "_wire", "_queues"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_modules_import_one_another_without_a_cycle():
    graph = import_graph()
    assert {"__init__", "_sync", "_queues", "_common", "_shared_sync", "_shared_queue"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_common_module_is_a_leaf():
    assert import_graph()["_common"] <= {"_corelet", "_wire"}


# ---- isinstance and subclasses -----------------------------------------------------


def make_all():
    return {name: getattr(corelet, name)(*args) for name, args in SWITCHED.items()}


@pytest.mark.parametrize("name", SWITCHED)
def test_made_in_plain_code_it_is_the_cross_process_one_and_an_instance_of_its_name(name):
    cls = getattr(corelet, name)
    obj = cls(*SWITCHED[name])
    assert isinstance(obj, cls)
    assert type(obj) is not cls and type(obj).__name__ == "Shared" + name
    with pytest.raises(RuntimeError, match="inheritance"):
        pickle.dumps(obj)
    weakref.ref(obj)


def test_made_in_a_tasklet_each_is_the_in_process_one_and_an_instance_of_its_name():
    def main():
        yield
        return {name: type(obj) for name, obj in make_all().items()}

    made = corelet.run(main)
    for name, cls in made.items():
        assert cls is getattr(corelet, name), name


def test_a_shared_joinable_queue_is_a_queue_and_a_shared_queue_is_not_joinable():
    q, jq = corelet.Queue(), corelet.JoinableQueue()
    assert isinstance(jq, corelet.JoinableQueue) and isinstance(jq, corelet.Queue)
    assert not isinstance(q, corelet.JoinableQueue)
    assert isinstance(corelet.BoundedSemaphore(), corelet.Semaphore)


def test_the_cross_process_ones_work_in_a_tasklet_as_instances_of_their_names():
    q, lock, event = corelet.Queue(), corelet.Lock(), corelet.Event()

    async def main():
        assert isinstance(q, corelet.Queue) and isinstance(lock, corelet.Lock)
        await q.put("x")
        async with lock:
            assert lock.locked()
        event.set()
        return (await q.get()), (await event.wait(0)), lock.locked()

    assert corelet.run(main) == ("x", True, False)


@pytest.mark.parametrize("name", SWITCHED)
def test_the_cross_process_class_overrides_every_method_of_the_in_process_one(name):
    inproc = getattr(corelet, name)
    shared = type(inproc(*SWITCHED[name]))
    generic = {"__new__", "__init_subclass__", "_plain_code_class"}  # the switch itself (corelet._common)
    skipped = []
    for attr in dir(inproc):
        owner = next((c for c in inproc.__mro__ if attr in c.__dict__), None)
        if owner is None or owner is object or owner.__module__ == "corelet._common" or attr in generic:
            continue  # object's, and the mixins written for both kinds
        if owner.__module__ == "corelet._corelet" and attr.startswith("_"):
            continue  # a C core's internals: called only by the in-process methods, checked here
        raw = inspect.getattr_static(inproc, attr)
        if not hasattr(raw, "__get__") or inspect.ismemberdescriptor(raw) or inspect.isgetsetdescriptor(raw):
            continue  # constants, __dict__ and __weakref__, and the in-process slots (unset on a shared object)
        if inspect.getattr_static(shared, attr) is raw:
            skipped.append(attr)
    assert not skipped, f"in-process methods of {name} that {shared.__name__} does not override: {skipped}"


def test_an_in_process_helper_called_on_a_shared_object_raises():
    with pytest.raises(corelet.UsageError, match="shared between processes"):
        corelet.Queue()._put(1)
    with pytest.raises(corelet.UsageError, match="shared between processes"):
        corelet.RLock()._acquire_slow(1, None)


class StackQueue(corelet.Queue):
    """A user's subclass through queue.Queue's storage hooks."""

    def _init(self, maxsize):
        self._queue = []

    def _get(self):
        return self._queue.pop()


class CountingLock(corelet.Lock):
    __slots__ = ("taken",)

    def __init__(self):
        super().__init__()
        self.taken = 0

    def acquire(self, blocking=True, timeout=-1):
        self.taken += 1
        return super().acquire(blocking, timeout)


class NamedEvent(corelet.Event):
    __slots__ = ("name",)

    def __init__(self, name):
        super().__init__()
        self.name = name


def use_subclasses():
    q = StackQueue()
    q.put_nowait(1)
    q.put_nowait(2)
    lock = CountingLock()
    got = lock.acquire()  # the in-process lock gives an operation, complete at once
    event = NamedEvent("e")
    event.set()
    return (type(q), q.get_nowait(), type(lock), lock.taken, lock.locked(), type(got).__name__ != "bool",
            type(event), event.is_set(), event.name)


def test_a_users_subclass_is_in_process_in_plain_code_and_in_a_tasklet():
    expected = (StackQueue, 2, CountingLock, 1, True, True, NamedEvent, True, "e")
    assert use_subclasses() == expected

    def main():
        yield
        return use_subclasses()

    assert corelet.run(main) == expected
    assert type(corelet.LifoQueue()) is corelet.LifoQueue and type(corelet.PriorityQueue()) is corelet.PriorityQueue
