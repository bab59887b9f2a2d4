"""Make image/status_jobs_sample.png again from real output of `status-jobs`.

Runs the bundled example as it is against the local backend in a scratch folder, waits for its
batches to finish, captures what status-jobs then prints, and draws it as a terminal.
Needs Pillow, which the package itself does not: `pip install pillow`, then
`python image/make_status_image.py`.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from openai_batch_api.commands import create_batch, status_jobs

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples"
FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "DejaVuSansMono.ttf", "Menlo.ttc", "consola.ttf")


def status_output() -> str:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "example"
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("data", "output.*"))
        config_path = folder / "config.yaml"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            create_batch.main(["--config", str(config_path)])
            status_jobs.main(["--config", str(config_path), "--wait", "--interval", "1"])
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            status_jobs.main(["--config", str(config_path)])
        return captured.getvalue().replace(str(config_path), "config.yaml")


def font(size: int) -> ImageFont.ImageFont:
    for path in FONT_PATHS:
        with contextlib.suppress(OSError):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def render(text: str, path: Path) -> None:
    lines = ["$ status-jobs --config config.yaml", *text.rstrip("\n").splitlines()]
    face = font(15)
    left, top, right, bottom = face.getbbox("M")
    char_w, line_h = right - left, int((bottom - top) * 1.6)
    width = max(len(line) for line in lines) * char_w + 48
    height = len(lines) * line_h + 48
    image = Image.new("RGB", (width, height), (30, 32, 36))
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        colour = (120, 200, 120) if number == 0 else (225, 225, 225)
        draw.text((24, 24 + number * line_h), line, font=face, fill=colour)
    image.save(path)


if __name__ == "__main__":
    target = HERE / "status_jobs_sample.png"
    render(status_output(), target)
    print(f"wrote {target}")
