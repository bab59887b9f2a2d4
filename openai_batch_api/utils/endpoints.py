"""The Batch API's endpoints and limits, named once for the whole package."""

from __future__ import annotations

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"
ENDPOINTS = (CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS, MODERATIONS)
DEFAULT_ENDPOINT = CHAT
# Endpoints with a place for the system prompt (chat's system message, responses' instructions, the
# completion's prompt text); embeddings and moderations send the content alone.
PROMPT_ENDPOINTS = (CHAT, RESPONSES, COMPLETIONS)
# Endpoints that take few-shot examples as messages before the row's own.
EXAMPLE_ENDPOINTS = (CHAT, RESPONSES)
# Endpoints that take an image along with the text.
IMAGE_ENDPOINTS = (CHAT, RESPONSES, MODERATIONS)
# The body fields the tool builds from prompt, examples and content, per endpoint: model_params may not set them.
BUILT_FIELDS = {
    CHAT: ("messages",),
    RESPONSES: ("instructions", "input"),
    EMBEDDINGS: ("input",),
    COMPLETIONS: ("prompt",),
    MODERATIONS: ("input",),
}

# The API's limits on one batch input file.
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 200 * 1000 * 1000  # the API takes files up to 200 MB; stay under it

# Anthropic's Message Batches: one Messages request per row, sent inline with the batch's creation.
MESSAGES = "/v1/messages"
ANTHROPIC_MAX_REQUESTS = 100_000
ANTHROPIC_MAX_BATCH_BYTES = 256 * 1000 * 1000  # the API takes up to 256 MB; stay under it either way
