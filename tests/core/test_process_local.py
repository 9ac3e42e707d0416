"""core.process_local: one object per process, a new one in a forked child."""

import os

from core.process_local import ProcessLocal


def test_one_object_per_process_until_taken():
    made = []
    local = ProcessLocal(lambda: made.append(object()) or made[-1])
    assert local.get() is local.get() is made[0]
    assert local.take() is made[0]
    assert local.take() is None
    assert local.get() is made[1]


def test_a_forked_child_makes_its_own():
    local = ProcessLocal(os.getpid)
    assert local.get() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its object is its own, and the parent's is not handed over
        os.write(write, f"{local.take()} {local.get()} {os.getpid()}".encode())
        os._exit(0)
    os.waitpid(child, 0)
    taken, got, pid = os.read(read, 100).decode().split()
    assert (taken, got) == ("None", pid)
    assert local.get() == os.getpid()
