#!/usr/bin/python3
"""md5 of many files at once: one tasklet per file, reading through corelet's
reactor (io_uring: no helper thread) while the others hash. Prints lines as
md5sum does.

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/md5_files.py FILE...
"""

import hashlib
import sys

import corelet


async def md5_of(path):
    h = hashlib.md5()
    with corelet.open(path, "rb") as f:
        while chunk := await f.read(1 << 16):
            h.update(chunk)
    return h.hexdigest()


async def main(paths):
    tasks = [corelet.spawn(md5_of, p) for p in paths]
    status = 0
    for path, t in zip(paths, tasks):
        try:
            print(f"{await t}  {path}")
        except OSError as e:
            print(f"md5_files.py: {path}: {e.strerror}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(corelet.run(main, sys.argv[1:]))
