"""A run of a sweep read into one row of chargpt-report's table (its settings, status and
figures), and the rows ranked best first and flattened into columns: one per setting, then the
figures.

A run is any directory under SWEEP_DIR with a `.hydra/overrides.yaml` (what Hydra writes for each
job). Its figures come from the run's metrics.json (written at each validation) and status.json
(`running` from the first step, then how the run ended): a run whose status still says running
after its process is gone was `killed` (kill -9, a lost machine); one with no status at all
(stopped before training started, predates the record, or lost it) is `finished` where its
metrics.json shows its last step (run_state.read_status), `running` while a live process still
starts it, else `incomplete`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt.checkpoint_step import checkpoint_corpus_path
from chargpt.errors import ChargptError, first_line
from chargpt.files import read_json_object
from chargpt.overrides import (
    is_path_key,
    launched_path,
    literal_value,
    named_from,
    named_from_anywhere,
    removal_key,
)
from chargpt.run_layout import (
    BUDGET_FILE,
    METRICS_FILE,
    NotOverrides,
    last_checkpoint,
    launch_cwd,
    overrides_files,
    read_overrides,
    saved_config,
    saved_config_node,
)
from chargpt.run_state import read_status, starting_process, state_of
from chargpt.runs.report_figures import HIGHER_IS_BETTER, METRIC_COLUMNS, figures_of

SEED = "seed"
AUTO_SHAPE = "auto_shape"  # the shape model=auto chose (budget.json), beside the settings
DEFAULT = "default"  # a setting a launch did not give


class NotARun(ChargptError):
    """A folder that looks like a run but whose recorded overrides cannot be read."""


def _recorded(path: Path) -> list[str]:
    try:
        return read_overrides(path)
    except NotOverrides as err:
        raise NotARun(str(err)) from None
    except Exception as err:  # YAML's errors, OmegaConf's, the OS's: each means unreadable
        raise NotARun(f"{path} cannot be read ({first_line(err, 80)})") from None


def _overrides_in(path: Path) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in _recorded(path):
        key = removal_key(item)
        if key != "ckpt_path":  # how a resume is launched, not a setting of the run
            overrides[key] = literal_value(item)  # free text was quoted for Hydra
    return overrides


def parse_overrides(run_dir: Path, files: list[Path] | None = None) -> dict[str, str]:
    """The run's settings as its first launch gave them. A resume trains on with the settings of
    its own command line: where the latest one gave another value, or left one out (the default),
    the setting reads `first→latest` (trainer.max_steps=500→2000, optimizer.lr=3e-3→default).
    `files`: the launches' overrides files to read (overrides_files's, by default)."""
    files = files or overrides_files(run_dir)
    first = _overrides_in(files[0])
    if len(files) == 1:
        return first
    latest = _overrides_in(files[-1])
    cwds = (launch_cwd(files[0].parent), launch_cwd(files[-1].parent))
    settings = {}
    for key in [*first, *(k for k in latest if k not in first)]:
        was, now = first.get(key, DEFAULT), latest.get(key, DEFAULT)
        same = was == now or (is_path_key(key) and _same_path(was, now, *cwds))
        settings[key] = was if same else f"{was}→{now}"
    return settings


def changed_settings(settings: dict[str, str]) -> list[str]:
    """The settings (parse_overrides's) a later launch gave other values: `data.batch_size=default→32`."""
    return [f"{key}={value}" for key, value in settings.items() if "→" in str(value)]


def added_keys(run_dir: Path) -> dict[str, str]:
    """The settings the run's launches added (`+new.key=1`, `++key=1`), each with its key as typed:
    {"new.key": "+new.key"}. Its column keeps the setting's name; pasted without the `+`, a command
    refuses a setting the config does not have."""
    return {removal_key(item): item.partition("=")[0] for file in overrides_files(run_dir)
            for item in _recorded(file) if item.startswith("+")}


def typed_keys(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The setting columns that any of the rows (run_row's) added, each with its key as typed."""
    return {key: typed for row in rows for key, typed in row.get("added", {}).items()}


def _same_path(was: str, now: str, first_cwd: str | None, latest_cwd: str | None) -> bool:
    """Two launches' values that name one file or folder from where each was made: the command an
    interrupted run prints names its paths absolute, where its first launch may have named them
    relative."""
    if DEFAULT in (was, now) or first_cwd is None or latest_cwd is None:
        return False
    return os.path.normpath(launched_path(was, first_cwd)) == os.path.normpath(launched_path(now, latest_cwd))


def comparable_paths(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (run_row's) with a file named the same way in each: where a setting's paths are not
    all named relative to one folder, each relative one is named absolute from where its run was
    launched, as a continue command names it (named_from; a hub dataset's name stays). The jobs a
    sweep's continue command started have their paths absolute, its first jobs as typed (`a.txt`):
    one sweep's files read as two kinds of path, the seeds of one file in two groups."""
    rows = [{**row, "overrides": dict(row["overrides"])} for row in rows]
    cwds = [_first_launch_cwd(row["dir"]) for row in rows]
    for key in {key for row in rows for key in row["overrides"] if is_path_key(key)}:
        named = [(row, cwd) for row, cwd in zip(rows, cwds, strict=True)
                 if _one_path(row["overrides"].get(key))]
        relative = [(row, cwd) for row, cwd in named if not named_from_anywhere(row["overrides"][key], cwd)]
        if len(relative) == len(named) and len({cwd for _, cwd in relative}) <= 1:
            continue  # each as typed, from one folder: as readable as paths get
        for row, cwd in relative:
            if cwd is not None:
                row["overrides"][key] = named_from(key, row["overrides"][key], cwd)
    return rows


def _first_launch_cwd(run_dir: Path) -> str | None:
    try:
        return launch_cwd(overrides_files(run_dir)[0].parent)
    except (OSError, IndexError):
        return None


def _one_path(value: str | None) -> bool:
    """A setting's value that is one path: given, not its default, nor two launches' (`a→b`)."""
    return bool(value) and value != DEFAULT and "→" not in value


def run_name(run_dir: Path, sweep_dir: Path) -> str:
    """Its path in the sweep; a single run directory given itself is named by its directory, not "."."""
    relative = run_dir.relative_to(sweep_dir).as_posix()
    return run_dir.resolve().name if relative == "." else relative


def run_status(run_dir: Path, status: dict[str, Any], metrics: dict[str, Any]) -> str:
    if status.get("status") == "failed":
        return "failed"
    if (state := state_of(status, run_dir)) in ("running", "killed"):
        return state
    if not status and starting_process(run_dir) is not None:
        return "running"  # still starting: its first status.json comes with its first step
    # A run stopped early on purpose (time budget, signal) may say so in its metrics.
    return str(metrics.get("status") or status.get("status") or "incomplete")


def recorded_seed(run_dir: Path) -> str | None:
    """The seed the run trained with, from its saved config (a run launched without `seed=` took
    the config's default)."""
    seed = saved_config(run_dir).get(SEED)
    return None if seed is None else str(seed)


# The data settings that pick the text a run validates on (the file, its cut, a dataset's split, how
# much of it is scored, how it is read); the others (batches, workers, the data seed) do not.
TEXT_SETTINGS = ("path", "val_path", "name", "config", "data_files", "split", "val_split", "text_field",
                 "train_fraction", "val_max_chars", "separator", "normalize", "newline")


TEXT = "text"  # a column of runs of one setting on several texts (seed_groups.text_labels)


def validation_text(run_dir: Path) -> tuple[str, ...]:
    """What the run's validation loss was measured on, as its saved config's data settings say,
    resolved as the run read them: equal for two runs of the same text (all runs alike where no
    config was saved). `${paths.data_dir}/...` is the folder the saved config records (runs of two
    CHARGPT_DATA_DIRs read two files under one setting); a setting read through a resolver
    (`${oc.env:CORPUS}`, the run's environment, not the report's; a run before 2026-12-05 recorded
    its data folder so) is the path its last checkpoint records it read, else as written; a file
    named relative is named from where the run was launched (the jobs a sweep's continue command
    started name it absolute, its first jobs as typed)."""
    config = saved_config_node(run_dir)
    data = config.get("data") if config is not None else None
    if data is None or not OmegaConf.is_dict(data):
        return tuple("None" for _ in TEXT_SETTINGS)
    written = OmegaConf.to_container(data, resolve=False)
    marked = OmegaConf.create(_resolvers_marked(OmegaConf.to_container(config, resolve=False)))
    cwd = _first_launch_cwd(run_dir)
    text = []
    for key in TEXT_SETTINGS:
        value = written.get(key)  # type: ignore[union-attr]
        with contextlib.suppress(OmegaConfBaseException):  # one that does not resolve: as written
            value = OmegaConf.select(marked, f"data.{key}", throw_on_missing=False)
        if _UNRESOLVED in str(value):
            read = _checkpoint_path(run_dir) if key == "path" else None
            value = read or written.get(key)  # type: ignore[union-attr]
        text.append(_file_named_absolute(value, cwd) if key in _TEXT_FILES else str(value))
    return tuple(text)


_TEXT_FILES = ("path", "val_path")  # TEXT_SETTINGS that name a file, as typed from where the run was launched
_RESOLVER = re.compile(r"\$\{\s*[\w.-]+\s*:")  # `${oc.env:...}`, where `${paths.data_dir}` names a setting
_UNRESOLVED = "\x00read through a resolver"


def _resolvers_marked(node: Any) -> Any:
    """A config's plain containers with each value that calls a resolver replaced by _UNRESOLVED:
    resolved, a setting that reads one (`${paths.data_dir}/a.txt` of `${oc.env:...}`) holds it."""
    if isinstance(node, dict):
        return {key: _resolvers_marked(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolvers_marked(value) for value in node]
    return _UNRESOLVED if isinstance(node, str) and _RESOLVER.search(node) else node


def _file_named_absolute(value: Any, cwd: str | None) -> str:
    """A text file's setting named absolute from `cwd`, where the run was launched."""
    if not isinstance(value, str) or not value or "${" in value or cwd is None:
        return str(value)
    return launched_path(value, cwd)


def _checkpoint_path(run_dir: Path) -> str | None:
    """The path of the text the run read, as its last checkpoint records it (None where none)."""
    checkpoint = last_checkpoint(run_dir)
    return None if checkpoint is None else checkpoint_corpus_path(checkpoint)


def chosen_shape(run_dir: Path) -> str | None:
    """The shape model=auto chose for the run (`4x192 h6 ctx128 b8`), from its budget.json."""
    auto = read_json_object(run_dir / BUDGET_FILE).get("auto")
    chosen = auto.get("chosen") if isinstance(auto, dict) else None
    shape = chosen.get("shape") if isinstance(chosen, dict) else None
    return shape if isinstance(shape, str) else None


def run_row(run_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    metrics = read_json_object(run_dir / METRICS_FILE)
    status = read_status(run_dir)
    return {
        "run": run_name(run_dir, sweep_dir),
        "overrides": parse_overrides(run_dir),
        "added": added_keys(run_dir),
        "recorded_seed": recorded_seed(run_dir),
        "chosen_shape": chosen_shape(run_dir),
        "text": validation_text(run_dir),  # not a column: which runs' losses compare
        "status": run_status(run_dir, status, metrics),
        **figures_of(metrics),
        "error": status.get("error", ""),
        "dir": run_dir,  # not a column: where a stopped run resumes from
    }


def natural_order(text: str) -> list[Any]:
    """A sort key that reads the numbers in `text` as numbers: run 10 comes after run 9, not 1."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def sort_rows(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Best first: lowest loss or wall time, highest throughput; runs without the figure last."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        value = row.get(by)
        if by == "run" or value is None or (isinstance(value, float) and math.isnan(value)):
            return (by != "run", 0.0, natural_order(row["run"]))
        return (False, -value if by in HIGHER_IS_BETTER else value, natural_order(row["run"]))

    return sorted(rows, key=key)


def flat_rows(
    rows: list[dict[str, Any]], texts: list[str] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """One column per override key (in order of first appearance), then the figures. `seed` is
    the seed each run trained with: its override, else the one its saved config records (as the
    settings' table counts it), so a sweep that set no seed still has the column. `auto_shape`:
    the shape each model=auto run chose. `texts`: each run's text, a TEXT column before the
    settings, the last left out of a narrow table: it alone tells runs of one setting apart
    (seed_groups.text_labels)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row["overrides"] if k not in keys]
    if SEED not in keys and any(row.get("recorded_seed") is not None for row in rows):
        keys.append(SEED)
    if any(row.get("chosen_shape") for row in rows):  # model=auto runs: what each chose
        keys.append(AUTO_SHAPE)
    columns = ["run", *([TEXT] if texts else []), *keys, "status", *METRIC_COLUMNS, "error"]
    flat = [{"run": r["run"], **{k: _setting(r, k) for k in keys}, **r, **({TEXT: text} if texts else {})}
            for r, text in zip(rows, texts or [None] * len(rows), strict=True)]
    return columns, [{c: row.get(c) for c in columns} for row in flat]


# A removal's column (`~callbacks.progress_bar`) in a run that kept the setting, on screen and in the
# CSV: the runs that removed it have its empty value, so an empty cell would read as removed too.
KEPT = "-"


def _setting(row: dict[str, Any], key: str) -> str:
    """The run's value of a setting column; empty where its launch did not give it, KEPT where it
    did not remove it."""
    if key == SEED and SEED not in row["overrides"]:
        return row.get("recorded_seed") or ""
    if key == AUTO_SHAPE:
        return row.get("chosen_shape") or ""
    return given_value(row["overrides"], key)


def given_value(overrides: dict[str, str], key: str) -> str:
    """The value these overrides give the setting column `key`: empty where they do not give it,
    KEPT where they do not remove it."""
    return overrides.get(key, KEPT if key.startswith("~") else "")


def varying(
    columns: list[str], rows: list[dict[str, Any]], swept: Collection[str] = ()
) -> tuple[list[str], dict[str, Any]]:
    """The columns without the settings all runs share, and those. A `swept` setting is never
    shared: a sweep stopped after its first value has one value of it so far, not a fixed one."""
    overrides = columns[1 : columns.index("status")]
    shared = {c: rows[0][c] for c in overrides if c not in swept and len({str(r[c]) for r in rows}) == 1}
    return [c for c in columns if c not in shared], shared


IN_FOLDER = "…/"  # a value shown without the folder all the values share


def common_folder(key: str, values: Iterable[str]) -> str:
    """The folder that every one of these values of the setting `key` lies under, as written, with
    its last `/`: `/home/me/corpora/`; empty unless `key` names a file or folder (a prompt's `and/or`
    is no folder), there are two different values and the folder is longer than IN_FOLDER. A sweep
    over files of one folder is told apart by what follows it, where a column or a label cut to its
    width showed only the folder, the same in every run."""
    if not is_path_key(key):
        return ""
    distinct = {value for value in values if value}
    if len(distinct) < 2:
        return ""
    # The first and last in sorted order share what all of them share (compared as text, not as
    # path parts: a relative and an absolute path share nothing, without an error).
    first, last = min(distinct), max(distinct)
    same = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
    folder = first[: first.rfind("/", 0, same) + 1]
    return folder if len(folder) > len(IN_FOLDER) else ""


def in_folder(value: str, folder: str) -> str:
    """`value` without `folder` (common_folder's), marked by IN_FOLDER."""
    return IN_FOLDER + value[len(folder):] if folder and value.startswith(folder) else value


def short_number(text: str, longer_than: int = 12) -> str:
    """A search's draw (0.0004385317893614137) to 6 significant digits where it is shown (a table's
    column, a curve's label), when longer than `longer_than`; any other text as it is."""
    if len(text) <= longer_than or not any(c in text for c in ".eE"):  # a long whole number: a seed
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.6g}" if math.isfinite(number) else text


def readable_draws(values: Iterable[str]) -> dict[str, str]:
    """A search's draws among one setting's `values` (0.0013372818287411345, recorded with every
    digit), all to one count of significant digits, the fewest, 3 at least, at which no two of that
    setting's numbers read alike (a whole part is kept whole): 0.00409 and 0.00110, or 0.001337,
    0.001340 and 0.004093 where 3 digits would show two draws as 0.00134; {value: as shown}. A
    trailing zero is a digit shown (0.00340, not 0.0034), and each draw of a column has as many: a
    shorter one read as a coarser draw. A number of 6 digits or fewer (0.1, 1e-3, as typed) is no
    draw and stays as it is; so does each part of a resumed run's `first→latest` that is none."""
    values = {str(value) for value in values}
    numbers: dict[str, float] = {}
    for part in {part for value in values for part in value.split("→")}:
        with contextlib.suppress(ValueError):
            if math.isfinite(number := float(part)):
                numbers[part] = number
    draws = {part: number for part, number in numbers.items()
             if any(c in part for c in ".eE") and _significant_digits(part) > 6}
    digits = _digits_telling_apart(list(draws.values()), set(numbers.values()))
    shown = {part: _to_digits(number, digits) for part, number in draws.items()}
    readable = {value: "→".join(shown.get(part, part) for part in value.split("→")) for value in values}
    return {value: text for value, text in readable.items() if text != value}


def _digits_telling_apart(draws: list[float], numbers: set[float]) -> int:
    """The fewest significant digits, 3 at least, at which each of `draws` rounds to a number none
    of the other `numbers` rounds to (17 give any float back)."""
    for digits in range(3, 17):
        if all(float(f"{other:.{digits}g}") != float(f"{draw:.{digits}g}")
               for draw in draws for other in numbers - {draw}):
            return digits
    return 17


def _to_digits(number: float, digits: int) -> str:
    """`number` to `digits` significant digits, its trailing zeros kept (0.00340), its whole part
    whole (1234.5 at 3 digits is 1235, not 1.23e+03)."""
    whole_digits = len(str(int(abs(number)))) if abs(number) >= 1 else 0
    return f"{number:#.{max(digits, whole_digits)}g}".rstrip(".")


def _significant_digits(number: str) -> int:
    """The significant digits a number is written with: 17 in 0.0013372818287411345, 1 in 1e-3."""
    mantissa = re.split("[eE]", number)[0]
    return len(re.sub(r"[^0-9]", "", mantissa).lstrip("0"))
