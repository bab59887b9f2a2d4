"""The README is the truth: its config keys, its example config and its flags are real."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from openai_batch_api.local_server import ServerOptions
from openai_batch_api.utils.config import CONFIG_KEYS, validate_config_mapping
from openai_batch_api.utils.endpoints import ENDPOINTS
from project_support import COMMANDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_readme_config_reference_lists_exactly_the_accepted_keys():
    documented = re.findall(r"^\| `(\w+)` \|", section("The config"), flags=re.MULTILINE)
    assert sorted(documented) == sorted(CONFIG_KEYS)


def test_readme_example_config_is_accepted():
    block = re.search(r"```yaml\n(.*?)```", section("The config"), flags=re.DOTALL).group(1)
    config = validate_config_mapping(yaml.safe_load(block), path=Path("/project/config.yaml"))
    assert config.batch_size == 50
    assert config.image_url_column == "image"


def test_readme_config_with_every_key_is_accepted():
    every = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section("The config"), flags=re.DOTALL).group(1))
    every.update(
        image_detail="high",
        base_url="local",
        local_backend={"line_latency": 0.1},
        max_enqueued_tokens=1000,
        max_cost=5.0,
        max_retries=2,
        prices={"gpt-4o-mini": {"input": 0.15, "output": 0.6}},
        answer_column_prefix="ans_",
        concurrency=8,
        poll_interval=10,
        max_requests_per_batch=100_000,
        max_batch_bytes=100_000_000,
        result_retention="7d",
        endpoint="/v1/responses",
        examples=[{"user": "a", "assistant": "b"}],
        provenance=True,
        provider="openai",
        notify="echo done",
        notify_url="https://hooks.example.com/run",
    )
    # The Responses API takes its answer format as text.format, not chat's response_format.
    every["model_params"]["text"] = {"format": every["model_params"].pop("response_format")}
    # content_template replaces content_column: the two are never given together
    assert set(every) | {"content_template"} == set(CONFIG_KEYS)
    validate_config_mapping(every, path=Path("/project/config.yaml"))
    every["content_template"] = "{" + every.pop("content_column") + "}"
    validate_config_mapping(every, path=Path("/project/config.yaml"))


def test_readme_local_backend_options_exist():
    flags = set(re.findall(r"`(--[a-z-]+)", section("The local backend")))
    options = {"--" + name.replace("_", "-") for name in ServerOptions.__dataclass_fields__}
    assert flags - {"--host", "--port", "--state-dir", "--api-key"} <= options
    ServerOptions.from_mapping({"line_failure_rate": 0.1, "line_latency": 0.1})


def test_readme_command_flags_exist(capsys):
    import pytest

    for command, main in COMMANDS.items():
        with pytest.raises(SystemExit):
            main(["--help"])
        help_text = capsys.readouterr().out
        for flag in set(re.findall(rf"`{command}[^`]*?(--[a-z-]+)", README)):
            assert flag in help_text, f"README names {command} {flag}, which does not exist"


def test_readme_endpoint_examples_are_accepted_one_per_endpoint():
    start = README.index("### Endpoints, templates and examples")
    blocks = re.findall(r"```yaml\n(.*?)```", README[start : README.index("\n## ", start)], flags=re.DOTALL)
    configs = [validate_config_mapping(yaml.safe_load(block), path=Path("/project/config.yaml")) for block in blocks]
    assert sorted(config.endpoint for config in configs) == sorted(ENDPOINTS)
    assert any(config.content_template and config.content_template.count("{") == 2 for config in configs)
