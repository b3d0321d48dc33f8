"""Measures, on this machine and now, the physical limits of the work a
mirror of FILE must do, so every figure of the benchmark stands beside
what the hardware allows, not only beside rsync (issue 22). Prints a TSV:
name, seconds, MB/s, for
  read       FILE read whole (from the page cache, as the bench reads it);
  sha256     its SHA-256 through OpenSSL (the library gwmirror hashes with);
  copy+fsync a copy of it written into DIR and fsynced;
  loopback   its size sent over a TCP connection on 127.0.0.1;
then two derived limits (seconds) for gwmirror's work on 2 cores:
  limit: initial     hash on both sides, send, write and fsync: the two
                     hashes, the send and the copy spread over 2 cores, and
                     never less than the longest of them;
  limit: 1% change   the same without the send (1 % crosses the wire): the
                     source must hash the new file to know it changed, the
                     replica writes, syncs and hashes its new copy.
Each measured figure is the best of 3 (the least disturbed).

  python3 tests/bench/limits.py FILE DIR
"""
import hashlib
import os
import socket
import sys
import threading
import time

path, scratch = sys.argv[1], sys.argv[2]
size = os.path.getsize(path)
CHUNK = 1 << 20


def best(fn, n=3):
    t = []
    for _ in range(n):
        t0 = time.monotonic()
        fn()
        t.append(time.monotonic() - t0)
    return min(t)


def pieces():
    """The file in CHUNK pieces, each a view of one reused buffer."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            yield view[:n]


def read():
    for _ in pieces():
        pass


def sha():
    h = hashlib.sha256()
    for piece in pieces():
        h.update(piece)
    return h.digest()


def copy_fsync():
    dst = os.path.join(scratch, "limits.copy")
    with open(dst, "wb", buffering=0) as o:
        for piece in pieces():
            o.write(piece)
        os.fsync(o.fileno())
    os.unlink(dst)


def loopback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = [0]

    def sink():
        c, _ = srv.accept()
        buf = bytearray(CHUNK)
        while True:
            n = c.recv_into(buf)
            if not n:
                break
            got[0] += n
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    s = socket.create_connection(srv.getsockname())
    block = b"\0" * CHUNK
    left = size
    while left > 0:
        s.sendall(block[: min(left, CHUNK)])
        left -= CHUNK
    s.close()
    t.join()
    srv.close()
    assert got[0] == size


figures = [("read", best(read)), ("sha256", best(sha)),
           ("copy+fsync", best(copy_fsync)), ("loopback", best(loopback))]
f = dict(figures)
for name, s in figures:
    print(f"{name}\t{s:.3f}\t{size / s / 1e6:.0f}")
work = 2 * f["sha256"] + f["copy+fsync"]
initial = max((work + f["loopback"]) / 2, f["sha256"], f["copy+fsync"],
              f["loopback"])
change = max(work / 2, f["sha256"], f["copy+fsync"])
print(f"limit: initial\t{initial:.3f}\t{size / initial / 1e6:.0f}")
print(f"limit: 1% change\t{change:.3f}\t{size / change / 1e6:.0f}")
