"""What a run directory holds, by name: its checkpoints, its status and its metrics, and Hydra's
record of each launch into it (its overrides, its own settings, its config).

Torch-free and below everything that reads or writes runs (checkpoints, training, the report), so
each of them finds a run's files the same way.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from chargpt.checkpoint_step import checkpoint_step, checkpoint_writer
from chargpt.files import read_json_object

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
# The best checkpoints' names (configs/callbacks/model_checkpoint.yaml); Lightning adds -vN to one taken.
BEST_NAME = re.compile(r"best-(\d+)(?:-v\d+)?\.ckpt")
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
VAL_STEP = "val_step"  # in metrics.json and a checkpoint's RunMetrics state: the step val_loss is of
BUDGET_FILE = "budget.json"
LOG_FILE = "train.log"  # Hydra appends its log to it (configs/hydra/job_logging/chargpt.yaml)
SWEEP_CONFIG = "multirun.yaml"  # Hydra's record of a sweep, in the sweep's folder
# A run's (or sweep's) lock, held for as long as it runs: its owner's pid, written as it claims the
# folder (runs/claims.py)
LOCK_FILE = ".chargpt.lock"
# Hydra's record of a run's first launch (its output_subdir): the command line's overrides, Hydra's
# own settings (the mode, where it was launched from) and the composed config. A later launch
# into the folder (a resume, a continued sweep's job) keeps its own in CONFIG_DIR/resume-<time>.
CONFIG_DIR = ".hydra"
OVERRIDES_FILE = "overrides.yaml"
HYDRA_FILE = "hydra.yaml"
SAVED_CONFIG = "config.yaml"
RESUME_PREFIX = "resume-"
# Beside a launch's overrides: the variables its resume command sets (runs/resume.py record_environment).
ENVIRONMENT_FILE = "environment.json"
# The only variables kept there (runs/resume.py process_environment), and the only ones read back: a
# run folder from someone else could name others, which a printed command would run as shell code.
RECORDED_VARIABLES = ("WANDB_MODE", "PYTHONPATH")


class NotOverrides(ValueError):
    """An overrides.yaml that holds something else than a list of overrides."""


class RunFolders(NamedTuple):
    """The run folders under a folder (itself included), each list sorted."""

    recorded: list[Path]  # each that Hydra recorded a first launch in (its CONFIG_DIR/OVERRIDES_FILE)
    # Each with no record of its first launch's settings: launched with hydra.output_subdir=null
    # (resumed since or not: a resume keeps its record in a sub-folder of CONFIG_DIR), known by its
    # checkpoints or its status beside its log.
    unrecorded: list[Path]


def run_folders(folder: Path) -> RunFolders:
    """The run folders under `folder`, recorded or not, in one walk of its tree (a sweep's jobs each
    hold checkpoints and event files: a walk per kind of file read them all again)."""
    recorded, holding_run_files = set(), set()
    for parent, dirs, files in os.walk(folder):  # (as Path.rglob: a linked folder is not entered)
        here = Path(parent)
        present = {name for name in (OVERRIDES_FILE, STATUS_FILE, CHECKPOINT_DIR)  # a broken link is none
                   if (name in dirs or name in files) and (here / name).exists()}
        if OVERRIDES_FILE in present and here.name == CONFIG_DIR:
            recorded.add(here.parent)
        if STATUS_FILE in present or CHECKPOINT_DIR in present:
            holding_run_files.add(here)
    unrecorded = [run for run in holding_run_files
                  if not (run / CONFIG_DIR / OVERRIDES_FILE).is_file() and is_run_folder(run)]
    return RunFolders(sorted(recorded), sorted(unrecorded))


def find_runs(folder: Path) -> list[Path]:
    """The run folders under `folder` (itself included): each that Hydra recorded a first launch in
    (a resumed run keeps its resumes' records in sub-folders of its own)."""
    return run_folders(folder).recorded


def is_resume_config(config_dir: str | Path) -> bool:
    """Whether a launch's config folder is a later launch's (CONFIG_DIR/resume-*), not the first's."""
    return Path(config_dir).name.startswith(RESUME_PREFIX)


def launch_files(run_dir: Path, name: str) -> list[Path]:
    """One of Hydra's files (`name`: overrides.yaml, config.yaml) of the first launch into `run_dir`,
    then each resume's, oldest first (`resume-<YYYYmmdd-HHMMSS>`)."""
    records = run_dir / CONFIG_DIR
    return [records / name, *sorted(records.glob(f"{RESUME_PREFIX}*/{name}"))]


def overrides_files(run_dir: Path) -> list[Path]:
    """The first launch's overrides, then each resume's, oldest first."""
    return launch_files(run_dir, OVERRIDES_FILE)


def read_overrides(file: Path) -> list[str]:
    """The overrides a launch recorded (an overrides.yaml), as written. Raises what reading raises
    (the OS's, YAML's, OmegaConf's errors) for a file that cannot be read, NotOverrides for one
    that holds no list."""
    items = OmegaConf.to_container(OmegaConf.load(file)) or []
    if not isinstance(items, list):
        raise NotOverrides(f"{file} is not a list of overrides")
    return [str(item) for item in items]


def recorded_environment(config_dir: Path) -> dict[str, str]:
    """The variables a launch's resume command sets again, as it kept them beside its overrides
    (runs/resume.py record_environment); none where it kept none or they cannot be read. Only
    RECORDED_VARIABLES, each with a text value: any other name is not chargpt's, and is left out."""
    variables = read_json_object(config_dir / ENVIRONMENT_FILE)
    return {name: value for name, value in variables.items()
            if name in RECORDED_VARIABLES and isinstance(value, str)}


def read_launch(config_dir: Path) -> Any:
    """Hydra's own settings of a launch (the `hydra` node of its hydra.yaml, in `config_dir`: a
    run's CONFIG_DIR or a resume's). Raises what reading raises for a missing or unreadable one."""
    return OmegaConf.load(config_dir / HYDRA_FILE).hydra


def launch_cwd(config_dir: Path) -> str | None:
    """Where a launch was made from, as the Hydra record in `config_dir` (a run's `.hydra`, or a
    resume's `.hydra/resume-*`) says."""
    try:
        return str(read_launch(config_dir).runtime.cwd)
    except Exception:
        return None


def launched_with(run_dir: Path, group: str) -> str | None:
    """The option of a config group (experiment=NAME, optimizer=NAME) a run was launched with, as
    Hydra recorded it; None when unrecorded or unreadable."""
    try:
        choice = OmegaConf.select(read_launch(run_dir / CONFIG_DIR), f"runtime.choices.{group}")
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):
        return None
    return str(choice) if choice else None


