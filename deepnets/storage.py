"""Where results live: a local (or NFS) folder, or object storage named by a URI.

`Location` is a small path-like handle over pyarrow's filesystems (the ones Ray Train and Tune
use for their own storage), so one code path writes run files to `runs/`, `/mnt/efs/runs` or
`s3://bucket/runs`. Local writes are atomic (temporary name, then rename); an object-store put
is atomic by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepnets.errors import ConfigError

# Schemes pyarrow can open; Ray's storage_path accepts the same.
SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "file")


def check_location(text: str, field: str) -> str:
    """`text` if it is a local path or a URI with a known scheme, else a one-line error."""
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in SCHEMES:
            raise ConfigError(
                f"{field}: unknown storage scheme '{scheme}://'; use a local path or one of "
                + ", ".join(f"{s}://" for s in SCHEMES)
            )
    return text


class Location:
    """A file or folder, local or remote; `/` joins, like pathlib."""

    def __init__(self, text: str | Path):
        text = str(text)
        self.remote = "://" in text
        self.text = text.rstrip("/") if self.remote else str(Path(text).expanduser().resolve())

    def __truediv__(self, part: str) -> Location:
        return Location(f"{self.text}/{part}")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Location({self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Location) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @property
    def name(self) -> str:
        return self.text.rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.text.rsplit("/", 1)[0])

    @property
    def local_path(self) -> Path:
        if self.remote:
            raise ValueError(f"{self.text} is not on the local filesystem")
        return Path(self.text)

    def _fs(self):
        from pyarrow import fs

        return fs.FileSystem.from_uri(self.text)  # -> (filesystem, path inside it)

    def exists(self) -> bool:
        if not self.remote:
            return Path(self.text).exists()
        from pyarrow import fs

        filesystem, path = self._fs()
        return filesystem.get_file_info(path).type != fs.FileType.NotFound

    def mkdir(self) -> None:
        if not self.remote:
            Path(self.text).mkdir(parents=True, exist_ok=True)
            return
        filesystem, path = self._fs()
        filesystem.create_dir(path, recursive=True)

    def read_text(self) -> str:
        if not self.remote:
            return Path(self.text).read_text()
        filesystem, path = self._fs()
        with filesystem.open_input_stream(path) as stream:
            return stream.read().decode()

    def write_text(self, text: str) -> None:
        """Readers see the old content or the new, never a partial file."""
        if self.remote:
            filesystem, path = self._fs()
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with filesystem.open_output_stream(path) as stream:
                stream.write(text.encode())
            return
        target = Path(self.text)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, target)

    def delete(self) -> None:
        """Remove this file (a no-op when it does not exist)."""
        if not self.remote:
            Path(self.text).unlink(missing_ok=True)
        elif self.exists():
            filesystem, path = self._fs()
            filesystem.delete_file(path)

    def check_writable(self, field: str) -> None:
        """Create this folder and write a probe file in it, or raise a one-line ConfigError."""
        try:
            self.mkdir()
            probe = self / ".write-test"
            probe.write_text("")
            probe.delete()
        except OSError as err:
            raise ConfigError(f"{field}: cannot write to {self} ({err.strerror or err})") from None

    def children(self) -> list[Location]:
        """The entries directly inside this folder (empty when it does not exist)."""
        if not self.remote:
            folder = Path(self.text)
            return [Location(p) for p in sorted(folder.iterdir())] if folder.is_dir() else []
        from pyarrow import fs

        filesystem, path = self._fs()
        infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
        return [self / info.base_name for info in sorted(infos, key=lambda i: i.base_name)]

    def upload_folder(self, local: Path) -> None:
        """Copy a local folder's files here (used for TensorBoard logs of remote runs)."""
        from pyarrow import fs

        filesystem, path = self._fs()
        filesystem.create_dir(path, recursive=True)
        fs.copy_files(str(local), path, destination_filesystem=filesystem)
