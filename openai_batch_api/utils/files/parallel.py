"""Running one piece of work on many items in a bounded pool of threads."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_in_parallel(work: Callable[[T], None], items: Iterable[T], *, workers: int) -> None:
    """Run `work` on every item in a bounded pool; every item gets its turn, then the first failure is raised."""
    items = list(items)
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))))
    try:
        futures = [pool.submit(work, item) for item in items]
        wait(futures)
    except BaseException:
        # Ctrl-C: no item starts any more; those under way end at their next API call (the session's stop).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for future in futures:
        future.result()
