"""The JSONL shard files of a run: every input row checked, the wanted rows written, limits kept."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from bisect import bisect_left, bisect_right
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..config import Config
from ..content_template import parse_template, template_columns
from ..errors import BatchToolError, InputError
from ..files.table import LineBreakCells, id_text, is_missing, iter_input_chunks
from ..layout import SHARD_NAME, shard_file_name
from .images import BadImage, data_url, image_source
from .problems import Problems, short
from .repeated_ids import RepeatedHashes
from .request_lines import RequestLines, has_text
from .token_sampling import TOKEN_SAMPLE_EVERY, TOKEN_SAMPLE_HEAD, TokenCosts, TokenTally

WRITE_BUFFER_BYTES = 8 << 20
# The names of the shard files write_shards writes: the only files remove_shards removes.


@dataclass(frozen=True)
class Shard:
    """One JSONL file of requests, as written."""

    index: int  # 1-based
    path: Path
    rows: int
    bytes: int
    sha256: str  # of the file's bytes
    prompt_tokens: int  # estimated
    first_id: str
    last_id: str


@dataclass(frozen=True)
class ShardPlan:
    """The shard files of one submission and what they hold."""

    shards: list[Shard]
    rows: int
    prompt_tokens: int
    token_method: str
    # content_template only: column -> how many written rows had that cell missing (rendered as empty text)
    missing_cells: dict[str, int] = field(default_factory=dict)
    # CSV cells of the sent columns that span lines (legal when quoted; also what an open quote makes).
    line_breaks: LineBreakCells = field(default_factory=LineBreakCells)


@dataclass
class _ChunkLines:
    """The request lines made of a chunk of rows, with what a shard keeps of them, handed to the writer at once
    (a call per row is a measurable part of the build)."""

    lines: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # each line's row id
    texts: list[str] = field(default_factory=list)  # the text each line sends, for the token estimate
    image_rows: list[int] = field(default_factory=list)  # the positions of the lines with an image, ascending
    ends: list[int] = field(default_factory=list)  # per line: the bytes of the lines up to it, itself included


class _ShardFile:
    """One shard being written: buffered, hashed as it is written, with its token tally."""

    def __init__(self, index: int, path: Path, final_path: Path, costs: TokenCosts):
        self.index = index
        self.final_path = final_path
        self.rows = 0
        self.bytes = 0
        self.first_id = self.last_id = ""
        self.images = 0
        self.tokens = TokenTally(costs)
        self._file = open(path, "wb")  # closed by close() or abandon()
        self._sha256 = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0

    def add(self, lines: _ChunkLines, start: int, stop: int) -> None:
        """Add lines[start:stop] of a chunk, which fit the shard's limits."""
        rows = self.rows
        texts = lines.texts
        # The token sample: the shard's rows below TOKEN_SAMPLE_HEAD, then every TOKEN_SAMPLE_EVERY-th row.
        head = range(rows, min(TOKEN_SAMPLE_HEAD, rows + stop - start))
        first_every = max(TOKEN_SAMPLE_HEAD, rows) + (-max(TOKEN_SAMPLE_HEAD, rows)) % TOKEN_SAMPLE_EVERY
        every = range(first_every, rows + stop - start, TOKEN_SAMPLE_EVERY)
        sampled = [texts[start + row - rows] for row in (*head, *every)]
        tokens = self.tokens
        sampled_chars = sum(map(len, sampled))
        tokens.sampled.extend(sampled)
        tokens.sampled_chars += sampled_chars
        tokens.unsampled_chars += sum(map(len, texts[start:stop])) - sampled_chars
        if not rows:
            self.first_id = lines.ids[start]
        self.last_id = lines.ids[stop - 1]
        self.images += bisect_left(lines.image_rows, stop) - bisect_left(lines.image_rows, start)
        self.rows += stop - start
        size = lines.ends[stop - 1] - (lines.ends[start - 1] if start else 0)
        self.bytes += size
        self._buffer.append(b"".join(lines.lines[start:stop]))
        self._buffered += size
        if self._buffered >= WRITE_BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._buffer)
        self._sha256.update(data)
        self._file.write(data)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> Shard:
        self._flush()
        self._file.close()
        return Shard(
            index=self.index,
            path=self.final_path,
            rows=self.rows,
            bytes=self.bytes,
            sha256=self._sha256.hexdigest(),
            prompt_tokens=self.tokens.estimated_tokens(rows=self.rows, images=self.images),
            first_id=self.first_id,
            last_id=self.last_id,
        )

    def abandon(self) -> None:
        self._file.close()


