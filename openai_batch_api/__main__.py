"""`python -m openai_batch_api`: list the commands."""

from . import __version__

COMMANDS = {
    "create-batch": "build task files from the input table, upload them and create the batches",
    "status-jobs": "show a table of the run's batches and their progress",
    "collate-output": "download the results and join them onto the input rows",
    "delete-tasks": "remove the run's intermediate files, locally and on the API side",
}


def main() -> None:
    print(f"openai_batch_api {__version__}: run a table through the OpenAI Batch API\n")
    print("commands (each takes --config path/to/config.yaml and --help):")
    for name, summary in COMMANDS.items():
        print(f"  {name:<15} {summary}")
    print("\nthe local backend: python -m openai_batch_api.local_server --help")


if __name__ == "__main__":
    main()
