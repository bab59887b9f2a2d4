"""A command's --help, and `import openai_batch_api`, load none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("openai", "pandas", "pyarrow", "tiktoken", "numpy", "openai_batch_api.run")


def modules_loaded_by(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def create_batch_code(config, *flags: str) -> str:
    """Code running create-batch on `config` to its end (exit 0), its output kept quiet."""
    return (
        "import contextlib, io\n"
        "from openai_batch_api.commands import create_batch\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert create_batch.main({['--config', str(config), *flags]!r}) == 0\n"
    )


@pytest.mark.parametrize("module", ["create_batch", "status_jobs", "collate_output", "delete_tasks"])
def test_command_help_imports_no_heavy_library(module):
    code = (
        "import contextlib, io\n"
        f"from openai_batch_api.commands import {module}\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    {module}.main(['--help'])"
    )
    assert modules_loaded_by(code) & set(HEAVY) == set()


def test_import_package_is_light_and_run_comes_on_first_use():
    assert modules_loaded_by("import openai_batch_api") & set(HEAVY) == set()
    loaded = modules_loaded_by("import openai_batch_api\nopenai_batch_api.Run")
    assert "openai_batch_api.run" in loaded
    assert "openai" not in loaded  # the SDK comes with the provider, at the first step that calls the API


def test_status_jobs_does_not_import_collate_output():
    loaded = modules_loaded_by("import openai_batch_api.commands.status_jobs, openai_batch_api.run")
    assert "openai_batch_api.commands.collate_output" not in loaded


def test_every_public_name_of_the_package_imports():
    code = "import openai_batch_api\nfor name in openai_batch_api.__all__:\n    getattr(openai_batch_api, name)"
    assert "openai_batch_api.run" in modules_loaded_by(code)


def test_create_batch_of_a_csv_imports_no_pandas_and_loads_no_encoding(project):
    """pandas is for collating; the estimate's encoding loads in a process of its own."""
    project.write_rows(10)
    config = project.write_config()
    code = create_batch_code(config) + (
        "from openai_batch_api.utils.costs.tokens import get_estimator\n"
        "assert type(get_estimator('gpt-4o-mini')).__name__ == 'WorkerEstimator'"
    )
    loaded = modules_loaded_by(code)
    assert "openai" in loaded  # the run was submitted
    assert "pandas" not in loaded


def test_create_batch_dry_run_imports_no_sdk(project):
    """A dry run calls no API: the SDK (most of a second to import) stays out of its time."""
    project.write_rows(10)
    config = project.write_config()
    loaded = modules_loaded_by(create_batch_code(config, "--dry-run"))
    assert "openai_batch_api.utils.requests.shards" in loaded
    assert "openai" not in loaded
