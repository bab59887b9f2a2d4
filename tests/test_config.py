"""The config: a closed schema, every problem at once, paths against the config's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_batch_api.utils.config import CONFIG_KEYS, load_config
from openai_batch_api.utils.errors import BatchToolError

BASE = """\
input_file: input.csv
id_column: id
content_column: content
prompt: Classify the text.
batch_size: 50
model_params:
  model: gpt-4o-mini
  temperature: 0
output_file: out/output.pkl
data_path: data
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(BatchToolError) as caught:
        load_config(path)
    return str(caught.value)


def test_load_config_resolves_paths_against_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    config = load_config(write(tmp_path / "sub", BASE))
    assert config.input_file == (tmp_path / "sub" / "input.csv").resolve()
    assert config.output_file == (tmp_path / "sub" / "out" / "output.pkl").resolve()
    assert config.data_path == (tmp_path / "sub" / "data").resolve()
    assert config.model == "gpt-4o-mini"
    assert config.batch_size == 50
    assert config.image_detail == "low"
    assert config.base_url is None


def test_load_config_output_file_same_as_input_file_error(tmp_path):
    path = write(tmp_path, BASE.replace("output_file: out/output.pkl", "output_file: ./input.csv"))
    assert error_of(path) == (
        f"{path}: output_file is the input_file (input.csv); collate-output would overwrite the table "
        "the run was made from: choose another output_file"
    )


@pytest.mark.parametrize(
    ("key", "value", "folder"),
    [
        ("input_file", "data/tasks/attempt-1/shard-0001.jsonl", "tasks"),
        ("input_file", "data/results/rows.csv", "results"),
        ("input_file", "data/local_backend/input.csv", "local_backend"),
        ("output_file", "data/results/output.csv", "results"),
        ("output_file", "data/tasks/output.pkl", "tasks"),
    ],
)
def test_load_config_file_inside_a_folder_of_the_tool_error(tmp_path, key, value, folder):
    line = {"input_file": "input_file: input.csv", "output_file": "output_file: out/output.pkl"}[key]
    path = write(tmp_path, BASE.replace(line, f"{key}: {value}"))
    assert error_of(path) == (
        f"{path}: {key} {tmp_path / value} is inside {tmp_path / 'data' / folder}, where the tool writes and "
        f"deletes its own files; move it out of that folder (or set another data_path) and fix {key} in the config"
    )


def test_load_config_folders_of_the_tool_are_those_it_writes(tmp_path):
    from openai_batch_api.utils.config import OWNED_FOLDERS
    from openai_batch_api.utils.lifecycle.planning import TASKS_DIR
    from openai_batch_api.utils.lifecycle.result_files import RESULTS_DIR
    from openai_batch_api.utils.providers.openai import local_state_dir

    config = load_config(write(tmp_path, BASE))
    assert set(OWNED_FOLDERS) == {TASKS_DIR, RESULTS_DIR, local_state_dir(config).name}


def test_load_config_legacy_image_url_and_batch_submit_data(tmp_path):
    config = load_config(write(tmp_path, BASE + "image_url: picture\nbatch_submit_data: {a: 1}\n"))
    assert config.image_url_column == "picture"


def test_load_config_local_base_url(tmp_path):
    config = load_config(write(tmp_path, BASE + "base_url: local\n"))
    assert config.is_local


