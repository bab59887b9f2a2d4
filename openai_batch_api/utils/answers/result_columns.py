"""The names of the columns results add to the table: defined here once, used by name everywhere else."""

from __future__ import annotations

OUTPUT = "api_output"  # the answer's text, an embedding vector, or whether a moderation flagged the input
STATUS = "api_status"  # ok, error, expired, cancelled or pending
ERROR = "api_error"
ERROR_CODE = "api_error_code"
FINISH_REASON = "api_finish_reason"
REFUSAL = "api_refusal"
CATEGORIES = "api_categories"  # moderations: the flagged categories
PROMPT_TOKENS = "api_prompt_tokens"
COMPLETION_TOKENS = "api_completion_tokens"
TOTAL_TOKENS = "api_total_tokens"
RETRYABLE = "api_retryable"
ATTEMPTS = "api_attempts"
JSON_ERROR = "api_json_error"  # why a JSON answer does not fit the requested format

# One row per result line, as load_results returns them, in this order.
LOADED = (
    STATUS,
    OUTPUT,
    ERROR,
    ERROR_CODE,
    FINISH_REASON,
    REFUSAL,
    CATEGORIES,
    PROMPT_TOKENS,
    COMPLETION_TOKENS,
    TOTAL_TOKENS,
    RETRYABLE,
)
# What collate adds after the input's own columns, in this order; moderations add CATEGORIES after OUTPUT.
COLLATED = (OUTPUT, STATUS, ERROR, FINISH_REASON, REFUSAL, PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS, ATTEMPTS)
# With `provenance: true`, after those: where each row's answer came from.
BATCH_ID = "api_batch_id"  # the batch whose result line answered the row, or "pilot"
MODEL = "api_model"  # the model the API reports having answered with
REQUEST_HASH = "api_request_hash"  # the sha256 of the request body the answer is to
PROVENANCE = (BATCH_ID, MODEL, REQUEST_HASH)
