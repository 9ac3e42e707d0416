"""core.loop_local: one object per running event loop."""

import asyncio
import gc
import weakref

from core.loop_local import LoopLocal


def test_each_loop_gets_its_own_object_made_once_with_that_loop():
    made = []

    def factory(loop):
        made.append(loop)
        return object()

    local = LoopLocal(factory)

    async def twice():
        return local.get(), local.get(), asyncio.get_running_loop()

    first, again, first_loop = asyncio.run(twice())
    second, _, second_loop = asyncio.run(twice())
    assert first is again
    assert second is not first
    assert made == [first_loop, second_loop]


def test_a_closed_loops_object_is_let_go_when_the_next_loop_makes_its_own():
    """Each object holds its loop (a hub schedules on it): neither may outlive the loop."""

    class Holder:
        def __init__(self, loop):
            self.loop = loop

    local = LoopLocal(Holder)

    async def made():
        return weakref.ref(local.get())

    first = asyncio.run(made())
    gc.collect()
    assert first() is not None  # kept until another loop comes
    second = asyncio.run(made())
    gc.collect()
    assert first() is None
    assert second() is not None