def last_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run goes on from: its last.ckpt (in its checkpoints/ folder, or beside it),
    unless it holds an earlier step than the run's metrics.json says it reached and a
    best-<step>.ckpt at that step is there (a run killed while it rewrote last.ckpt just after that
    best). Steps, not file times: a copied run folder (cp -r) gives its files new times, in the
    order it copied them. An older best never stands in: going on from it would train the run's
    later steps again."""
    last = next((c for c in (run_dir / CHECKPOINT_DIR / LAST, run_dir / LAST) if c.is_file()), None)
    bests = best_checkpoints(run_dir)
    if not bests:
        return last
    reached = read_json_object(run_dir / METRICS_FILE).get("step")
    at_reached = sorted((c for c, step in bests.items() if step == reached and c.is_file()),
                        key=_best_version)
    held = None if last is None else checkpoint_step(last)
    if not at_reached or (held is not None and held >= reached):
        return last
    return at_reached[-1]  # (Lightning names a second best of one step best-<step>-v1)


def best_checkpoints(run_dir: Path) -> dict[Path, int]:
    """A run's best-<step>.ckpt files, each with the step its name says."""
    return {c: int(m[1]) for c in (run_dir / CHECKPOINT_DIR).glob("best-*.ckpt")
            if (m := BEST_NAME.fullmatch(c.name))}


def newest_best(run_dir: Path) -> Path | None:
    """A run's best-<step>.ckpt of the latest step (of a step's several, Lightning's latest -vN)."""
    bests = best_checkpoints(run_dir)
    return max(bests, key=lambda best: (bests[best], _best_version(best)), default=None)


def _best_version(best: Path) -> int:
    version = re.search(r"-v(\d+)\.ckpt$", best.name)
    return int(version[1]) if version else 0


def _has_checkpoints(folder: Path) -> bool:
    checkpoints = folder / CHECKPOINT_DIR
    return checkpoints.is_dir() and any(checkpoints.glob("*.ckpt"))