class _ShardWriter:
    """Writes lines into shard-0001.jsonl, ... closing each before it would pass a limit."""

    def __init__(self, folder: Path, final_folder: Path, costs: TokenCosts, *, max_rows: int, max_bytes: int):
        self.folder = folder
        self.final_folder = final_folder
        self.costs = costs
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.shards: list[Shard] = []
        self._current: _ShardFile | None = None

    def write(self, lines: _ChunkLines) -> None:
        """Add a chunk's lines in order, closing each shard before it would pass a limit (every line fits one)."""
        ends = lines.ends = list(accumulate(map(len, lines.lines)))
        start = 0
        while start < len(ends):
            before = ends[start - 1] if start else 0
            shard = self._current
            if shard is None or shard.rows >= self.max_rows or shard.bytes + ends[start] - before > self.max_bytes:
                if shard is not None:
                    self.shards.append(shard.close())
                index = len(self.shards) + 1
                name = shard_file_name(index)
                shard = self._current = _ShardFile(index, self.folder / name, self.final_folder / name, self.costs)
            # As many lines as the shard has room for, by rows and by bytes.
            stop = min(
                len(ends), start + self.max_rows - shard.rows, bisect_right(ends, before + self.max_bytes - shard.bytes)
            )
            shard.add(lines, start, stop)
            start = stop

    def finish(self) -> list[Shard]:
        if self._current is not None:
            self.shards.append(self._current.close())
            self._current = None
        return self.shards

    def abandon(self) -> None:
        if self._current is not None:
            self._current.abandon()
            self._current = None


class _Template:
    """content_template rendered per row; a missing cell renders as empty text and is counted."""

    def __init__(self, template: str):
        self.pieces = parse_template(template)
        self.columns = template_columns(self.pieces)
        self.missing = dict.fromkeys(self.columns, 0)

    def render(self, cells: dict[str, Any]) -> tuple[str, list[str]]:
        """(the text, the columns whose cells were missing). Raises TypeError naming a cell that is not text."""
        parts: list[str] = []
        missing: list[str] = []
        for literal, column in self.pieces:
            parts.append(literal)
            if column is None:
                continue
            value = cells[column]
            if type(value) is not str:
                if value is None or is_missing(value):
                    value = ""
                elif isinstance(value, str | int | float | np.number | np.bool_):  # numbers read as their text
                    value = str(value)
                else:
                    raise TypeError(f"column '{column}' holds {short(value)}, a {type(value).__name__}, not text")
            if value == "":
                missing.append(column)
            parts.append(value)
        return "".join(parts), missing


def _check_row(
    row: int, row_id: str, content: Any, image: Any, *, base_dir: Path, problems: Problems
) -> tuple[str, str | Path | None] | None:
    """The text the row sends ("" for none) and its image source, or None after recording its problems."""
    ok = True
    if not has_text(row_id):
        problems.add("empty_id", f"row {row} has an empty id")
        ok = False
    elif "\n" in row_id or "\r" in row_id:
        problems.add(
            "id_line_break",
            f"row {row}: id {short(row_id)} holds a line break; an id must be one line "
            "(in a CSV, a quote left open runs a cell on into the next lines)",
        )
        ok = False
    if type(content) is not str:
        if isinstance(content, str):
            content = str(content)
        elif is_missing(content):
            content = ""
        else:
            kind = type(content).__name__
            problems.add("not_text", f"row {row} (id {short(row_id)}): content {short(content)} is {kind}, not text")
            return None
    text = content if has_text(content) else ""
    source = None
    if image is not None and image != "":
        try:
            source = image_source(image, base_dir=base_dir)
        except BadImage as exc:
            problems.add("bad_image", f"row {row} (id {short(row_id)}): {exc}")
            return None
    if source is None and not text:
        problems.add("no_content", f"row {row} (id {short(row_id)}) has neither content nor image")
        return None
    return (text, source) if ok else None


