"""Word when a run ends: the notify command and notify_url, once per run, never failing the run."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

import openai_batch_api

# The notify command: a real shell writing the variables it was given to a file, one line a call.
RECORD = 'echo "$OPENAI_BATCH_API_RUN_ID $OPENAI_BATCH_API_STATUS $OPENAI_BATCH_API_ROWS_DONE '
RECORD += '$OPENAI_BATCH_API_ROWS_FAILED $OPENAI_BATCH_API_CONFIG" >> told.txt'


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps each POST and answers with the next of `codes` (then the last)."""

    def __init__(self, codes: tuple[int, ...] = (200,)) -> None:
        self.codes = list(codes)
        self.posts: list[tuple[str, str, bytes]] = []  # (path, content type, body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, self.headers["Content-Type"], body))
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-part"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def run_id(project) -> str:
    return json.loads(project.run("status-jobs", "--json").out)["run_id"]


def test_status_jobs_wait_runs_notify_once_with_the_run_in_its_environment(project):
    project.write_rows(10)
    project.write_config(notify=RECORD)
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    told = project.root / "told.txt"
    assert told.read_text() == f"{run_id(project)} completed 10 0 {project.config_path}\n"
    again = project.run("status-jobs", "--wait", "--interval", "0.05")  # the run ended before: not told again
    assert again.exit_code == 0, again.err
    assert told.read_text().count("\n") == 1


def test_status_jobs_wait_posts_json_to_notify_url_once(project, receiver):
    project.write_rows(10)
    project.write_config(notify_url=receiver.url)
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert waited.err == ""
    run = run_id(project)
    assert [(path, kind) for path, kind, _ in receiver.posts] == [("/hook/secret-part", "application/json")]
    assert receiver.bodies() == [
        {
            "text": f"openai_batch_api: run {run} completed: 10 rows done, 0 failed ({project.config_path})",
            "run_id": run,
            "status": "completed",
            "rows_done": 10,
            "rows_failed": 0,
            "config": str(project.config_path),
        }
    ]
    assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
    assert len(receiver.posts) == 1


def test_notify_says_failed_when_some_rows_failed(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(line_failure_pattern="^(3|7)$")) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(notify=RECORD)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
        assert (tmp_path / "told.txt").read_text() == f"{run_id(project)} failed 6 2 {project.config_path}\n"


def test_notify_says_cancelled_for_a_cancelled_run(tmp_path, monkeypatch):
    from openai_batch_api.local_server import LocalServer, ServerOptions
    from project_support import Project

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with LocalServer(state_dir=tmp_path / "state", options=ServerOptions(line_latency=0.3)) as server:
        project = Project(root=tmp_path, base_url=server.base_url)
        project.write_rows(8)
        project.write_config(notify=RECORD)
        assert project.run("create-batch").exit_code == 0
        assert project.run("status-jobs", "--cancel", "--yes").exit_code == 0
        assert project.run("status-jobs", "--wait", "--interval", "0.05").exit_code == 0
        told = (tmp_path / "told.txt").read_text().split()
        assert told[:2] == [run_id(project), "cancelled"]
        server.wait_idle(timeout=10)


def test_failing_notify_url_is_tried_three_times_and_said_in_one_line(project):
    project.write_rows(4)
    with Receiver(codes=(503,)) as receiver:
        project.write_config(notify_url=receiver.url, notify="echo the command still runs >> told.txt")
        assert project.run("create-batch").exit_code == 0
        waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert waited.err == "notify_url: POST to 127.0.0.1 failed after 3 tries: answered 503\n"
    assert len(receiver.posts) == 3
    assert (project.root / "told.txt").read_text() == "the command still runs\n"
    assert "next: collate-output" in waited.out


def test_notify_url_refusing_the_post_is_not_tried_again(project):
    project.write_rows(4)
    with Receiver(codes=(404,)) as receiver:
        project.write_config(notify_url=receiver.url)
        assert project.run("create-batch").exit_code == 0
        waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert waited.err == "notify_url: POST to 127.0.0.1 failed after 1 try: answered 404\n"
    assert len(receiver.posts) == 1


def test_notify_url_nobody_listens_on_is_said_and_the_run_goes_on(project):
    with Receiver() as gone:
        url = gone.url
    project.write_rows(4)
    project.write_config(notify_url=url)
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert re.fullmatch(r"notify_url: POST to 127\.0\.0\.1 failed after 3 tries: .*refused.*\n", waited.err)


def test_failing_notify_command_is_said_in_one_line(project):
    project.write_rows(4)
    project.write_config(notify="echo starting; echo cannot reach the pager >&2; exit 3")
    assert project.run("create-batch").exit_code == 0
    waited = project.run("status-jobs", "--wait", "--interval", "0.05")
    assert waited.exit_code == 0, waited.err
    assert waited.err == "notify: the command exited with status 3: cannot reach the pager\n"
    assert "starting" not in waited.out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"notify_url": "http://hooks.example.com/services/T0/B0/secret"},
            "'notify_url' must be an https:// URL (plain http:// only to this machine: localhost, 127.x.x.x, "
            "::1), got http://hooks.example.com/...",
        ),
        ({"notify_url": "hooks.slack.com/x"}, "'notify_url' must be an https:// URL such as https://hooks.slack.com/services/..."),
        ({"notify_url": 5}, "'notify_url' must be an https:// URL, got int"),
        ({"notify": ""}, "'notify' must be a shell command as a non-empty string, got str"),
        ({"notify": ["echo", "done"]}, "'notify' must be a shell command as a non-empty string, got list"),
    ],
)
def test_notify_config_errors(project, changes, message):
    project.write_rows(4)
    project.write_config(**changes)
    result = project.run("create-batch")
    assert result.exit_code == 1
    assert result.err == f"error: {project.config_path}: {message}\n"
    assert not project.data_path.exists()


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T0/B0/x", "http://localhost:9/hook", "http://[::1]/x"])
def test_notify_url_https_or_loopback_accepted(tmp_path, url):
    from openai_batch_api.utils.config import validate_config_mapping

    mapping = {
        "input_file": "in.csv",
        "id_column": "id",
        "content_column": "c",
        "prompt": "p",
        "model_params": {"model": "gpt-4o-mini"},
        "output_file": "o.csv",
        "data_path": "d",
        "notify_url": f" {url} ",
    }
    assert validate_config_mapping(mapping, path=tmp_path / "c.yaml").notify_url == url


def test_batch_in_a_notebook_notifies_once_when_the_run_ends(tmp_path, server, receiver):
    table = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "text": [f"review {i}" for i in range(6)]})
    options = dict(
        prompt="Classify the review.",
        model_params={"model": "gpt-4o-mini", "max_tokens": 50},
        data_path="run",
        content_column="text",
        base_url=server.base_url,
        batch_size=4,
        poll_interval=0.05,
        progress=False,
        notify=RECORD,
        notify_url=receiver.url,
    )
    answered = openai_batch_api.batch(table, **options)
    assert len(answered) == 6
    told = (tmp_path / "told.txt").read_text().split()
    assert told[1:4] == ["completed", "6", "0"]
    assert told[4] == str(tmp_path / "<mapping>")
    assert [body["status"] for body in receiver.bodies()] == ["completed"]
    openai_batch_api.batch(table, **options)  # called again on the ended run: nothing more is said
    assert (tmp_path / "told.txt").read_text().count("\n") == 1
    assert len(receiver.posts) == 1