def test_load_config_reports_every_problem_at_once(tmp_path):
    text = BASE.replace("prompt: Classify the text.\n", "promt: Classify\n").replace("batch_size: 50", "batch_size: ten")
    path = write(tmp_path, text + "image_detail: medium\n")
    assert error_of(path) == (
        f"{path}: 4 problems: unknown key 'promt' (did you mean 'prompt'?); "
        "'batch_size' must be a whole number from 1 to 50000, got 'ten'; "
        "'image_detail' must be one of low, high, auto, got 'medium'; missing key 'prompt'"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("batch_size: 50001\n", "'batch_size' must be a whole number from 1 to 50000, got 50001"),
        ("max_cost: -1\n", "'max_cost' must be a positive number, got -1"),
        ("concurrency: 0\n", "'concurrency' must be a whole number of at least 1, got 0"),
        *(
            (f"poll_interval: {text}\n", f"'poll_interval' must be a number of seconds above 0 and at most 86400 "
             f"(a day), got {shown}")
            for text, shown in (("1.0e+300", "1e+300"), (".nan", "nan"), (".inf", "inf"), ("0", "0"), ("-5", "-5"),
                                ("86401", "86401"), ("soon", "'soon'"))
        ),
        ("prices: {gpt-x: {input: 1}}\n", "'prices' gpt-x: must be {input: USD per 1M tokens, output: USD per 1M tokens}"),
        ("image_url: a\nimage_url_column: b\n", "'image_url' and 'image_url_column' both given: keep only 'image_url_column'"),
        ("colour: blue\n", "unknown key 'colour'"),
        ("max_requests_per_batch: 0\n", "'max_requests_per_batch' must be a whole number of at least 1, got 0"),
        ("max_batch_bytes: 1.5\n", "'max_batch_bytes' must be a whole number of at least 1, got 1.5"),
        (
            "max_requests_per_batch: 100\nbatch_size: 101\n",
            "'batch_size' must be a whole number from 1 to 100, got 101",
        ),
        (
            "result_retention: 30m\n",
            "'result_retention' must be seconds or a duration like 7d or 12h, from 1h to 30d, got '30m'",
        ),
        (
            "result_retention: 31d\n",
            "'result_retention' must be seconds or a duration like 7d or 12h, from 1h to 30d, got '31d'",
        ),
        (
            "result_retention: a week\n",
            "'result_retention' must be seconds or a duration like 7d or 12h, from 1h to 30d, got 'a week'",
        ),
    ],
)
def test_load_config_single_problem(tmp_path, extra, message):
    text = BASE.replace("batch_size: 50\n", "") if "batch_size:" in extra else BASE
    path = write(tmp_path, text + extra)
    assert error_of(path) == f"{path}: {message}"


def test_load_config_model_params_without_model(tmp_path):
    path = write(tmp_path, BASE.replace("  model: gpt-4o-mini\n", ""))
    assert error_of(path) == f"{path}: 'model_params' must name the model, e.g. `model: gpt-4o-mini`"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("output_file", "output.xlsx", "'output_file' must end in .pkl, .pickle, .csv, .parquet, .jsonl, got 'output.xlsx'"),
        (
            "base_url",
            "127.0.0.1:8089/v1",
            "'base_url' must be `local` or an http:// or https:// URL such as http://127.0.0.1:8089/v1, "
            "got '127.0.0.1:8089/v1'",
        ),
    ],
)
def test_load_config_value_refused_at_load(tmp_path, key, value, message):
    text = "".join(line for line in BASE.splitlines(keepends=True) if not line.startswith(f"{key}:"))
    path = write(tmp_path, f"{text}{key}: {value}\n")
    assert error_of(path) == f"{path}: {message}"


def test_load_config_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: no such config file; pass one with --config path/to/config.yaml"


def test_load_config_invalid_yaml(tmp_path):
    path = write(tmp_path, "input_file: [unclosed\n")
    assert error_of(path).startswith(f"{path}: not valid YAML at line 2: ")


def test_load_config_not_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    assert error_of(path) == f"{path}: the config must be a mapping of keys, got list"


def test_load_config_empty(tmp_path):
    path = write(tmp_path, "")
    assert error_of(path) == f"{path}: the config is empty; see the README's config reference"


def test_every_key_has_a_meaning():
    assert all(meaning for meaning in CONFIG_KEYS.values())


@pytest.mark.parametrize(
    ("value", "seconds"), [("7d", 604800), ("12h", 43200), ("90m", 5400), (3600, 3600), ("86400", 86400), ("30d", 2592000)]
)
def test_load_config_result_retention_in_seconds(tmp_path, value, seconds):
    assert load_config(write(tmp_path, BASE + f"result_retention: {value}\n")).result_retention == seconds


