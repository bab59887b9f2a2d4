"""Retrying a provider's calls: one policy, a backoff that honours Retry-After, and no second payment.

A provider's SDK retries are switched off: a retried creation after a dropped connection can make a
second batch. Here every transient failure is retried with backoff, and after a failure that may have
happened on the server side (a dropped connection, a timeout, a 5xx) a creation first looks for what
it may already have made (`recover`). A server that refuses the connection, or a name that does not
resolve, gets only a few quick attempts: waiting longer rarely helps, and the user is better told at
once. Every retry is logged (the commands show it on stderr). Which failures are which is the
provider's to say (`Failure`); this module knows no SDK.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("openai_batch_api")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    # Attempts when nothing listens at the address or its name does not resolve.
    unreachable_attempts: int = 3


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Failure:
    """What a provider says of a failed call: whether to retry it, and whether it may have happened."""

    transient: bool
    unreachable: bool  # refused, or the name did not resolve: the request never reached a server
    may_have_happened: bool
    reason: str  # a few words for the retry line
    where: str = ""  # " (POST http://...)"
    retry_after: str | None = None  # the Retry-After header, when the server sent one


def backoff_delay(retry_after: str | None, attempt: int, policy: RetryPolicy) -> float:
    """Seconds before the next attempt: the server's Retry-After (seconds or a date), else jittered backoff."""
    if retry_after:
        try:
            return min(float(retry_after), policy.max_retry_after)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                parsed = None  # neither seconds nor a date: the usual backoff
            if parsed is not None:
                return min(max(parsed.timestamp() - time.time(), 0.0), policy.max_retry_after)
    backoff = min(policy.base_delay * 2**attempt, policy.max_delay)
    return backoff * (0.5 + random.random() / 2)  # jitter, so parallel calls do not retry in step


class CallsStopped(Exception):
    """A call asked of a session after its step was interrupted (`Retrier.stop`)."""


class Retrier:
    """Runs a session's calls under one policy, counting them, until the session is stopped."""

    def __init__(self, policy: RetryPolicy, *, classify: Callable[[BaseException], Failure | None]) -> None:
        self.policy = policy
        self.classify = classify  # None: not a failure of the call (a bug, an interrupt): raised as it is
        self.calls = 0  # calls made, retries included: what `--debug` reports of a poll
        self._count_lock = threading.Lock()
        # Set when the step is over early (Ctrl-C): calls still running in worker threads make no
        # new attempt and log nothing; the intents on disk let the next command settle them.
        self.stopped = threading.Event()

    def stop(self) -> None:
        """Make no more calls: a call under way fails as it is, without retries or retry lines."""
        self.stopped.set()

    def call(self, fn: Callable[[], T], *, recover: Callable[[], T | None] | None = None) -> T:
        """Run `fn`, retrying transient failures; `recover` finds the result of a lost call."""
        policy = self.policy
        for attempt in range(policy.attempts):
            if self.stopped.is_set():
                raise CallsStopped("the step was interrupted: no more API calls")
            with self._count_lock:
                self.calls += 1
            try:
                return fn()
            except Exception as exc:
                failure = self.classify(exc)
                if failure is None:
                    raise
                attempts = policy.unreachable_attempts if failure.unreachable else policy.attempts
                if not failure.transient or attempt >= attempts - 1 or self.stopped.is_set():
                    raise
                delay = backoff_delay(failure.retry_after, attempt, policy)
                log.warning(
                    "retrying in %.1fs (retry %d of %d): %s%s", delay, attempt + 1, attempts - 1, failure.reason,
                    failure.where,
                )
                self.stopped.wait(delay)  # a sleep that an interrupt cuts short
                if recover is not None and failure.may_have_happened:
                    found = recover()
                    if found is not None:
                        return found
        raise AssertionError("unreachable")