def holds_run(folder: Path) -> bool:
    """Whether a folder holds a run that trained: its metrics, or a checkpoint."""
    return (folder / METRICS_FILE).is_file() or _has_checkpoints(folder)


def is_run_folder(folder: Path) -> bool:
    """Whether a folder is chargpt's own output, a run's or a sweep's: Hydra's records of it, or,
    for a run launched without them (hydra.output_subdir=null), its checkpoints or its status
    beside its log. (A metrics.json alone may be anyone's: a folder of texts holding one is read.)"""
    return ((folder / CONFIG_DIR).is_dir() or (folder / SWEEP_CONFIG).is_file() or _has_checkpoints(folder)
            or ((folder / STATUS_FILE).is_file() and (folder / LOG_FILE).is_file()))


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (the parent of its checkpoints/ folder)."""
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.parent


def run_of(checkpoint: Path) -> Path:
    """The folder of the run that wrote a checkpoint, whose records (its saved config, budget.json) a
    resume or a read of it goes by: the run it records as its writer, where that run holds it or its
    saved config gives a checkpoint callback the folder it lies in (dirpath: cc1, outside the run);
    else the run it lies in (run_dir_of: a checkpoint from before the record, a run folder copied)."""
    writer = checkpoint_writer(checkpoint)
    return writer if writer is not None and written_by(writer, checkpoint) else run_dir_of(checkpoint)


def saved_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's config as Hydra saved it at the start (.hydra/config.yaml), as plain containers with
    its interpolations unresolved; empty when it has none (hydra.output_subdir=null) or it cannot
    be read."""
    loaded = _loaded_config(Path(run_dir) / CONFIG_DIR / SAVED_CONFIG)
    saved = None if loaded is None else OmegaConf.to_container(loaded)
    return saved if isinstance(saved, dict) else {}


def saved_config_node(run_dir: str | Path) -> Any:
    """A run's saved config as OmegaConf loads it, its interpolations resolvable against it; None
    when it has none or it cannot be read."""
    loaded = _loaded_config(Path(run_dir) / CONFIG_DIR / SAVED_CONFIG)
    return loaded if OmegaConf.is_dict(loaded) else None


def _loaded_config(file: Path) -> Any:
    """A config file Hydra saved, as OmegaConf loads it; None when missing or unreadable."""
    try:
        return OmegaConf.load(file)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):
        return None


class WrittenElsewhere(NamedTuple):
    """A checkpoint a run's checkpoint callback wrote outside the run's folder (checkpoints_elsewhere)."""

    callback: str  # its key under callbacks
    dirpath: str  # as the config gave it
    file: Path


def checkpoints_elsewhere(run_dir: Path) -> WrittenElsewhere | None:
    """The newest checkpoint a run's checkpoint callback wrote in a folder of its own (a dirpath
    other than the run's checkpoints/, `+callbacks.NAME={..., dirpath: DIR}`), by the run's saved
    config: its last.ckpt, else its checkpoint of the latest step; None where there is none. Only
    a file that records this run as its writer: another run's callback may write in that folder
    too (the same relative dirpath, launched from the same folder)."""
    for key, raw, folder in _folders_elsewhere(run_dir):
        written = sorted((c for c in folder.glob("*.ckpt") if _wrote(run_dir, c)),
                         key=lambda c: (c.name == LAST, checkpoint_step(c) or -1))
        if written:
            return WrittenElsewhere(key, raw, written[-1])
    return None


def written_by(run_dir: Path, checkpoint: Path) -> bool:
    """Whether `checkpoint` is one the run in `run_dir` wrote: inside its folder (its checkpoints/,
    or a logger's folder where a callback of no dirpath writes), or in the folder its saved config
    gives a checkpoint callback (checkpoints_elsewhere) and recording this run as its writer. A
    resume from it goes on in that run's folder."""
    file = Path(os.path.realpath(checkpoint))
    if file.is_relative_to(os.path.realpath(run_dir)):
        return True
    return in_callback_folder(run_dir, file) and _wrote(run_dir, file)


def in_callback_folder(run_dir: Path, checkpoint: Path) -> bool:
    """Whether `checkpoint` lies in a folder the run's saved config gives a checkpoint callback, outside
    the run's folder (written there by the run, or by another whose callback writes there too)."""
    parent = os.path.dirname(os.path.realpath(checkpoint))
    return any(os.path.realpath(folder) == parent for _, _, folder in _folders_elsewhere(run_dir))


