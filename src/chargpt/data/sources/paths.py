"""A path setting as typed: Hydra's quotes and escapes read as Hydra reads them, `~` and environment
variables expanded as a shell would, and a glob's folders before its first wildcard."""

from __future__ import annotations

import glob
import os

GLOB_CHARS = "*?["


def expand_path(value: str | os.PathLike) -> str:
    """`~` and environment variables, as a shell would expand them; a path that exists as typed
    (a folder named 'price $5') is taken as it is, and so is the folder of a glob (its pattern is
    still expanded)."""
    home = os.path.expanduser(str(value))
    if "$" in home and os.path.exists(home):  # also a name with a glob's brackets in it: 'a [1] $5.txt'
        return home
    folder, pattern = split_glob(home)
    if "$" in folder and os.path.exists(folder or "."):
        return folder + os.path.expandvars(pattern)
    return os.path.expandvars(home)


def path_as_read(key: str, value: str) -> str:
    """A path typed as Hydra's docs type one, read as Hydra reads it: quoted ("data.path='src/*.py'",
    'it\\'s.txt') or with its escapes (`notes\\, v2 é.txt`: a comma; Hydra refuses the accent
    unquoted, so chargpt reads it before Hydra does). A file or folder of the name as typed, backslash
    and all, where there is one, is that one."""
    from chargpt.overrides import literal_value, without_quotes  # Hydra's parser: only where one is typed

    if "\\" in value and value[:1] not in ("'", '"') and not os.path.exists(expand_path(value)):
        return literal_value(f"{key}={value}")
    return without_quotes(key, value)


def split_glob(path: str) -> tuple[str, str]:
    """A glob's folders before its first wildcard (with their last separator) and the rest; a path
    with no wildcard is all folder."""
    first = min((i for i in map(path.find, GLOB_CHARS) if i >= 0), default=None)
    if first is None:
        return path, ""
    cut = path.rfind(os.sep, 0, first) + 1
    return path[:cut], path[cut:]


def absolute_path(value: str | os.PathLike, pattern: bool | None = None) -> str:
    """`value` as typed (expand_path) named absolute. A glob named relative is joined to the current
    folder with that folder's own glob characters escaped (launched in `notes [v2]`, `*.txt` would
    match `notes v` or `notes 2`, and so nothing): they are no wildcards of the user's. `pattern`:
    whether `value` is a glob whatever it holds (datasets' data_files are); None: where it holds a
    wildcard and names no path as it is."""
    expanded = expand_path(value)
    if os.path.isabs(expanded):
        return os.path.normpath(expanded)
    if pattern is None:
        pattern = any(c in expanded for c in GLOB_CHARS) and not os.path.exists(expanded)
    return os.path.normpath(os.path.join(glob.escape(os.getcwd()) if pattern else os.getcwd(), expanded))


def no_match_advice(pattern: str, setting: str) -> str:
    """What to check of a glob that matched no files: folders on its way whose own names hold glob
    characters (`notes [v2]`, named absolute) are read as wildcards; where the pattern with them
    escaped matches files, that pattern is named, as `setting` takes it."""
    parts = os.path.normpath(pattern).split(os.sep)
    for end in range(len(parts) - 1, 0, -1):
        folder = os.sep.join(parts[:end]) or os.sep
        if not (any(c in folder for c in GLOB_CHARS) and os.path.isdir(folder)):
            continue
        escaped = os.path.join(glob.escape(folder), *parts[end:])
        if glob.glob(escaped, recursive=True):
            names = [f"'{name}'" for name in parts[:end] if any(c in name for c in GLOB_CHARS)]
            folders = f"folder name{'s' if len(names) > 1 else ''} {', '.join(names)}"
            return f"the pattern reads the glob characters of the {folders} as wildcards: escape them, " \
                   f"{setting}={escaped}"
    return "check the path or pattern"
