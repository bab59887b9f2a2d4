"""Tables in object storage: an input_file or output_file given as an s3://, gs:// or az:// URL.

They are read and written through pyarrow's filesystems, which ship in the pyarrow wheel the package
already needs (no second stack of SDKs), stream both ways, and take credentials where each provider's
own tools do: for S3 the AWS_* variables, ~/.aws, or the machine's role, and AWS_ENDPOINT_URL for any
S3-compatible store; for Google Cloud Storage the application default credentials, and
STORAGE_EMULATOR_HOST for an emulator (no credentials); for Azure AZURE_STORAGE_CONNECTION_STRING,
or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_KEY or the default Azure credential. data_path
stays a local folder: the run's state and locks need a real filesystem.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, InputError

SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
GLOB_CHARACTERS = "*?["
READ_BUFFER_BYTES = 1 << 20


class ObjectUrl(str):
    """The URL of a table in object storage, named as a Path is (`name`, `suffix`) but never a local file."""

    @property
    def scheme(self) -> str:
        return self.split("://", 1)[0].lower()

    @property
    def key(self) -> str:
        """The bucket (or container) and the object's key: `bucket/folder/table.parquet`."""
        return self.split("://", 1)[1].rstrip("/")

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    def with_key(self, key: str) -> ObjectUrl:
        return ObjectUrl(f"{self.split('://', 1)[0]}://{key}")


Location = Path | ObjectUrl  # where a table is: a local path, or a URL in object storage


def is_url(value: object) -> bool:
    """Whether `value` is a URL of one of the object stores (s3://, gs://, az://, ...)."""
    return isinstance(value, str) and "://" in value and value.split("://", 1)[0].lower() in SCHEMES


def has_glob(location: Location) -> bool:
    return any(character in str(location) for character in GLOB_CHARACTERS)


def filesystem(url: ObjectUrl) -> Any:
    """The pyarrow filesystem of `url`'s store (credentials from the provider's usual places).

    One per bucket, endpoint and account: making one may ask the store for the bucket's region.
    """
    bucket = url.key.split("/", 1)[0]
    cache_key = (url.scheme, bucket, *(os.environ.get(name) for name in _STORE_VARIABLES))
    if cache_key not in _FILESYSTEMS:
        _FILESYSTEMS[cache_key] = _new_filesystem(url)
    return _FILESYSTEMS[cache_key]


_FILESYSTEMS: dict[tuple[str | None, ...], Any] = {}
# The variables that choose a store's endpoint or account: a filesystem made under others is not reused.
_STORE_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "STORAGE_EMULATOR_HOST",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_KEY",
)


def _new_filesystem(url: ObjectUrl) -> Any:
    import pyarrow.fs as pafs

    try:
        if url.scheme == "az":
            return _azure(url)
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if url.scheme in ("gs", "gcs") and emulator:
            return _gcs_emulator(emulator)
        # From the URL, pyarrow takes AWS_ENDPOINT_URL, the keys and the bucket's region as the AWS SDKs do
        # (S3FileSystem() made directly ignores AWS_ENDPOINT_URL).
        return pafs.FileSystem.from_uri(str(url))[0]
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid and ArrowIOError are both
        raise ConfigError(f"{url}: cannot open its object store ({_first_line(exc)})") from None


