"""`batch()`: a table through the Batch API in one call, for notebooks; called again, it resumes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .run import Run
from .utils.errors import InputError
from .utils.files.atomic_files import atomic_path
from .utils.files.table import check_named_columns, check_unique_columns, is_missing
from .utils.layout import BATCH_INPUT_NAME
from .utils.requests.shards import named_columns
from .utils.state.ledger import file_sha256

if TYPE_CHECKING:
    import pandas as pd

    from .utils.lifecycle.waiting import WaitUpdate

# How messages name a DataFrame given to batch(): it has no file name.
FRAME_LABEL = "the DataFrame given to batch()"
# batch()'s own keywords: a mistyped keyword is matched among these and the config's keys.
BATCH_KEYWORDS = ("progress", "on_update", "adopt")


def batch(
    table: pd.DataFrame | str | os.PathLike[str],
    *,
    model_params: dict[str, Any],
    data_path: str | os.PathLike[str],
    prompt: str | None = None,
    id_column: str = "id",
    content_column: str | None = None,
    base_url: str | None = None,
    progress: bool = True,
    on_update: Callable[[WaitUpdate], None] | None = None,
    adopt: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Send every row of `table` through the Batch API, wait, and return it with the answer columns.

    `table` is a DataFrame or the path of a table file (.csv, .parquet, .pkl, .jsonl); a
    DataFrame is saved into `data_path` as `batch_input.parquet`, the run's input. The other keywords
    are the config's keys (`content_template`, `endpoint`, `examples`, `image_url_column`,
    `batch_size`, `output_file`, `max_cost`, `poll_interval`, ...), checked by the same schema
    as the YAML; relative paths are relative to the working folder.

    Called again with the same `data_path` it resumes that run: nothing is submitted twice,
    and an interrupted call (Ctrl-C, a dead kernel) loses nothing. A changed table, prompt or
    model_params raises RunChangedError, as the commands refuse them. `progress=False` hides
    the progress bar; `on_update` is called after each poll with a `WaitUpdate`.

    When data_path's run state was lost but the API holds that run's batches, a new run would pay
    for every row again: it is refused with LostRunError; `adopt=True` takes the run up again.
    """
    mapping: dict[str, Any] = {
        "input_file": None,
        "id_column": id_column,
        "model_params": model_params,
        "data_path": os.fspath(data_path),
        **({"prompt": prompt} if prompt is not None else {}),
        **({"content_column": content_column} if content_column is not None else {}),
        **({"base_url": base_url} if base_url is not None else {}),
        **options,
    }
    frame = None if isinstance(table, (str, os.PathLike)) else table
    if frame is None:
        mapping["input_file"] = os.fspath(table)
    else:
        mapping["input_file"] = os.path.join(os.fspath(data_path), BATCH_INPUT_NAME)
    run = Run.from_mapping(mapping, base_dir=Path.cwd(), source="batch()", keywords=BATCH_KEYWORDS)
    with run.locked("batch()"):
        saved_now = frame is not None and not run.config.input_file.exists()
        if frame is not None:
            save_table(run, frame)
        try:
            created = run.create(adopt=adopt)
        except BaseException:
            if saved_now and not run.exists():  # a refused run leaves nothing behind, not even the table
                run.config.input_file.unlink(missing_ok=True)
            raise
        run.submit()
        # Rows a resumed run answered before this call are no part of this call's rate.
        with ProgressBar(enabled=progress, count_first_poll=created.new) as show:

            def update(wait_update: WaitUpdate) -> None:
                show(wait_update)
                if on_update is not None:
                    on_update(wait_update)

            run.wait(on_update=update)
        table = run.collate().table
    return table if frame is None else as_caller_frame(table, frame, id_column=run.config.id_column)


def as_caller_frame(table: pd.DataFrame, frame: pd.DataFrame, *, id_column: str) -> pd.DataFrame:
    """The collated table lined up with the caller's `frame`: its index, and its id column's dtype.

    The rows are the frame's, in its order (the run's input is the frame): so
    `frame["answer"] = batch(frame)["api_output"]` and `frame.merge(answers, on="id")` both work,
    after `sort_values` or with any index. An id that was the frame's index is the index again.
    """
    if id_column not in frame.columns and frame.index.name == id_column:
        return table.set_index(id_column).set_axis(frame.index)
    table.index = frame.index
    if table[id_column].dtype != frame[id_column].dtype:
        table[id_column] = frame[id_column].set_axis(table.index)  # the same ids, in the caller's dtype
    return table


