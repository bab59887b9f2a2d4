"""Finding ids that occur on more than one row of a table of any length, in bounded memory.

Each id's 64-bit hash is kept, not the id. A table's hashes are split by their top bits into
BUCKETS buckets; once more than SPILL_BYTES of them are held, they go into one file per bucket in a
folder of our own beside the shard files, and each bucket is then sorted on its own. So a table of
a few million rows never touches the disk, and a billion rows hold 1/256 of their hashes (31 MB) at
once, for 8 bytes a row of disk while the table is read. A repeated hash is a repeated id or, rarely,
two ids with one hash: the caller confirms them by reading the ids again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

BUCKETS = 256
BUCKET_SHIFT = np.uint64(64 - 8)  # the top 8 bits of a hash name its bucket
SPILL_BYTES = 8 << 20  # a million rows' hashes


class RepeatedHashes:
    """Collects the hashes of a table's ids, a chunk at a time; `repeated()` gives those seen more than once."""

    def __init__(self, spill_dir: Path) -> None:
        self.spill_dir = spill_dir  # where the folder of bucket files is made, when it is needed
        self._held: list[np.ndarray] = []
        self._held_bytes = 0
        self._folder: Path | None = None

    def add(self, hashes: np.ndarray) -> None:
        """Add the int64 hashes of a chunk of rows."""
        self._held.append(hashes)
        self._held_bytes += hashes.nbytes
        if self._held_bytes >= SPILL_BYTES:
            self._spill()

    def _bucket_path(self, bucket: int) -> Path:
        assert self._folder is not None
        return self._folder / f"ids-{bucket:03d}.bin"

    def _spill(self) -> None:
        """Append the hashes held to their buckets' files."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix=".ids.", suffix=".partial", dir=self.spill_dir))
        hashes = np.concatenate(self._held)
        self._held, self._held_bytes = [], 0
        buckets = hashes.view(np.uint64) >> BUCKET_SHIFT
        order = np.argsort(buckets, kind="stable")
        ends = np.cumsum(np.bincount(buckets, minlength=BUCKETS))
        hashes = hashes[order]
        start = 0
        for bucket, end in enumerate(ends.tolist()):
            if end > start:
                with open(self._bucket_path(bucket), "ab") as fh:
                    fh.write(hashes[start:end].tobytes())
            start = end

    def repeated(self) -> set[int]:
        """The hashes added more than once."""
        if self._folder is None:  # all held: one sort
            return _repeats(np.concatenate(self._held) if self._held else np.empty(0, dtype=np.int64))
        if self._held:
            self._spill()
        found: set[int] = set()
        for bucket in range(BUCKETS):
            path = self._bucket_path(bucket)
            if path.exists():
                found |= _repeats(np.fromfile(path, dtype=np.int64))
        return found

    def close(self) -> None:
        """Remove the bucket files and their folder (only those: the folder is ours alone)."""
        self._held = []
        if self._folder is None:
            return
        for bucket in range(BUCKETS):
            self._bucket_path(bucket).unlink(missing_ok=True)
        self._folder.rmdir()
        self._folder = None


def _repeats(hashes: np.ndarray) -> set[int]:
    hashes.sort()
    return set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
