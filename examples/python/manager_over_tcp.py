"""A manager shared over TCP: one process serves a job queue and a results
dict on a port; workers elsewhere (here: other processes started with
--worker, which could as well run on other machines) connect with the
authkey, take jobs and post results.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/manager_over_tcp.py

The serving side (`serve`) runs the manager's server in this process
(get_server().serve_forever() would do the same in the foreground); the
workers only connect(). A wrong authkey is refused before anything is
unpickled (multiprocessing.AuthenticationError).
"""

import multiprocessing
import queue
import subprocess
import sys

from corelet.managers import BaseManager, DictProxy

AUTHKEY = b"a shared secret"


class JobManager(BaseManager):
    pass


def serve(port):
    jobs, results = queue.Queue(), {}
    for n in range(1, 21):
        jobs.put(n)

    class ServingManager(BaseManager):
        pass

    ServingManager.register("jobs", callable=lambda: jobs)
    ServingManager.register("results", callable=lambda: results, proxytype=DictProxy)
    m = ServingManager(address=("127.0.0.1", port), authkey=AUTHKEY)
    m.start()
    return m


def worker(port):
    JobManager.register("jobs")
    JobManager.register("results")
    m = JobManager(address=("127.0.0.1", port), authkey=AUTHKEY)
    m.connect()
    jobs, results = m.jobs(), m.results()
    while True:
        try:
            n = jobs.get_nowait()
        except queue.Empty:
            return
        results[n] = n * n


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
        sys.exit(0)
    m = serve(0)
    port = m.address[1]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(port)]) for _ in range(2)]
    for w in workers:
        assert w.wait(120) == 0
    JobManager.register("results")
    client = JobManager(address=("127.0.0.1", port), authkey=AUTHKEY)
    client.connect()
    results = client.results()
    print("results:", sorted(results.items()) == [(n, n * n) for n in range(1, 21)], len(results))
    try:
        intruder = JobManager(address=("127.0.0.1", port), authkey=b"guess")
        intruder.connect()
    except multiprocessing.AuthenticationError as e:
        print("wrong authkey:", type(e).__name__)
    m.shutdown()
