"""The request lines of a run, and the JSONL shard files that hold them."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .config import Config
from .errors import BatchToolError
from .table import LineBreakCells, id_text, is_missing, iter_input_chunks
from .tokens import get_estimator

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 200 * 1000 * 1000  # the API takes files up to 200 MB; stay under it
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_DATA_URL = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")
# scheme, optional user@, a host name or [IPv6], optional port, then a path/query/fragment without spaces
_HTTP_URL = re.compile(r"https?://(?:[^\s/?#@]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)(?::\d*)?(?:[/?#]\S*)?", re.I)
WRITE_BUFFER_BYTES = 8 << 20
EXAMPLES_PER_KIND = 3
# Counting every row with tiktoken runs at ~9 MB/s, slower than building the lines, so each shard's
# content is counted exactly on a deterministic sample (its first rows, then every k-th) and the rest
# is extrapolated from the sample's tokens per character. Prompt, message and image tokens are the same
# for every row and are counted exactly.
TOKEN_SAMPLE_HEAD = 200
TOKEN_SAMPLE_EVERY = 100


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
    # CSV cells of the sent columns that span lines (legal when quoted; also what an open quote makes).
    line_breaks: LineBreakCells = field(default_factory=LineBreakCells)


class _BadImage(ValueError):
    """Why an image cell cannot be sent."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_text(content: str) -> bool:
    return content != "" and not content.isspace()


def _image_source(value: Any, *, base_dir: Path) -> str | Path | None:
    """What an image cell points at: None when empty, a URL sent as it is, or a local image file."""
    if value is None or is_missing(value):
        return None
    not_an_image = f"image {_short(value)} is not an http(s) URL, data URL or existing file"
    if not isinstance(value, str):
        raise _BadImage(not_an_image)
    text = value.strip()
    if not text:
        return None
    scheme = text[:8].lower()
    if scheme.startswith(("http://", "https://")):
        if not _HTTP_URL.fullmatch(text):
            raise _BadImage(f"image {_short(value)} is not a well-formed URL")
        return text
    if scheme.startswith("data:"):
        if not _DATA_URL.fullmatch(text):
            raise _BadImage(f"image {_short(value)} is not a base64 data URL of a png, jpeg, gif or webp image")
        return text
    path = base_dir / Path(text).expanduser()  # an absolute path replaces base_dir
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise _BadImage(not_an_image)
    if path.suffix.lower() not in IMAGE_TYPES:
        raise _BadImage(f"image {_short(value)} is not a png, jpeg, gif or webp file")
    return path


def _data_url(path: Path, value: Any) -> str:
    """A local image as the base64 data URL the API accepts in place of a link."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _BadImage(f"image {_short(value)} cannot be read ({exc.strerror})") from None
    return f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{base64.b64encode(data).decode('ascii')}"


def _user_content(content: str, image_url: str | None, image_detail: str) -> str | list[dict[str, Any]]:
    if image_url is None:
        return content
    image = {"type": "image_url", "image_url": {"url": image_url, "detail": image_detail}}
    return [{"type": "text", "text": content}, image] if _has_text(content) else [image]


def build_request_body(
    *,
    prompt: str,
    content: str,
    image_url: str | None,
    image_detail: str,
    model_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The chat completion body of one row: model_params, then the system prompt and the user message.

    With an image the user message is a list of parts (the text part left out when content is empty).
    """
    return {
        **model_params,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": _user_content(content, image_url, image_detail)},
        ],
    }


def _line_parts(config: Config) -> tuple[bytes, bytes, bytes]:
    """The constant bytes of every line around its two varying values: the id and the user content.

    Serialized once, so each row only serializes its own id and content; the line equals
    {"custom_id": id, "method": "POST", "url": ENDPOINT, "body": build_request_body(...)}.
    """
    try:
        params = orjson.dumps(dict(config.model_params))
    except TypeError as exc:
        raise BatchToolError(
            f"{config.path}: 'model_params' cannot be sent as JSON ({exc}); use text, numbers, lists and mappings"
        ) from None
    body_start = (params[:-1] + b"," if config.model_params else b"{") + (
        b'"messages":[{"role":"system","content":' + orjson.dumps(config.prompt) + b'},{"role":"user","content":'
    )
    middle = b',"method":"POST","url":' + orjson.dumps(ENDPOINT) + b',"body":' + body_start
    return b'{"custom_id":', middle, b"}]}}\n"