def _duplicate_groups(config: Config, repeated: set[int]) -> list[tuple[str, list[int]]]:
    """Ids on more than one row, with their rows: the `repeated` hashes are confirmed by reading the ids again."""
    if not repeated:
        return []
    rows_by_id: dict[str, list[int]] = {}
    row = 0
    for chunk in iter_input_chunks(config.input_file, columns=[config.id_column]):
        for value in chunk[config.id_column]:
            row += 1
            row_id = id_text(value)
            if hash(row_id) in repeated and has_text(row_id):
                rows_by_id.setdefault(row_id, []).append(row)
    return sorted(((i, rows) for i, rows in rows_by_id.items() if len(rows) > 1), key=lambda group: group[1][0])


def named_columns(config: Config) -> dict[str, str]:
    """The columns the config names, each with the key that names it (for a message when one is missing)."""
    column_keys = {config.id_column: "id_column"}
    if config.content_template is None:
        column_keys.setdefault(config.content_column, "content_column")
    else:
        for column in _Template(config.content_template).columns:
            column_keys.setdefault(column, "a placeholder of content_template")
    if config.image_url_column:
        column_keys.setdefault(config.image_url_column, "image_url_column")
    return column_keys


def _check_added_columns(config: Config, names: list[str]) -> None:
    """Refuse input columns that collate-output's results would overwrite, before anything is paid for."""
    from ..answers.added_columns import added_columns, column_clash_message

    clashes = [name for name in added_columns(config) if name in set(names)]
    if clashes:
        raise InputError(column_clash_message(config, clashes))


def _contents(chunk: dict[str, list[Any]], config: Config, template: _Template | None, rows: int) -> list[Any]:
    """Each row's content: its content_column cell, or (content_template) its cells by column, to render."""
    if template is None:
        return chunk[config.content_column]
    columns = template.columns
    if not columns:
        return [{}] * rows
    return [dict(zip(columns, cells, strict=True)) for cells in zip(*(chunk[c] for c in columns), strict=True)]


