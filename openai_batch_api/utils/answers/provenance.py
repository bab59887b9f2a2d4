"""Where each row's answer came from: the batch (or the pilot), the model the API reports, the request's hash.

Read from the result files again, in the order collate reads them, so the line that answers a row
here is the one collate took: the last one not left out as stale.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from ..providers.result_lines import line_provenance
from ..requests.request_hashes import shard_hashes
from ..state.row_requests import PILOT
from . import result_columns as columns


def provenance_columns(
    result_files: list[Path],
    sources: Mapping[Path, tuple[str, str]],
    data_path: Path,
    *,
    stale: Mapping[str, Collection[str]],
    shard_paths: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str | None]]:
    """Column -> custom_id -> value, for api_batch_id, api_model and api_request_hash."""
    answered_by: dict[str, tuple[str, str, str | None, str | None]] = {}  # id -> (source, batch, model, hash)
    for path in result_files:
        source, batch_id = sources.get(path, (None, None))
        if source is None:
            continue
        for custom_id, model, digest in line_provenance(path, skip=stale.get(source, ())):
            answered_by[custom_id] = (source, batch_id, model, digest)
    hashes: dict[str, dict[str, str]] = {}
    batch_ids: dict[str, str | None] = {}
    models: dict[str, str | None] = {}
    request_hashes: dict[str, str | None] = {}
    for custom_id, (source, batch_id, model, digest) in answered_by.items():
        if source != PILOT and shard_paths is not None and source in shard_paths:
            if source not in hashes:
                hashes[source] = shard_hashes(data_path / shard_paths[source])
            digest = hashes[source].get(custom_id)
        batch_ids[custom_id] = batch_id
        models[custom_id] = model
        request_hashes[custom_id] = digest
    return {columns.BATCH_ID: batch_ids, columns.MODEL: models, columns.REQUEST_HASH: request_hashes}