def test_load_config_provider_limits_default_to_openai(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert (config.max_requests_per_batch, config.max_batch_bytes, config.result_retention) == (50_000, 200_000_000, None)


def test_load_config_batch_size_up_to_a_larger_provider_limit(tmp_path):
    text = BASE.replace("batch_size: 50\n", "batch_size: 100000\nmax_requests_per_batch: 100000\n")
    assert load_config(write(tmp_path, text)).batch_size == 100_000


def test_load_config_output_file_is_a_folder_error(tmp_path):
    (tmp_path / "sub.csv").mkdir()
    path = write(tmp_path, BASE.replace("output_file: out/output.pkl", "output_file: sub.csv"))
    assert error_of(path) == (
        f"{path}: output_file {tmp_path.resolve() / 'sub.csv'} is a folder; name the file collate-output writes"
    )


def test_load_config_output_file_under_a_file_error(tmp_path):
    path = write(tmp_path, BASE.replace("output_file: out/output.pkl", "output_file: config.yaml/deeper/o.csv"))
    config_file = tmp_path.resolve() / "config.yaml"
    assert error_of(path) == (
        f"{path}: output_file {config_file / 'deeper' / 'o.csv'}: {config_file} is a file, not a folder; "
        "choose another output_file"
    )


def test_load_config_data_path_is_a_file_error(tmp_path):
    (tmp_path / "ok.csv").write_text("id\n")
    path = write(tmp_path, BASE.replace("data_path: data", "data_path: ok.csv"))
    assert error_of(path) == f"{path}: data_path {tmp_path.resolve() / 'ok.csv'} is a file; name a folder (it is made if missing)"


def test_load_config_data_path_and_output_file_under_files_both_reported(tmp_path):
    (tmp_path / "ok.csv").write_text("id\n")
    text = BASE.replace("data_path: data", "data_path: ok.csv/data").replace(
        "output_file: out/output.pkl", "output_file: ok.csv/o.pkl"
    )
    path = write(tmp_path, text)
    blocker = tmp_path.resolve() / "ok.csv"
    assert error_of(path) == (
        f"{path}: 2 problems: output_file {blocker / 'o.pkl'}: {blocker} is a file, not a folder; choose another "
        f"output_file; data_path {blocker / 'data'}: {blocker} is a file, not a folder; choose another data_path"
    )


@pytest.mark.parametrize(
    ("params", "problems"),
    [
        ("max_tokens: -5", "'model_params.max_tokens' must be a whole number of at least 1, got -5"),
        ("max_tokens: abc", "'model_params.max_tokens' must be a whole number of at least 1, got 'abc'"),
        ("max_completion_tokens: 0", "'model_params.max_completion_tokens' must be a whole number of at least 1, got 0"),
        (
            "max_output_tokens: 2.5",
            "2 problems: 'model_params.max_output_tokens' must be a whole number of at least 1, got 2.5; unknown "
            "model_params field 'max_output_tokens' (did you mean 'max_tokens'?): /v1/chat/completions requests "
            "have no such field",
        ),
        ("max_tokens: true", "'model_params.max_tokens' must be a whole number of at least 1, got True"),
        ("temperature: .nan", "'model_params.temperature' must be a finite number, got nan"),
        ("top_p: -.inf", "'model_params.top_p' must be a finite number, got -inf"),
        (
            "logit_bias: {'50256': .inf}\n  stop: [a, .nan]",
            "2 problems: 'model_params.logit_bias.50256' must be a finite number, got inf; "
            "'model_params.stop[1]' must be a finite number, got nan",
        ),
    ],
)
def test_load_config_model_params_token_limits_and_numbers_error(tmp_path, params, problems):
    path = write(tmp_path, BASE.replace("  temperature: 0", f"  {params}"))
    assert error_of(path) == f"{path}: {problems}"


@pytest.mark.parametrize(
    ("params", "problems"),
    [
        (
            "max_token: 200",
            "unknown model_params field 'max_token' (did you mean 'max_tokens'?): /v1/chat/completions requests "
            "have no such field",
        ),
        (
            "temperatur: 0.2\n  top_k: 5",
            "2 problems: unknown model_params field 'temperatur' (did you mean 'temperature'?): "
            "/v1/chat/completions requests have no such field; unknown model_params field 'top_k' (did you mean 'top_p'?): "
            "/v1/chat/completions requests have no such field",
        ),
        ("temperature: '0.2'", "'model_params.temperature' must be a number or null, got a string ('0.2')"),
        ("seed: 1.5", "'model_params.seed' must be a whole number or null, got a number (1.5)"),
        ("stop: 5", "'model_params.stop' must be a string, a list or null, got a whole number (5)"),
        ("response_format: json_object", "'model_params.response_format' must be a mapping, got a string ('json_object')"),
        ("logprobs: 'yes'", "'model_params.logprobs' must be true/false or null, got a string ('yes')"),
    ],
)
def test_load_config_model_params_checked_against_the_request_schema(tmp_path, params, problems):
    path = write(tmp_path, BASE.replace("  temperature: 0", f"  {params}"))
    assert error_of(path) == f"{path}: {problems}"
    assert not (tmp_path / "data").exists()


def test_load_config_model_params_of_the_endpoint_are_accepted(tmp_path):
    text = BASE.replace("prompt: Classify the text.\n", "endpoint: /v1/embeddings\n").replace(
        "  model: gpt-4o-mini\n  temperature: 0", "  model: text-embedding-3-small\n  dimensions: 4\n  encoding_format: float"
    )
    assert load_config(write(tmp_path, text)).model_params["dimensions"] == 4
    chat = BASE.replace("  temperature: 0", "  temperature: 1\n  top_p: 0.5\n  seed: 3\n  stop: [END]\n  n: 1")
    assert load_config(write(tmp_path, chat)).model_params["seed"] == 3


def test_load_config_model_params_of_the_wrong_endpoint_refused(tmp_path):
    text = BASE.replace("prompt: Classify the text.\n", "endpoint: /v1/embeddings\n").replace(
        "  model: gpt-4o-mini\n  temperature: 0", "  model: text-embedding-3-small\n  temperature: 0"
    )
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}: unknown model_params field 'temperature': /v1/embeddings requests have no such field"
    )


