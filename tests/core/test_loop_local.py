"""core.loop_local: one object per running event loop."""

import asyncio

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
