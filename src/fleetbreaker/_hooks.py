"""Running a user hook so that whatever it returns is served: an awaitable is never dropped.

A hook is called inline, in the caller's thread (or task). When it returns an awaitable (an
``async def`` hook), that awaitable is run to completion:

* on the asyncio path (steps driven by ``adrive``) it is collected while the steps run and
  awaited by ``adrive`` in the caller's task, after the steps and before the call returns;
* on the sync path with no event loop running in this thread, it runs inline with
  ``asyncio.run``;
* on the sync path inside a running event loop (a sync call made from a coroutine), it is
  scheduled as a task on that loop, and a strong reference is kept until it is done.

Exceptions from the hook, or from awaiting what it returned, are logged and never reach the
user's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["Collected", "HookRunner", "collecting"]

logger = logging.getLogger("fleetbreaker")


class HookRunner:
    """Calls one hook of one circuit and sees what it returns through."""

    __slots__ = ("_label", "_tasks")

    def __init__(self, label: str) -> None:
        self._label = label  # e.g. "circuit 'payments': on_transition hook"
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, hook: Callable[[Any], object], argument: object) -> None:
        """Call ``hook(argument)``; log (never raise) what goes wrong."""
        try:
            result = hook(argument)
        except Exception:
            logger.exception("%s raised; ignored", self._label)
            return
        if inspect.isawaitable(result):
            self._finish(result)

    def _finish(self, awaitable: Awaitable[object]) -> None:
        collected = _collected.get()
        if collected is not None:
            collected.add(self, awaitable)  # adrive awaits it in the caller's task
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            running = False
        else:
            running = True
        try:
            if running:
                self.schedule(awaitable)
            else:
                asyncio.run(self.completed(awaitable))  # no loop in this thread: run it inline
        except Exception:
            logger.exception("%s: could not run what it returned; ignored", self._label)

    def schedule(self, awaitable: Awaitable[object]) -> None:
        """Run ``awaitable`` as a task of the running loop, referenced until it is done."""
        task = asyncio.get_running_loop().create_task(self.completed(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def completed(self, awaitable: Awaitable[object]) -> None:
        """Await ``awaitable``; log an exception instead of raising it."""
        try:
            await awaitable
        except Exception:
            logger.exception("%s raised; ignored", self._label)


class Collected:
    """The awaitables hooks returned while one ``adrive`` ran its steps."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[tuple[HookRunner, Awaitable[object]]] = []

    def add(self, runner: HookRunner, awaitable: Awaitable[object]) -> None:
        self._items.append((runner, awaitable))

    async def run(self) -> None:
        """Await each collected awaitable in turn; one cancelled midway hands the rest to
        the loop as tasks, so none is dropped."""
        items, self._items = self._items, []
        for index, (runner, awaitable) in enumerate(items):
            try:
                await runner.completed(awaitable)
            except BaseException:
                for later_runner, later in items[index + 1 :]:
                    later_runner.schedule(later)
                raise

    def schedule(self) -> None:
        """Hand every collected awaitable to the running loop as a task."""
        items, self._items = self._items, []
        for runner, awaitable in items:
            runner.schedule(awaitable)


_collected: ContextVar[Collected | None] = ContextVar("fleetbreaker_hook_awaitables", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[Collected]:
    """Collect, in this context, the awaitables hooks return (for ``adrive`` to await).

    If the block raises (the caller was cancelled, say), what was collected is scheduled as
    tasks on the running loop instead of being awaited.
    """
    collected = Collected()
    token = _collected.set(collected)
    try:
        yield collected
    except BaseException:
        collected.schedule()
        raise
    finally:
        _collected.reset(token)