def save_table(run: Run, frame: pd.DataFrame) -> None:
    """Save `frame` as the run's input file; refuse, leaving the saved one, when it differs from the run's.

    The file is written beside the input and swapped in whole; a table whose rows changed replaces
    the run's (the run continues with it), but a run whose prompt, settings or columns differ keeps
    its input (RunChangedError), so the table it was made from can be collated still. A
    file already at that name holding another table was not written for this run (a user's own,
    or a table an interrupted call saved before its run began): it is refused, never replaced.
    """
    config = run.config
    if config.id_column not in frame.columns and frame.index.name == config.id_column:
        frame = frame.reset_index()
    check_unique_columns(FRAME_LABEL, list(frame.columns))
    check_named_columns(FRAME_LABEL, [str(label) for label in frame.columns], named_columns(config))
    config.data_path.mkdir(parents=True, exist_ok=True)
    with atomic_path(config.input_file) as scratch:
        write_frame(frame, scratch)
        table_hash = file_sha256(scratch)
        if run.exists():
            # The run's own table: one whose rows changed continues the run (only new and edited rows go out).
            run.check_inputs(input_hash=table_hash, input_file=Path(scratch), table_may_change=True)
        elif config.input_file.exists() and file_sha256(config.input_file) != table_hash:
            raise InputError(
                f"{config.input_file}: a file of this name holds another table than the one given, and batch() "
                "replaces no file it has not written for this run; move that file out of data_path (or set "
                "another data_path)"
            )


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """`frame` as Parquet at `path`; a column Parquet cannot hold (values of several types) is an InputError."""
    import pyarrow as pa

    try:
        frame.to_parquet(path, index=False)
    except (pa.ArrowException, ValueError, TypeError):
        for label in frame.columns:
            column = frame[label]
            try:
                pa.array(column, from_pandas=True)
            except (pa.ArrowException, ValueError, TypeError):
                kinds = sorted({type(value).__name__ for value in column.tolist() if not is_missing(value)})
                raise InputError(
                    f"{FRAME_LABEL}: column '{label}' holds values of more than one type ({', '.join(kinds)}), "
                    f"which cannot be saved as the run's table; give it one type, e.g. "
                    f"table['{label}'] = table['{label}'].astype(str)"
                ) from None
        raise


def tqdm_class() -> type:
    """tqdm's widget bar where Jupyter can draw it (ipywidgets installed), else its text bar.

    tqdm.auto in a notebook without ipywidgets warns (`TqdmWarning: IProgress not found`) into every
    notebook before falling back to text: the text bar is chosen here, quietly.
    """
    try:
        import ipywidgets  # noqa: F401 - only whether it is there
    except ImportError:
        from tqdm.std import tqdm

        return tqdm
    from tqdm.auto import tqdm

    return tqdm


class ProgressBar:
    """A tqdm bar of rows answered (done or failed) over all rows, with the batches' statuses.

    Its clock starts when the wait does, so the first poll already shows the elapsed time and a rate
    of rows per second (a short run is often answered by then). `count_first_poll=False` (a resumed
    run) leaves the rows the first poll finds out of the rate: they were answered before.
    """

    def __init__(self, *, enabled: bool, count_first_poll: bool = True) -> None:
        self.enabled = enabled
        self.count_first_poll = count_first_poll
        self.started = time.time()
        self.bar = None

    def __enter__(self) -> Callable[[WaitUpdate], None]:
        return self.show

    def show(self, update: WaitUpdate) -> None:
        if not self.enabled:
            return
        progress = update.progress
        answered = progress.rows_done + progress.rows_failed
        if self.bar is None:
            initial = 0 if self.count_first_poll else answered
            # smoothing=0: the rate is rows answered over the time since the wait began, not a
            # moving average that needs several updates before it shows anything but `?`.
            self.bar = tqdm_class()(total=progress.rows, initial=initial, unit="row", desc="batch", smoothing=0)
            self.bar.start_t = self.started
        statuses: dict[str, int] = {}
        for status in update.statuses:
            statuses[status] = statuses.get(status, 0) + 1
        self.bar.total = progress.rows
        self.bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in sorted(statuses.items())), refresh=False)
        self.bar.update(answered - self.bar.n)
        self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
