"""Background loops stop between two units of work, never inside one."""

from __future__ import annotations

import asyncio

from breakerpanel.incident_bot.tasks import cancel_when_idle


async def test_a_loop_is_cancelled_only_between_units_of_work() -> None:
    busy = asyncio.Lock()
    finished: list[int] = []
    started = asyncio.Event()

    async def loop() -> None:
        unit = 0
        while True:
            async with busy:
                started.set()
                await asyncio.sleep(0.05)  # a transaction: must not be cut in half
                finished.append(unit)
            unit += 1

    task = asyncio.create_task(loop())
    await started.wait()
    await cancel_when_idle(task, busy, grace=5)
    assert task.cancelled()
    assert finished == [0]  # the unit in progress finished; no other began
    assert not busy.locked()


async def test_a_unit_that_outlasts_the_grace_is_cancelled_anyway() -> None:
    busy = asyncio.Lock()
    started = asyncio.Event()

    async def stuck() -> None:
        async with busy:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await started.wait()
    await cancel_when_idle(task, busy, grace=0.05)
    assert task.cancelled()
