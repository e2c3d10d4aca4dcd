"""Find the corpus text file; download and verify it once when it is missing."""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from chargpt.errors import ConfigError, DataError, visible
from chargpt.hydra_run import task_overrides
from chargpt.overrides import override_key

DATA_DIR_ENV = "CHARGPT_DATA_DIR"
DATA_DIR_SETTING = "paths.data_dir"
_CHUNK = 1 << 20


def default_data_dir() -> str:
    """The data directory: $CHARGPT_DATA_DIR, else ./data (configs/paths/default.yaml's rule, for
    code that reads the corpus without a run's config: the tests, the benchmarks)."""
    return os.environ.get(DATA_DIR_ENV) or "data"


def check_data_dir(cfg: DictConfig) -> None:
    """An empty paths.data_dir (`paths.data_dir=`, or CHARGPT_DATA_DIR set to nothing) that the data
    settings read is refused: a preset's path under it started at the root of the file system, where
    Tiny Shakespeare was looked for and downloaded (/tinyshakespeare/input.txt)."""
    setting = DATA_DIR_SETTING
    value = OmegaConf.select(cfg, setting, throw_on_resolution_failure=False)
    if not isinstance(value, str) or value.strip():
        return
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or f"${{{setting}}}" not in str(OmegaConf.to_container(data)):
        return  # a text of one's own, or a checkpoint's: the data directory is not read
    if os.environ.get(DATA_DIR_ENV) == "" and not data_dir_typed():
        raise ConfigError(f"{DATA_DIR_ENV} is set but empty (an unset shell variable?), so {setting} names "
                          "no folder; set it to the folder that holds the data, or unset it (data/ here, "
                          "the default)")
    raise ConfigError(f"{setting} is empty: the data would be read (and downloaded) at the root of the file "
                      f"system; name a folder ({setting}=data) or leave it out")


def data_dir_typed() -> bool:
    """Whether this launch's command line sets paths.data_dir, which CHARGPT_DATA_DIR then does not
    change."""
    return any(override_key(o) == DATA_DIR_SETTING for o in task_overrides())


def _data_dir_named_by() -> str:
    """What the user sets to name another data directory: paths.data_dir where they typed it (the
    variable would not change it), else CHARGPT_DATA_DIR."""
    return DATA_DIR_SETTING if data_dir_typed() else DATA_DIR_ENV


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, dest: Path, sha256: str | None) -> None:
    """Download to a temporary name, verify, then rename: a failed download leaves nothing behind,
    not even the folders it made for the file."""
    made = [folder for folder in (dest.parent, *dest.parent.parents) if not folder.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a data directory that is a file, or on a read-only place
        _remove_empty(made)
        raise DataError(
            f"{dest} is missing, and no folder for it can be made ({err.strerror}: {err.filename}); "
            f"set {_data_dir_named_by()} to a folder that has it, or to one it can be downloaded into"
        ) from err
    part = dest.with_name(dest.name + ".part")
    print(f"downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, part.open("wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
        if sha256 is not None and (actual := sha256_of(part)) != sha256:
            raise DataError(
                f"downloaded {url} has sha256 {actual}, expected {sha256}; "
                f"download it yourself and put it at {dest}"
            )
        part.replace(dest)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"{dest} is missing and could not be downloaded ({reason}); "
            f"download {url} and put it there, or set {_data_dir_named_by()} to a folder that has it"
        ) from err
    finally:
        part.unlink(missing_ok=True)
        if not dest.exists():
            _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty: another process may have put
    something in one meanwhile."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def gives_no_text(path: Path) -> bool:
    """Whether `path` is a device or a socket, which a read takes no text from (/dev/zero's never
    ended, until memory ran out). A terminal is none: it is read to its end (Ctrl-D) as a pipe is,
    once (`prompt_file=/dev/stdin`, the prompt typed)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # (its read says why)
    if stat.S_ISSOCK(mode):
        return True
    if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        return False
    try:  # (non-blocking, and not made this process's terminal: an open that only asks)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return True
    try:
        return not os.isatty(fd)
    finally:
        os.close(fd)


def not_a_file(file: Path, setting: str) -> str:
    """Why `file`, which is no regular file, cannot be the text `setting` names."""
    mode = file.stat().st_mode
    if stat.S_ISFIFO(mode):
        # A pipe (`<(command)`, `command | chargpt-train data.path=/dev/stdin`, a FIFO) is read once:
        # chargpt-train and chargpt-eval read a text to hash it, then to encode it (a run again to
        # resume), and its size, 0, said nothing of it. A FIFO with no writer waited for ever.
        return (f"{setting}={file} is not a file but a pipe, which can be read only once, where the text is "
                "read more than once (hashed, then encoded, and a training run's again as it resumes): save "
                f"the text to a file first (COMMAND > corpus.txt) and pass {setting}=corpus.txt")
    return f"{setting}={file} is not a file but {device_or_socket(file)}; pass a text file as {setting}=FILE"


def device_or_socket(file: Path) -> str:
    """What `file`, neither a file, a folder nor a pipe, is: "a socket" or "a device" (its size says
    nothing of what it gives)."""
    return "a socket" if stat.S_ISSOCK(file.stat().st_mode) else "a device"


def resolve_corpus(
    path: str | os.PathLike, url: str | None = None, sha256: str | None = None, setting: str = "data.path"
) -> Path:
    """Return an existing, non-empty corpus file, downloading it first when a URL is known;
    `setting` is the one that named it."""
    file = Path(os.path.expanduser(path))
    if not file.exists():
        if url is None:
            raise DataError(f"data file not found: {visible(file)}; pass an existing text file as "
                            f"{setting}=FILE")
        _download(url, file, sha256)
    if file.is_dir():
        raise DataError(f"data path {file} is a directory; pass a text file as {setting}=FILE")
    if not file.is_file():
        raise DataError(not_a_file(file, setting))
    if file.stat().st_size == 0:
        raise DataError(f"data file {file} is empty; pass a text file with content")
    return file
