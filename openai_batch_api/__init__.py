"""Run a table through the OpenAI Batch API from one YAML config."""

__version__ = "0.2.0"