def _azure(url: ObjectUrl) -> Any:
    """Azure Blob Storage for az://container/key, as fsspec spells it: the account comes from the environment.

    AZURE_STORAGE_CONNECTION_STRING, as the Azure CLI and SDKs read it (its account, key or SAS token, and
    blob endpoint: Azurite's, say), else AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_KEY or, without a
    key, the default Azure credential.
    """
    import pyarrow.fs as pafs

    settings = _connection_settings(os.environ.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    account = settings.get("AccountName") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise ConfigError(
            f"{url}: set AZURE_STORAGE_ACCOUNT_NAME (or AZURE_STORAGE_CONNECTION_STRING) to the storage account of "
            "an az:// URL, or give the URL as abfs://container@account.dfs.core.windows.net/key"
        )
    options: dict[str, str] = {}
    key = settings.get("AccountKey") or (None if settings else os.environ.get("AZURE_STORAGE_KEY"))
    if key:
        options["account_key"] = key
    elif settings.get("SharedAccessSignature"):
        options["sas_token"] = settings["SharedAccessSignature"]
    endpoint = urlsplit(settings.get("BlobEndpoint", ""))
    if endpoint.netloc:  # an emulator's or a private endpoint, its account in the path: Arrow adds it there
        for service in ("blob", "dfs"):
            options[f"{service}_storage_scheme"] = endpoint.scheme or "https"
            options[f"{service}_storage_authority"] = endpoint.netloc
    return pafs.AzureFileSystem(account_name=account, **options)


def _connection_settings(text: str) -> dict[str, str]:
    """The `Name=value;...` pairs of an Azure Storage connection string (a value may hold `=`)."""
    pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
    return {name.strip(): value.strip() for name, value in pairs}


def _gcs_emulator(address: str) -> Any:
    """Google Cloud Storage at an emulator's address (fake-gcs-server and the like), without credentials.

    STORAGE_EMULATOR_HOST is the variable Google's own client libraries and gcsfs read for it, as
    `http://127.0.0.1:4443` or `127.0.0.1:4443` (then http).
    """
    from datetime import timedelta

    import pyarrow.fs as pafs

    scheme, found, host = address.partition("://")
    if not found:
        scheme, host = "http", address
    # An emulator that is not running is named within seconds, not retried for the cloud client's minutes.
    retries = timedelta(seconds=5)
    endpoint = host.rstrip("/")
    return pafs.GcsFileSystem(anonymous=True, scheme=scheme, endpoint_override=endpoint, retry_time_limit=retries)


def path_in_store(url: ObjectUrl) -> str:
    if url.scheme in ("abfs", "abfss"):
        # abfs://container@account.dfs.core.windows.net/key -> container/key
        container, _, rest = url.key.partition("/")
        return f"{container.split('@', 1)[0]}/{rest}".rstrip("/")
    return url.key


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def object_info(url: ObjectUrl) -> Any:
    """pyarrow's FileInfo of the object or folder at `url` (type NotFound when there is none)."""
    try:
        return filesystem(url).get_file_info(path_in_store(url))
    except OSError as exc:
        raise InputError(f"{url}: cannot reach it ({_first_line(exc)}); check the URL and the credentials") from None


def exists(location: Location) -> bool:
    if isinstance(location, ObjectUrl):
        import pyarrow.fs as pafs

        return object_info(location).type != pafs.FileType.NotFound
    return location.exists()


def is_folder(location: Location) -> bool:
    if isinstance(location, ObjectUrl):
        import pyarrow.fs as pafs

        return object_info(location).type == pafs.FileType.Directory
    return location.is_dir()


def open_input(location: Location) -> IO[bytes]:
    """The bytes of a table, read front to back in a buffer (for CSV, JSONL and pickle)."""
    if isinstance(location, ObjectUrl):
        try:
            stream = filesystem(location).open_input_stream(path_in_store(location))
        except FileNotFoundError:
            raise InputError(f"{location}: no such input file; fix input_file in the config") from None
        return io.BufferedReader(stream, buffer_size=READ_BUFFER_BYTES)
    return open(location, "rb")


def arrow_source(location: Location) -> Any:
    """What pyarrow's readers take: a local path as text, or an open random-access file of the store."""
    if isinstance(location, ObjectUrl):
        try:
            return filesystem(location).open_input_file(path_in_store(location))
        except FileNotFoundError:
            raise InputError(f"{location}: no such input file; fix input_file in the config") from None
    return str(location)


def dataset_files(location: Location) -> list[Location]:
    """The Parquet files of a folder (searched through) or a glob, in sorted order: one table, in a stable order.

    Hidden files and those starting with `_` (`_SUCCESS`, `_metadata`) are not part of it.
    """
    if isinstance(location, ObjectUrl):
        import pyarrow.fs as pafs

        store = filesystem(location)
        path = path_in_store(location)
        pattern = path if has_glob(location) else None
        base = folder_before_glob(path) if pattern else path
        infos = store.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        keys = [info.path for info in infos if info.type == pafs.FileType.File]
        if pattern is not None:
            keys = [key for key in keys if fnmatch.fnmatchcase(key, pattern)]
        found: list[Location] = [location.with_key(_key_in_url(location, key)) for key in keys]
    elif has_glob(location):
        anchor = Path(location.anchor)
        found = [anchor / p for p in anchor.glob(str(location.relative_to(anchor)))]
    else:
        found = list(location.rglob("*.parquet"))
    files = [f for f in found if f.name.endswith(".parquet") and not f.name.startswith((".", "_"))]
    return sorted(files, key=str)


def folder_before_glob(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if any(character in part for character in GLOB_CHARACTERS):
            break
        parts.append(part)
    return "/".join(parts)


def _key_in_url(url: ObjectUrl, path: str) -> str:
    """The URL key of `path` (as the store lists it) in the spelling of `url` (abfs keeps its account)."""
    if url.scheme in ("abfs", "abfss"):
        container, _, rest = path.partition("/")
        return f"{url.key.split('/', 1)[0]}/{rest}" if container else path
    return path


def fingerprint(url: ObjectUrl, files: list[Location] | None = None) -> str:
    """A digest of what is stored at `url` (or of each of `files`): its key, size and ETag.

    The bytes are not read again: a store gives an object a new ETag whenever it is written, so the
    digest changes when the table does, and telling a changed table costs a request per object.
    """
    digest = hashlib.sha256()
    for item in files if files is not None else [url]:
        assert isinstance(item, ObjectUrl)
        store = filesystem(item)
        try:
            with store.open_input_file(path_in_store(item)) as handle:
                size = handle.size()
                metadata = handle.metadata()
        except FileNotFoundError:
            raise InputError(f"{item}: no such input file; fix input_file in the config") from None
        tag = metadata.get("ETag") or metadata.get("etag") or metadata.get("Last-Modified") or b""
        digest.update(f"{item.key}\n{size}\n".encode() + bytes(tag) + b"\n")
    return digest.hexdigest()


@contextmanager
def atomic_output(url: ObjectUrl) -> Iterator[Any]:
    """A stream whose bytes replace the object at `url` only if the block succeeds.

    They are written under a temporary key beside it, `.<name>.<16 hex digits>.part`, and moved into
    place by the store once whole (a copy within the store, then the temporary key is deleted): a
    crash or an error leaves the old object or the new one, never half of it.
    """
    store = filesystem(url)
    final = path_in_store(url)
    folder, _, name = final.rpartition("/")
    temporary = f"{folder}/.{name}.{secrets.token_hex(8)}.part"
    stream = store.open_output_stream(temporary)
    try:
        yield stream
        stream.close()
        _move(store, temporary, final)
    except BaseException:
        stream.close()
        try:
            store.delete_file(temporary)
        except OSError:
            pass  # an upload that never completed left no object to delete
        raise


def _move(store: Any, source: str, destination: str) -> None:
    """Move an object within its store: a copy made by the store, then the source deleted.

    pyarrow's move is that on S3 and Google Cloud Storage; on an Azure account without a hierarchical
    namespace (most blob accounts) it has none, so the copy and the delete are asked for here.
    """
    import pyarrow as pa

    try:
        store.move(source, destination)
    except pa.ArrowNotImplementedError:
        store.copy_file(source, destination)
        store.delete_file(source)