class _TokenCosts:
    """Prompt tokens of a row: a fixed part (prompt, message overhead, image) plus its text's tokens."""

    def __init__(self, config: Config):
        self.estimator = get_estimator(config.model)
        bodies = [
            build_request_body(
                prompt=config.prompt,
                content="",
                image_url=url,
                image_detail=config.image_detail,
                model_params=config.model_params,
            )
            for url in (None, "https://example.com/image.png")
        ]
        self.fixed = self.estimator.body_tokens(bodies[0], endpoint=ENDPOINT)
        self.image = self.estimator.body_tokens(bodies[1], endpoint=ENDPOINT) - self.fixed
        self.extrapolated = False


class _ShardFile:
    """One shard being written: buffered, hashed as it is written, with its token tally."""

    def __init__(self, index: int, path: Path, final_path: Path, costs: _TokenCosts):
        self.index = index
        self.final_path = final_path
        self.rows = 0
        self.bytes = 0
        self.first_id = self.last_id = ""
        self.images = 0
        self.sampled_chars = 0
        self.sampled_tokens = 0
        self.unsampled_chars = 0
        self._costs = costs
        self._count = costs.estimator.count
        self._file = open(path, "wb")  # closed by close() or abandon()
        self._sha256 = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._buffered = 0

    def write(self, line: bytes, row_id: str, *, text: str, has_image: bool) -> None:
        """Add one request line; `text` is the text it sends, for the token estimate."""
        if self.rows < TOKEN_SAMPLE_HEAD or self.rows % TOKEN_SAMPLE_EVERY == 0:
            self.sampled_tokens += self._count(text)
            self.sampled_chars += len(text)
        else:
            self.unsampled_chars += len(text)
        if not self.rows:
            self.first_id = row_id
        self.last_id = row_id
        self.images += has_image
        self.rows += 1
        self.bytes += len(line)
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= WRITE_BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._buffer)
        self._sha256.update(data)
        self._file.write(data)
        self._buffer.clear()
        self._buffered = 0

    def estimated_tokens(self) -> int:
        costs = self._costs
        exact = self.rows * costs.fixed + self.images * costs.image + self.sampled_tokens
        if not self.unsampled_chars:
            return exact
        costs.extrapolated = True
        per_char = self.sampled_tokens / self.sampled_chars if self.sampled_chars else 0.25
        return exact + round(self.unsampled_chars * per_char)

    def close(self) -> Shard:
        self._flush()
        self._file.close()
        return Shard(
            index=self.index,
            path=self.final_path,
            rows=self.rows,
            bytes=self.bytes,
            sha256=self._sha256.hexdigest(),
            prompt_tokens=self.estimated_tokens(),
            first_id=self.first_id,
            last_id=self.last_id,
        )

    def abandon(self) -> None:
        self._file.close()


class _ShardWriter:
    """Writes lines into shard-0001.jsonl, ... closing each before it would pass a limit."""

    def __init__(self, folder: Path, final_folder: Path, costs: _TokenCosts, *, max_rows: int, max_bytes: int):
        self.folder = folder
        self.final_folder = final_folder
        self.costs = costs
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.shards: list[Shard] = []
        self._current: _ShardFile | None = None

    def shard_for(self, line_bytes: int) -> _ShardFile:
        """The shard the next line of `line_bytes` goes into, opening a new one when it would not fit."""
        shard = self._current
        if shard is None or shard.rows >= self.max_rows or shard.bytes + line_bytes > self.max_bytes:
            if shard is not None:
                self.shards.append(shard.close())
            index = len(self.shards) + 1
            name = f"shard-{index:04d}.jsonl"
            shard = self._current = _ShardFile(index, self.folder / name, self.final_folder / name, self.costs)
        return shard

    def finish(self) -> list[Shard]:
        if self._current is not None:
            self.shards.append(self._current.close())
            self._current = None
        return self.shards

    def abandon(self) -> None:
        if self._current is not None:
            self._current.abandon()
            self._current = None


