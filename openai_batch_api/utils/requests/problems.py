"""What is wrong with the input rows, gathered into one message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXAMPLES_PER_KIND = 3


def short(value: Any) -> str:
    """A value as it appears in a message: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Problems:
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
        listed = [f"{_rows_text(rows)}: id {short(row_id)}" for row_id, rows in groups[:EXAMPLES_PER_KIND]]
        if len(groups) > EXAMPLES_PER_KIND:
            listed.append(_more(len(groups) - EXAMPLES_PER_KIND, "repeated id"))
        rows = sum(len(group_rows) for _, group_rows in groups)
        # Counted per repeated id, as `found` counts them: "2 problems: 2 ids repeated in 4 rows".
        ids = f"{len(groups)} id{'' if len(groups) == 1 else 's'} repeated"
        self.whole_input.append(f"{ids} in {rows} rows ({'; '.join(listed)})")
        self.found += len(groups)

    def add_missing_ids(self, missing: set[str]) -> None:
        listed = ", ".join(short(row_id) for row_id in sorted(missing)[:EXAMPLES_PER_KIND])
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
