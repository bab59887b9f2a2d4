"""Word when a run ends: the config's `notify` command and `notify_url` webhook, once per run.

A run has ended when every batch is final and nothing is queued. Whoever is waiting then (status-jobs
--wait, batch(), Run.wait()) tells the user once: the end is recorded in the run store before the
word goes out, so a later wait on the ended run says nothing again (at most once: a crash between the
two loses the word, never repeats it). Failing to tell is one logged line, never a failed run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Config
from ..state.ledger import Ledger
from ..state.notified import mark_notified
from ..state.run_store import RunStore
from .submission import RunProgress

log = logging.getLogger("openai_batch_api")

ENV_PREFIX = "OPENAI_BATCH_API_"
# A command that has not finished by then is left behind: waiting for it would hang the run.
COMMAND_TIMEOUT = 60.0
URL_TIMEOUT = 10.0
URL_TRIES = 3
URL_BACKOFF = 0.5  # seconds before the second try, doubled before each next one


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: what the notify command and URL are told."""

    run_id: str
    status: str  # completed (no row failed), failed (some did) or cancelled
    rows_done: int
    rows_failed: int
    config: str  # the config's path

    def fields(self) -> dict[str, str | int]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "rows_done": self.rows_done,
            "rows_failed": self.rows_failed,
            "config": self.config,
        }

    def text(self) -> str:
        return (
            f"openai_batch_api: run {self.run_id} {self.status}: {self.rows_done:,} rows done, "
            f"{self.rows_failed:,} failed ({self.config})"
        )


def run_end(ledger: Ledger, progress: RunProgress, config: Config) -> RunEnd:
    if ledger.cancelled_at:
        status = "cancelled"
    else:
        status = "failed" if progress.rows_failed else "completed"
    return RunEnd(ledger.run_id, status, progress.rows_done, progress.rows_failed, str(config.path))


def notify_run_end(store: RunStore, config: Config, progress: RunProgress) -> RunEnd | None:
    """Tell the notify command and URL that the run ended, unless this end was told already.

    Returns what was told, or None when nothing is configured or it was told before.
    """
    if not (config.notify or config.notify_url) or not progress.finished:
        return None
    end = run_end(store.ledger, progress, config)
    if not mark_notified(store, attempt=store.ledger.attempts, status=end.status, now=int(time.time())):
        return None
    if config.notify:
        run_command(config.notify, end)
    if config.notify_url:
        post_url(config.notify_url, end)
    return end


def run_command(command: str, end: RunEnd) -> bool:
    """Run the notify command in a shell with the run's end in its environment; log one line if it fails."""
    env = {**os.environ, **{ENV_PREFIX + key.upper(): str(value) for key, value in end.fields().items()}}
    try:
        done = subprocess.run(
            command, shell=True, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        log.warning("notify: the command did not finish within %.0f s; left behind", COMMAND_TIMEOUT)
        return False
    except OSError as exc:
        log.warning("notify: the command could not start: %s", exc)
        return False
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        log.warning(
            "notify: the command exited with status %d%s", done.returncode, f": {said[-1]}" if said else ""
        )
        return False
    return True


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is answered as an error: the message is not sent on to another place."""

    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


def post_url(url: str, end: RunEnd) -> bool:
    """POST the run's end as JSON (`text` for Slack and Teams, and the fields); a few tries, then one logged line."""
    body = json.dumps({"text": end.text(), **end.fields()}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(NoRedirects)
    # The URL may hold a secret (a Slack webhook's path is its key): messages name its host only.
    host = urlsplit(url).hostname or url
    problem = ""
    for attempt in range(URL_TRIES):
        if attempt:
            time.sleep(URL_BACKOFF * 2 ** (attempt - 1))
        try:
            with opener.open(request, timeout=URL_TIMEOUT) as response:
                response.read()
            return True
        except urllib.error.HTTPError as exc:
            problem = f"answered {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # refused: the same request would be refused again
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason)
    tries = attempt + 1
    log.warning("notify_url: POST to %s failed after %d %s: %s", host, tries, "try" if tries == 1 else "tries", problem)
    return False
