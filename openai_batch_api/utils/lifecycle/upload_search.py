"""A lost run found by its uploads, on a server that keeps no batch metadata.

There the batches carry none of the tags the lost-run search reads (adoption.py), but the uploads
keep their names, and each name carries the run, the shard and a tag of the input and data folder
(Ledger.upload_name). A batch made from one of those uploads belongs to that run: a new run of the
same input and data_path would pay for its rows again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config import Config
from ..errors import LostRunError
from ..layout import STORE_NAME
from ..providers.base import Provider
from ..state.batch_state import BatchState

UPLOAD_NAME = re.compile(r"(?P<run>.+)-(?P<shard>a\d+-s\d+)-(?P<tag>[0-9a-f]{16})\.jsonl")
LISTED = 2


@dataclass(frozen=True)
class RunByUploads:
    """A run of this input and data_path whose uploads batches were made from."""

    run_id: str
    uploads: list[str]  # their names, newest first
    batches: list[BatchState]


def find_run_by_uploads(api: Provider, *, tag: str, untagged: dict[str, list[BatchState]]) -> RunByUploads | None:
    """The newest run whose uploads carry `tag` and have batches among `untagged` (input file id -> batches).

    Raises ListingMissing when the server does not list files.
    """
    uploads: dict[str, list[tuple[str, str]]] = {}
    for file_id, name in api.list_uploads():  # type: ignore[attr-defined]  # providers that upload list them
        match = UPLOAD_NAME.fullmatch(name or "")
        if match and match["tag"] == tag:
            uploads.setdefault(match["run"], []).append((file_id, name))
    for run_id, files in uploads.items():  # newest first, as the listing is
        batches = [batch for file_id, _ in files for batch in untagged.get(file_id, [])]
        if batches:
            newest = sorted(batches, key=lambda b: b.created_at, reverse=True)
            return RunByUploads(run_id, [name for _, name in files], newest)
    return None


def refusal(config: Config, found: RunByUploads, *, adopt: bool) -> LostRunError:
    count = len(found.batches)
    ids = ", ".join(b.id for b in found.batches[:LISTED]) + (", ..." if count > LISTED else "")
    names = ", ".join(found.uploads[:LISTED]) + (", ..." if len(found.uploads) > LISTED else "")
    what = (
        f"the API holds {count} {'batch' if count == 1 else 'batches'} ({ids}) made from the uploads of run "
        f"{found.run_id} of this input and data_path"
    )
    if adopt:
        head = f"{config.data_path}: {what}, but the server keeps no batch metadata, which --adopt needs to put "
        head += "each batch back on its shard"
    else:
        head = (
            f"{config.data_path}: no run state here ({STORE_NAME}), but {what}; the server keeps no batch metadata, "
            "so that run cannot be taken up again (--adopt needs it), and a new run would pay for every row again"
        )
    return LostRunError(
        f"{head}: cancel those batches on the server (or fetch their results there), then delete the run's uploads "
        f"({names}) to start anew, or set another data_path"
    )