def _write_rows(
    config: Config,
    writer: _ShardWriter,
    *,
    wanted: set[str] | None,
    seen: RepeatedHashes,
    line_breaks: LineBreakCells | None = None,
) -> tuple[int, Problems, _Template | None]:
    """One pass over the input: check every row, write the wanted ones. Returns (rows written, problems, template)."""
    path = config.input_file
    # Local images are named from the table's folder; a table in object storage has none: the config's.
    base_dir = path.parent if isinstance(path, Path) else config.path.parent
    lines = RequestLines(config)
    head, before, after, image_line = lines.head, lines.before, lines.after, lines.image_line
    inside_string = lines.inside_string
    dumps = orjson.dumps
    max_bytes = writer.max_bytes
    no_missing: list[str] = []
    problems = Problems()
    found: set[str] = set()
    row = written = 0
    template = _Template(config.content_template) if config.content_template is not None else None
    missing_counts = template.missing if template is not None else {}
    column_keys = named_columns(config)
    all_columns: list[str] = []
    chunks = iter_input_chunks(
        path, columns=list(column_keys), column_keys=column_keys, line_breaks=line_breaks, all_columns=all_columns
    )
    for chunk in chunks:
        ids = [value if type(value) is str else id_text(value) for value in chunk[config.id_column]]
        # 64-bit hashes find repeated ids without holding every id string; they are confirmed at the end.
        seen.add(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
        images = chunk[config.image_url_column] if config.image_url_column else repeat(None)
        contents = _contents(chunk, config, template, len(ids))
        made = _ChunkLines()
        add_line, add_id, add_text = made.lines.append, made.ids.append, made.texts.append
        for row_id, content, image in zip(ids, contents, images, strict=False):
            row += 1
            if wanted is not None and row_id in wanted:
                found.add(row_id)
            missing = no_missing
            if template is not None:
                try:
                    content, missing = template.render(content)
                except TypeError as exc:
                    problems.add("not_text", f"row {row} (id {short(row_id)}): {exc}")
                    continue
            if (  # has_text(content) and has_text(row_id), inlined: this runs once per row
                type(content) is str
                and not image
                and content
                and not content.isspace()
                and row_id
                and not row_id.isspace()
                and "\n" not in row_id
                and "\r" not in row_id
            ):
                text, source = content, None  # the common row, plain text: nothing more to check
            else:
                checked = _check_row(row, row_id, content, image, base_dir=base_dir, problems=problems)
                if checked is None:
                    continue
                text, source = checked
            if wanted is not None and row_id not in wanted:
                continue
            try:
                if source is None:  # RequestLines.text_line, inlined: this runs once per row
                    encoded = dumps(text)[1:-1] if inside_string else dumps(text)
                    line = b"".join((head, dumps(row_id), before, encoded, after))
                else:
                    line = image_line(row_id, text, source if isinstance(source, str) else data_url(source, image))
            except BadImage as exc:
                problems.add("bad_image", f"row {row} (id {short(row_id)}): {exc}")
                continue
            except orjson.JSONEncodeError:  # e.g. lone surrogates from a pickle: not encodable as UTF-8
                problem = f"row {row} (id {short(row_id)}): its id or content is not valid Unicode text"
                problems.add("not_text", problem)
                continue
            if len(line) > max_bytes:
                problems.add(
                    "too_large",
                    f"row {row} (id {short(row_id)}): its request is {len(line):,} bytes, more than a "
                    f"batch file may hold ({writer.max_bytes:,}); use a smaller image or shorter content",
                )
                continue
            if problems.found:
                continue  # nothing will be kept: go on checking, stop writing
            if source is not None:
                made.image_rows.append(len(made.lines))
            add_line(line)
            add_id(row_id)
            add_text(text)
            for column in missing:
                missing_counts[column] += 1
        if made.lines and not problems.found:
            writer.write(made)
            written += len(made.lines)
    if row == 0:
        raise InputError(f"{path}: the input has no rows; add the rows to send")
    _check_added_columns(config, all_columns)
    problems.add_duplicates(_duplicate_groups(config, seen.repeated()))
    if wanted is not None and len(found) < len(wanted):
        problems.add_missing_ids(wanted - found)
    return written, problems, template


def remove_shards(out_dir: Path, *, keep: Path | None = None) -> bool:
    """Remove the shard files write_shards wrote into `out_dir`, then the folder if that empties it.

    Anything else in it (a user's file) stays, with the folder, and so does `keep` (the input table,
    which a shard's name alone cannot tell apart); returns whether the folder is gone.
    """
    for path in out_dir.iterdir():
        if SHARD_NAME.fullmatch(path.name) and path.is_file() and path.resolve() != keep:
            path.unlink(missing_ok=True)
    try:
        out_dir.rmdir()
        return True
    except OSError:
        return False


def write_shards(
    config: Config,
    *,
    out_dir: Path,
    only_ids: Collection[str] | None = None,
    max_file_bytes: int | None = None,
) -> ShardPlan:
    """Check every input row and write the request lines into out_dir/shard-0001.jsonl, ...

    One streaming pass over the input. A shard closes before it would pass config.batch_size rows,
    config.max_requests_per_batch requests or `max_file_bytes` bytes (config.max_batch_bytes by
    default). With `only_ids`, only rows with those ids are written (in input order), though every
    row is still checked. Every problem found is raised at once as one BatchToolError, and then nothing
    is left on disk: the shards are written into a temporary folder next to `out_dir` (which must not
    exist yet) and renamed at the end.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise BatchToolError(f"{out_dir}: already exists; shard files are written into a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    costs = TokenCosts(config)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    writer = _ShardWriter(
        scratch,
        out_dir,
        costs,
        max_rows=min(config.batch_size, config.max_requests_per_batch),
        max_bytes=max_file_bytes if max_file_bytes is not None else config.max_batch_bytes,
    )
    wanted = set(only_ids) if only_ids is not None else None
    seen = RepeatedHashes(out_dir.parent)
    try:
        line_breaks = LineBreakCells()
        written, problems, template = _write_rows(config, writer, wanted=wanted, seen=seen, line_breaks=line_breaks)
        if problems.found:
            raise InputError(problems.message(config.input_file))
        shards = writer.finish()
        os.rename(scratch, out_dir)
    except BaseException:
        writer.abandon()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        seen.close()
    method = costs.estimator.method
    if costs.extrapolated:
        method += "; content beyond a sample of each shard extrapolated by length"
    return ShardPlan(
        shards=shards,
        rows=written,
        prompt_tokens=sum(s.prompt_tokens for s in shards),
        token_method=method,
        missing_cells={c: n for c, n in template.missing.items() if n} if template is not None else {},
        line_breaks=line_breaks,
    )
