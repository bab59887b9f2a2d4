"""A local OpenAI Files + Batches API backend, which also speaks Anthropic's Message Batches API:
the whole batch workflow with no key and no network.

`LocalServer` serves the API on loopback, keeps files, batches and progress on disk, and answers
request lines with a deterministic built-in responder or an upstream OpenAI-compatible server;
`ServerOptions` sets its latency, failures and limits. `python -m openai_batch_api.local_server`
runs one from the command line.
"""

from __future__ import annotations

from .options import ServerOptions
from .server import LocalServer

__all__ = ["LocalServer", "ServerOptions"]