def others_elsewhere(run_dir: Path) -> tuple[WrittenElsewhere, Path] | None:
    """A checkpoint in a folder the run's saved config gives a checkpoint callback that another run
    wrote (a callback of the same dirpath, launched from the same folder), with that run's folder as
    the file records it; None where there is no such file."""
    for key, raw, folder in _folders_elsewhere(run_dir):
        for file in sorted(folder.glob("*.ckpt")):
            writer = checkpoint_writer(file)
            if not _wrote(run_dir, file) and writer is not None:
                return WrittenElsewhere(key, raw, file), writer
    return None


def last_name_in(folder: Path, run_dir: Path) -> Path:
    """The last.ckpt a run's checkpoint callback writes in `folder` outside the run's own, as
    Lightning names it: where another run's last.ckpt is there (a callback of the same dirpath), the
    first last-vN.ckpt that is not, nor anyone else's."""
    file, version = folder / LAST, 0
    while file.exists() and not _wrote(run_dir, file):
        version += 1
        file = folder / f"{Path(LAST).stem}-v{version}.ckpt"
    return file


def _wrote(run_dir: Path, checkpoint: Path) -> bool:
    """Whether a file in a run's callback folder records that run as its writer; one recording none
    (written before checkpoints recorded their run) is taken for the run's, as it was then."""
    writer = checkpoint_writer(checkpoint)
    return writer is None or os.path.realpath(writer) == os.path.realpath(run_dir)


def relative_callback_folders(run_dir: Path) -> list[tuple[str, Path]]:
    """Each checkpoint callback whose dirpath the run's saved config gives relative to where the run
    was launched (`dirpath: cc1`), with the folder it names there: a command pasted in another
    folder would name another one."""
    return [(key, Path(os.path.normpath(folder))) for key, raw, folder in _folders_elsewhere(run_dir)
            if "${" not in raw and not os.path.isabs(os.path.expanduser(raw))]


def _folders_elsewhere(run_dir: Path) -> list[tuple[str, str, Path]]:
    """Each of a run's checkpoint callbacks that its saved config gives a dirpath other than the run's
    checkpoints/: its key, that dirpath as given, and the folder it names. A relative dirpath is from
    where the run was launched (Hydra does not change folder)."""
    config = _loaded_config(run_dir / CONFIG_DIR / SAVED_CONFIG)
    cwd = launch_cwd(run_dir / CONFIG_DIR)
    try:
        callbacks = config.get("callbacks") if config is not None else None
        if not callbacks:
            return []
        config.paths.output_dir = str(run_dir)  # (${hydra:runtime.output_dir}: no Hydra here)
    except (AttributeError, OmegaConfBaseException):  # (a record of another shape)
        return []
    own = {os.path.realpath(run_dir / CHECKPOINT_DIR), os.path.realpath(run_dir)}
    found = []
    for key in callbacks:
        try:
            dirpath = OmegaConf.select(callbacks, f"{key}.dirpath", throw_on_resolution_failure=False)
        except OmegaConfBaseException:
            continue
        if not isinstance(dirpath, str) or not dirpath:
            continue
        folder = Path(os.path.expanduser(dirpath))
        if not folder.is_absolute():
            if cwd is None:
                continue
            folder = Path(cwd) / folder
        if os.path.realpath(folder) not in own:
            raw = OmegaConf.to_container(callbacks[key], resolve=False).get("dirpath")
            found.append((str(key), str(raw), folder))
    return found


def composed_data_name(config_dir: Path) -> str | None:
    """The data.name of the config Hydra saved in `config_dir` (a run's CONFIG_DIR, a resume's, a
    sweep's folder with its SWEEP_CONFIG): the one a config file gave where none was typed; None
    when unrecorded or unreadable."""
    for name in (SAVED_CONFIG, SWEEP_CONFIG):
        if (loaded := _loaded_config(config_dir / name)) is None:
            continue
        try:
            value = OmegaConf.select(loaded, "data.name", default=None)
        except OmegaConfBaseException:  # (a record of another shape)
            continue
        return value if isinstance(value, str) else None
    return None


def log_handlers_in(folder: str | Path) -> list[logging.FileHandler]:
    """The root logger's file handlers that write into `folder` (Hydra's train.log of a run)."""
    folder = Path(os.path.abspath(folder))  # as FileHandler keeps its path
    return [
        h for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).is_relative_to(folder)
    ]
