"""Building tiny inputs and configs, and running the commands' entry points as a user would."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pandas as pd
import yaml

from openai_batch_api.commands import collate_output, create_batch, delete_tasks, status_jobs

COMMANDS = {
    "create-batch": create_batch.main,
    "status-jobs": status_jobs.main,
    "collate-output": collate_output.main,
    "delete-tasks": delete_tasks.main,
}


@dataclass
class Result:
    exit_code: int
    out: str
    err: str


@dataclass
class Project:
    root: Path
    base_url: str
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config = {
            "input_file": "input.csv",
            "id_column": "id",
            "content_column": "content",
            "prompt": "Classify the text.",
            "batch_size": 4,
            "model_params": {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 50},
            "output_file": "output.pkl",
            "data_path": "data",
            "base_url": self.base_url,
        }

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_path(self) -> Path:
        return self.root / "data"

    def write_rows(self, rows: int = 10, name: str = "input.csv") -> pd.DataFrame:
        table = pd.DataFrame(
            {"id": [str(i) for i in range(1, rows + 1)], "content": [f"message number {i}" for i in range(1, rows + 1)]}
        )
        self.write_table(table, name)
        return table

    def write_table(self, table: pd.DataFrame, name: str = "input.csv") -> Path:
        path = self.root / name
        if name.endswith(".csv"):
            table.to_csv(path, index=False)
        elif name.endswith(".pkl"):
            table.to_pickle(path)
        elif name.endswith(".parquet"):
            table.to_parquet(path, index=False)
        else:
            table.to_json(path, orient="records", lines=True)
        self.config["input_file"] = name
        return path

    def write_config(self, **changes: Any) -> Path:
        for key, value in changes.items():
            if value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = value
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        return self.config_path

    def run(self, command: str, *args: str) -> Result:
        """Run a command's entry point in this process, capturing what it prints."""
        if not self.config_path.exists():
            self.write_config()
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = COMMANDS[command](["--config", str(self.config_path), *args])
        sys.stdout.flush()
        return Result(code, out.getvalue(), err.getvalue())

    def output(self) -> pd.DataFrame:
        return pd.read_pickle(self.root / self.config["output_file"])

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="test-key", max_retries=0)

    def server_batches(self) -> list:
        return list(self.client().batches.list(limit=100))

    def server_files(self) -> list:
        return list(self.client().files.list())
