"""CSV cells that span lines: legal when quoted, so they are counted and named; an id may not hold one."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_batch_api.utils.files.table import LineBreakCells, iter_input_chunks

NOTE_TAIL = "a quoted cell may hold line breaks, but a quote left open makes one too, swallowing the rows after it"


def test_create_batch_unterminated_quote_is_named(project, server):
    rows = [f"r{i},text {i}" for i in range(1, 8)]
    rows[3] = 'r4,"unterminated quote here'  # swallows the rows after it into its content
    (project.root / "input.csv").write_text("id,content\n" + "\n".join(rows) + '\nr8,"closed at last"\n')
    result = project.run("create-batch", "--dry-run")
    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("dry run: 4 rows valid, 1 shard (")  # 8 lines in the file, 4 rows
    assert lines[1] == f"note: input.csv: 1 cell spans lines (row 4); {NOTE_TAIL}: check that row"


def test_create_batch_many_cells_spanning_lines_name_the_first_rows(project, server):
    lines = "".join(f'{i},"line one\nline two"\n' for i in range(1, 9))
    (project.root / "input.csv").write_text("id,content\n" + lines)
    result = project.run("create-batch")
    assert result.exit_code == 0, result.err
    assert result.out.splitlines()[1] == (
        f"note: input.csv: 8 cells span lines (first at rows 1, 2, 3, 4 and 5); {NOTE_TAIL}: check those rows"
    )


def test_create_batch_no_note_without_line_breaks(project, server):
    project.write_rows(3)
    result = project.run("create-batch", "--dry-run")
    assert "note:" not in result.out


@pytest.mark.parametrize("name", ["input.csv", "input.jsonl"])
def test_create_batch_id_with_a_line_break_error(project, server, name):
    path = project.root / name
    if name.endswith(".csv"):
        path.write_text('id,content\na,x\n"b\nc",y\n')
    else:
        path.write_text('{"id": "a", "content": "x"}\n{"id": "b\\nc", "content": "y"}\n')
    project.write_config(input_file=name)
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {path}: row 2: id 'b\\nc' holds a line break; an id must be one line "
        "(in a CSV, a quote left open runs a cell on into the next lines)\n"
    )
    assert not project.data_path.exists() or not (project.data_path / "run.sqlite3").exists()


def test_iter_input_chunks_counts_line_breaks_across_chunks():
    path = Path("input.csv")
    cells_text = ["a\r\nb" if i % 3 == 0 else "a" for i in range(1, 13)]
    path.write_bytes(("id,content\n" + "".join(f'{i},"{text}"\n' for i, text in enumerate(cells_text, 1))).encode())
    cells = LineBreakCells()
    values = [v for chunk in iter_input_chunks(path, columns=["id", "content"], chunk_rows=2, line_breaks=cells)
              for v in chunk["content"]]
    assert len(values) == 12
    assert (cells.count, cells.first_rows) == (4, [3, 6, 9, 12])
