"""Continuing one run: the command that resumes it from its last checkpoint, and that command's
overrides made ready for Hydra (the run's own folder, a new config folder beside its first).

Torch-free, so that chargpt-report can tell a stopped run's resume command without loading torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from chargpt import shell_words
from chargpt.data.sources.hf_datasets import LOCAL_BUILDERS
from chargpt.data.sources.paths import expand_path, path_as_read
from chargpt.files import write_json_atomic
from chargpt.hydra_run import config_folders_given, task_overrides
from chargpt.overrides import (
    absolute_overrides,
    as_typed,
    hydra_quoted,
    literal_value,
    override_key,
    sweep_item,
)
from chargpt.run_layout import (
    CONFIG_DIR,
    ENVIRONMENT_FILE,
    OVERRIDES_FILE,
    RECORDED_VARIABLES,
    composed_data_name,
    holds_run,
    launch_cwd,
    overrides_files,
    read_launch,
    read_overrides,
    recorded_environment,
    relative_callback_folders,
    run_dir_of,
    written_by,
)
from chargpt.runs.continuation import resume_subdir

CKPT_PATH = ("ckpt_path=", "+ckpt_path=", "++ckpt_path=")
# Overrides that launch a search: a trial continues as one run, with the values it was given.
SEARCH_GROUPS = ("hparams_search",)


def resume_command(
    run_dir: str | Path, overrides: list[str] | None = None, cwd: str | None = None, typed: bool = False,
    config_folders: list[str] | None = None, environment: dict[str, str] | None = None,
    data_name: str | None = None, changed: list[str] | None = None, checkpoint: Path | None = None,
) -> str:
    """The command that continues this run (`overrides`: this job's, by default, as Hydra recorded
    them; `typed`: as a user types them, a recorded command line's): the same overrides, with
    ckpt_path at its directory. Files and folders named relative to `cwd`, where the run was
    launched (this job's, by default), are named absolute: the command works from anywhere.
    `config_folders`: the words that give the run's own config folders (config_folders_given;
    this job's, by default), without which its options of those folders are not found.
    `environment`: the variables the command sets (process_environment; this job's, by default).
    `data_name`: the data.name its config composed (the run's saved config's, by default), which
    says whether a data.data_files it was given names local files. `changed`: settings that replace
    the run's own of the same key, in its place (added where it gave none): the smaller batch a run
    that ran out of memory continues with. `checkpoint`: the file of the run it goes on from, where
    the run's folder gives none (an older best: run_layout.last_checkpoint)."""
    if overrides is None and HydraConfig.initialized():
        overrides, cwd = task_overrides(), HydraConfig.get().runtime.cwd
        environment = process_environment() if environment is None else environment
    if config_folders is None and HydraConfig.initialized():
        config_folders = config_folders_given(HydraConfig.get())
    given = [o if typed else as_typed(o) for o in overrides or []
             if not o.startswith(CKPT_PATH) and override_key(o) not in (*SEARCH_GROUPS, "hydra.searchpath")]
    # A checkpoint callback's folder named from where the run was launched (dirpath: cc1), named so
    # from anywhere: its run goes on writing there (as a file's setting is, absolute_overrides).
    changed = [*(changed or []), *(f"++callbacks.{key}.dirpath={sweep_item(str(folder))}"
                                   for key, folder in relative_callback_folders(Path(run_dir)))]
    if checkpoint is not None and run_dir_of(Path(checkpoint)).resolve() != Path(run_dir).resolve():
        # (its callback wrote it elsewhere, dirpath: cc1: ckpt_path alone would go on in a new folder)
        changed = [*(changed or []), f"hydra.run.dir={run_dir}"]
    for setting in changed or []:
        keys = [override_key(o) for o in given]
        if override_key(setting) in keys:
            given[keys.index(override_key(setting))] = setting
        else:
            given.append(setting)
    if data_name is None:
        data_name = composed_data_name(Path(run_dir) / CONFIG_DIR)
    kept = absolute_overrides(given, cwd, LOCAL_BUILDERS, data_name)
    words = ["chargpt-train", *(config_folders or []), *kept, f"ckpt_path={checkpoint or run_dir}"]
    return " ".join([*shell_words.assignments(environment or {}), shell_words.join(words)])


def recorded_resume_command(run_dir: Path, overrides_file: Path | None = None,
                            checkpoint: Path | None = None) -> str:
    """The command that resumes the run in `run_dir` as its launch recorded in `overrides_file`
    has it (its latest launch's, by default): its overrides, named from where it was launched, its
    own config folders (config_folders_given, from the hydra.yaml beside; none where that cannot be
    read) and the variables it set (recorded_environment: the PYTHONPATH of its own code).
    `checkpoint`: the file it goes on from, where the run's folder gives none (resume_command)."""
    if overrides_file is None:
        overrides_file = overrides_files(run_dir)[-1]
    try:
        folders = config_folders_given(read_launch(overrides_file.parent))
    except Exception:  # missing or unreadable: the resume command names the folders it can
        folders = []
    return resume_command(run_dir.resolve(), read_overrides(overrides_file),
                          launch_cwd(overrides_file.parent), config_folders=folders,
                          environment=recorded_environment(overrides_file.parent),
                          checkpoint=checkpoint and checkpoint.resolve())


def this_process_environment() -> list[str]:
    """The environment a command continuing this process's run needs again (`NAME=value` words)."""
    return shell_words.assignments(process_environment())


def process_environment() -> dict[str, str]:
    """The variables a command continuing this process's run needs again, by name.
    W&B's mode is no setting of the run's but decides where it logs: an offline run resumed online
    would need a login, and log the rest of its run apart from its first part. PYTHONPATH, where
    the run imported code from its folders (a logger or callback of one's own, `_target_:
    my_loggers.Mine`): a new shell without it cannot import that code. Its folders are named
    absolute, as the command's files are: it works from anywhere."""
    needed = {"WANDB_MODE": os.environ.get("WANDB_MODE"),
              "PYTHONPATH": os.pathsep.join(_python_path_imported_from())}
    # (RECORDED_VARIABLES: all that a run's record keeps, and so all that its report reads back.)
    return {name: value for name in RECORDED_VARIABLES if (value := needed[name])}


def record_environment(run_dir: str | Path) -> None:
    """Keep this launch's process_environment beside its overrides (when it needs any), so that
    chargpt-report's resume command sets it as this process's own printed command does. Called once
    the run is built: the code of one's own it imports (its loggers', callbacks') is imported by then."""
    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else None
    if subdir and (variables := process_environment()):
        write_json_atomic(Path(run_dir) / subdir / ENVIRONMENT_FILE, variables)


def _python_path_imported_from() -> list[str]:
    """PYTHONPATH's folders, absolute (an empty entry is the folder Python started in), where this
    process imported a module from one of them; none otherwise."""
    given = os.environ.get("PYTHONPATH")
    if not given:
        return []
    cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    folders = [os.path.normpath(os.path.join(cwd, folder)) for folder in given.split(os.pathsep)]
    # A module is imported through the folder its name starts in: an editable install's src/ or a
    # virtual environment under a PYTHONPATH folder is not that folder.
    roots = {_import_root(name, module) for name, module in list(sys.modules.items())}
    return folders if roots & set(folders) else []


def _import_root(name: str, module: object) -> str | None:
    """The folder a module's name starts in: FOLDER for `FOLDER/a/b.py` as `a.b` or
    `FOLDER/a/b/__init__.py` (a folder without `__init__.py` too: a namespace package's module)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file:
        return None
    folder = os.path.dirname(os.path.normpath(os.path.abspath(file)))
    package = 1 if os.path.basename(file).startswith("__init__.") else 0
    for _ in range(name.count(".") + package):
        folder = os.path.dirname(folder)
    return folder


def resume_overrides(argv: list[str]) -> list[str]:
    """`ckpt_path=RUN` (also `+ckpt_path=`, `++ckpt_path=`, or a checkpoint inside RUN) resumes into
    the run's own folder: point Hydra's run dir there, and keep the first config (the resumed
    config goes to a new .hydra/resume-* folder), also when hydra.run.dir names RUN itself or RUN
    holds no checkpoint (that resume is refused, and must not replace the first config). So too a
    checkpoint its callback wrote outside RUN's checkpoints/ (`dirpath: cc1`, run_layout.written_by)
    with `hydra.run.dir=RUN` naming the run. Anything else (a loose checkpoint file, a folder that
    holds no run) continues in a new run folder, and nothing is written beside it. argv holds values
    as the shell handed them over."""
    if any(a in ("-m", "--multirun") or a.startswith(("hydra.mode=", "hydra.output_subdir=")) for a in argv):
        return argv
    value = next((a.split("=", 1)[1] for a in argv if a.startswith(CKPT_PATH)), None)
    if not value or value.lower() == "null":
        return argv
    # Read as Hydra will read it (quoted, or with its escapes): the run it names is resumed in place.
    target = Path(expand_path(path_as_read("ckpt_path", value)))
    given = next((a for a in argv if a.startswith("hydra.run.dir=")), None)
    named = Path(expand_path(literal_value(given))) if given and "${" not in literal_value(given) else None
    if named is not None and target.is_file() and holds_run(named) and written_by(named, target) \
            and run_dir_of(target).resolve() != named.resolve():
        # A checkpoint its callback wrote outside the run's checkpoints/ (dirpath: cc1), with the
        # run's folder named: the run goes on there, its first config kept.
        return [*argv, f"hydra.output_subdir={resume_subdir(named)}"]
    run_dir = target if target.is_dir() else run_dir_of(target)
    if not (holds_run(run_dir) or (run_dir / CONFIG_DIR / OVERRIDES_FILE).is_file()):
        return argv  # train() reports a folder without a checkpoint
    extra = [] if given else [f"hydra.run.dir={hydra_quoted(str(run_dir.resolve()))}"]
    if given:
        folder = literal_value(given)
        if "${" in folder or Path(expand_path(folder)).resolve() != run_dir.resolve():
            return argv  # another folder: a continuation there starts its own config
    return [*argv, *extra, f"hydra.output_subdir={resume_subdir(run_dir)}"]