class _Problems:
    """What is wrong with the input: a count per kind of row problem and the first few rows of each."""

    # kind -> how the rows beyond the listed examples are summed up: "3 more rows <...>"
    MORE = {
        "empty_id": "with an empty id",
        "id_line_break": "whose id holds a line break",
        "not_text": "whose content is not text",
        "no_content": "with neither content nor image",
        "bad_image": "with an image that cannot be sent",
        "too_large": "too large for a batch file",
    }

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.MORE, 0)
        self.examples: dict[str, list[str]] = {kind: [] for kind in self.MORE}
        self.whole_input: list[str] = []  # problems of the input as a whole, listed first
        self.found = 0  # how many problems so far; tested on every row, so a plain int

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        self.found += 1
        if len(self.examples[kind]) < EXAMPLES_PER_KIND:
            self.examples[kind].append(text)

    def add_duplicates(self, groups: list[tuple[str, list[int]]]) -> None:
        if not groups:
            return
        listed = [f"{_rows_text(rows)}: id {_short(row_id)}" for row_id, rows in groups[:EXAMPLES_PER_KIND]]
        if len(groups) > EXAMPLES_PER_KIND:
            listed.append(_more(len(groups) - EXAMPLES_PER_KIND, "repeated id"))
        rows = sum(len(group_rows) for _, group_rows in groups)
        # Counted per repeated id, as `found` counts them: "2 problems: 2 ids repeated in 4 rows".
        ids = f"{len(groups)} id{'' if len(groups) == 1 else 's'} repeated"
        self.whole_input.append(f"{ids} in {rows} rows ({'; '.join(listed)})")
        self.found += len(groups)

    def add_missing_ids(self, missing: set[str]) -> None:
        listed = ", ".join(_short(row_id) for row_id in sorted(missing)[:EXAMPLES_PER_KIND])
        more = f" and {len(missing) - EXAMPLES_PER_KIND} more" if len(missing) > EXAMPLES_PER_KIND else ""
        self.whole_input.append(
            f"{len(missing)} of the ids to submit are not in the input ({listed}{more}); "
            "was the input file changed since the run began?"
        )
        self.found += 1

    def message(self, path: Path) -> str:
        items = list(self.whole_input)
        for kind, examples in self.examples.items():
            items.extend(examples)
            if self.counts[kind] > len(examples):
                items.append(f"{_more(self.counts[kind] - len(examples), 'row')} {self.MORE[kind]}")
        if self.found == 1:
            return f"{path}: {items[0]}"
        return f"{path}: {self.found} problems: {'; '.join(items)}"


def _more(count: int, noun: str) -> str:
    return f"{count} more {noun}{'' if count == 1 else 's'}"


def _rows_text(rows: list[int]) -> str:
    """'rows 4 and 9', 'rows 4, 9 and 12', 'rows 1, 2, 3, 4, 5 and 7 more'."""
    if len(rows) > 5:
        return f"rows {', '.join(map(str, rows[:5]))} and {len(rows) - 5} more"
    return f"rows {', '.join(map(str, rows[:-1]))} and {rows[-1]}"


