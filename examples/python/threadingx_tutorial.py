#!/usr/bin/python3
"""ThreadingX's tutorial on corelet: main spawns a child actor in another
worker process, calls send_message on its proxy, and the child calls back
finished() on its sender.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/threadingx_tutorial.py
"""

import os

import corelet


class ChildService:
    def send_message(self, message):
        print(f"Child (pid {os.getpid()}) received message: {message}", flush=True)
        corelet.sender().finished()


class MainService:
    def __init__(self):
        self.done = False

    def start(self):
        child = corelet.spawn_actor(ChildService, worker=1)
        child.send_message("hello from main")

    def finished(self):
        print(f"Finished (main service, pid {os.getpid()})", flush=True)
        self.done = True

    def is_done(self):
        return self.done


def main():
    service = corelet.spawn_actor(MainService, worker=0)
    yield service.start()
    while not (yield service.is_done()):
        yield corelet.sleep(0.001)


if __name__ == "__main__":
    corelet.run(main, workers=2)