def test_load_config_model_params_fields_of_another_server_are_its_own(tmp_path):
    # vLLM and other OpenAI-compatible servers take fields of their own; their types are still checked.
    text = BASE.replace("  temperature: 0", "  top_k: 5\n  repetition_penalty: 1.1")
    config = load_config(write(tmp_path, text + "base_url: http://127.0.0.1:8000/v1\n"))
    assert config.model_params["top_k"] == 5
    path = write(tmp_path, BASE.replace("  temperature: 0", "  temperature: hot") + "base_url: http://127.0.0.1:8000/v1\n")
    assert error_of(path) == f"{path}: 'model_params.temperature' must be a number or null, got a string ('hot')"
    for base_url in ("local", "https://api.openai.com/v1", "https://me.openai.azure.com/openai/v1/"):
        path = write(tmp_path, text + f"base_url: {base_url}\n")
        assert error_of(path).startswith(f"{path}: 2 problems: unknown model_params field 'top_k'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "model_params:\n  model: gpt-4o\n", "key 'model_params' is given twice (lines 6 and 11)"),
        (BASE.replace("  temperature: 0\n", "  temperature: 0\n  temperature: 1\n"), "key 'temperature' is given twice (lines 8 and 9)"),
        (BASE + "local_backend: {seed: 1, seed: 2}\n", "key 'seed' is given twice (lines 11 and 11)"),
    ],
    ids=["top-level", "nested", "flow"],
)
def test_load_config_key_given_twice_error(tmp_path, text, message):
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: {message}; keep one of them"


def test_yaml_merge_keys_may_be_overridden_beside_them():
    from openai_batch_api.utils.yaml_keys import safe_load_unique

    text = "base: &base\n  a: 1\n  b: 2\nchild:\n  <<: *base\n  b: 3\n"
    assert safe_load_unique(text) == {"base": {"a": 1, "b": 2}, "child": {"a": 1, "b": 3}}


def test_create_batch_config_with_model_params_twice_error_before_any_work(project):
    project.write_rows(3)
    text = project.write_config().read_text(encoding="utf-8")
    project.config_path.write_text(text + "model_params:\n  model: gpt-4o\n", encoding="utf-8")
    lines = project.config_path.read_text(encoding="utf-8").splitlines()
    first, second = [number for number, line in enumerate(lines, 1) if line.startswith("model_params:")]
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == (
        f"error: {project.config_path}: key 'model_params' is given twice (lines {first} and {second}); "
        "keep one of them\n"
    )
    assert not project.data_path.exists()