def _check_row(
    row: int, row_id: str, content: Any, image: Any, *, base_dir: Path, problems: _Problems
) -> tuple[str, str | Path | None] | None:
    """The text the row sends ("" for none) and its image source, or None after recording its problems."""
    ok = True
    if not _has_text(row_id):
        problems.add("empty_id", f"row {row} has an empty id")
        ok = False
    elif "\n" in row_id or "\r" in row_id:
        problems.add(
            "id_line_break",
            f"row {row}: id {_short(row_id)} holds a line break; an id must be one line "
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
            problems.add("not_text", f"row {row} (id {_short(row_id)}): content {_short(content)} is {kind}, not text")
            return None
    text = content if _has_text(content) else ""
    source = None
    if image is not None and image != "":
        try:
            source = _image_source(image, base_dir=base_dir)
        except _BadImage as exc:
            problems.add("bad_image", f"row {row} (id {_short(row_id)}): {exc}")
            return None
    if source is None and not text:
        problems.add("no_content", f"row {row} (id {_short(row_id)}) has neither content nor image")
        return None
    return (text, source) if ok else None


def _duplicate_groups(config: Config, hashes: np.ndarray) -> list[tuple[str, list[int]]]:
    """Ids on more than one row, with their rows: repeated hashes are confirmed by reading the ids again."""
    hashes.sort()
    repeated = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not repeated:
        return []
    rows_by_id: dict[str, list[int]] = {}
    row = 0
    for chunk in iter_input_chunks(config.input_file, columns=[config.id_column]):
        for value in chunk[config.id_column]:
            row += 1
            row_id = id_text(value)
            if hash(row_id) in repeated and _has_text(row_id):
                rows_by_id.setdefault(row_id, []).append(row)
    return sorted(((i, rows) for i, rows in rows_by_id.items() if len(rows) > 1), key=lambda group: group[1][0])


def _write_rows(
    config: Config, writer: _ShardWriter, *, wanted: set[str] | None, line_breaks: LineBreakCells | None = None
) -> tuple[int, _Problems]:
    """One pass over the input: check every row, write the wanted ones. Returns (rows written, problems)."""
    path = config.input_file
    base_dir = path.parent
    head, middle, tail = _line_parts(config)
    dumps = orjson.dumps
    problems = _Problems()
    hashes: list[np.ndarray] = []
    found: set[str] = set()
    row = written = 0
    column_keys = {config.id_column: "id_column", config.content_column: "content_column"}
    if config.image_url_column:
        column_keys.setdefault(config.image_url_column, "image_url_column")
    for chunk in iter_input_chunks(path, columns=list(column_keys), column_keys=column_keys, line_breaks=line_breaks):
        ids = [value if type(value) is str else id_text(value) for value in chunk[config.id_column]]
        # 64-bit hashes find repeated ids without holding every id string; they are confirmed at the end.
        hashes.append(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
        images = chunk[config.image_url_column] if config.image_url_column else repeat(None)
        for row_id, content, image in zip(ids, chunk[config.content_column], images, strict=False):
            row += 1
            if wanted is not None and row_id in wanted:
                found.add(row_id)
            if (
                type(content) is str
                and not image
                and _has_text(content)
                and _has_text(row_id)
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
                if source is None:
                    user = dumps(text)
                else:
                    url = source if isinstance(source, str) else _data_url(source, image)
                    user = dumps(_user_content(text, url, config.image_detail))
                line = b"".join((head, dumps(row_id), middle, user, tail))
            except _BadImage as exc:
                problems.add("bad_image", f"row {row} (id {_short(row_id)}): {exc}")
                continue
            except orjson.JSONEncodeError:  # e.g. lone surrogates from a pickle: not encodable as UTF-8
                problem = f"row {row} (id {_short(row_id)}): its id or content is not valid Unicode text"
                problems.add("not_text", problem)
                continue
            if len(line) > writer.max_bytes:
                problems.add(
                    "too_large",
                    f"row {row} (id {_short(row_id)}): its request is {len(line):,} bytes, more than a "
                    f"batch file may hold ({writer.max_bytes:,}); use a smaller image or shorter content",
                )
                continue
            if problems.found:
                continue  # nothing will be kept: go on checking, stop writing
            writer.shard_for(len(line)).write(line, row_id, text=text, has_image=source is not None)
            written += 1
    if row == 0:
        raise BatchToolError(f"{path}: the input has no rows; add the rows to send")
    problems.add_duplicates(_duplicate_groups(config, np.concatenate(hashes)))
    if wanted is not None and len(found) < len(wanted):
        problems.add_missing_ids(wanted - found)
    return written, problems


def write_shards(
    config: Config,
    *,
    out_dir: Path,
    only_ids: Collection[str] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> ShardPlan:
    """Check every input row and write the request lines into out_dir/shard-0001.jsonl, ...

    One streaming pass over the input. A shard closes before it would pass config.batch_size rows,
    MAX_REQUESTS_PER_FILE requests or `max_file_bytes` bytes. With `only_ids`, only rows with those
    ids are written (in input order), though every row is still checked. Every problem found is
    raised at once as one BatchToolError, and then nothing is left on disk: the shards are written
    into a temporary folder next to `out_dir` (which must not exist yet) and renamed at the end.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise BatchToolError(f"{out_dir}: already exists; shard files are written into a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    costs = _TokenCosts(config)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    writer = _ShardWriter(
        scratch, out_dir, costs, max_rows=min(config.batch_size, MAX_REQUESTS_PER_FILE), max_bytes=max_file_bytes
    )
    wanted = set(only_ids) if only_ids is not None else None
    try:
        line_breaks = LineBreakCells()
        written, problems = _write_rows(config, writer, wanted=wanted, line_breaks=line_breaks)
        if problems.found:
            raise BatchToolError(problems.message(config.input_file))
        shards = writer.finish()
        os.rename(scratch, out_dir)
    except BaseException:
        writer.abandon()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    method = costs.estimator.method
    if costs.extrapolated:
        method += "; content beyond a sample of each shard extrapolated by length"
    return ShardPlan(
        shards=shards,
        rows=written,
        prompt_tokens=sum(s.prompt_tokens for s in shards),
        token_method=method,
        line_breaks=line_breaks,
    )
