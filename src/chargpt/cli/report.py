"""chargpt-report SWEEP_DIR: one table of every run of a sweep, best first, then one of its settings
(runs differing only in seed grouped: mean ± std, within noise of the best or not), printed and as CSV."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.report: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("report")

import argparse
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from chargpt import shell_words
from chargpt.cli import CONFIG_PATH
from chargpt.cli.exits import clean_exits, raising_on_sigterm
from chargpt.errors import exit_on_user_error, exit_usage
from chargpt.runs.report import report
from chargpt.runs.report_figures import SORT_CHOICES
from chargpt.runs.report_files import missing_folder


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, as every chargpt command's errors (argparse prints its usage block first).
        exit_usage(f"{message}; see chargpt-report --help")


def _check_no_hydra_flags(args: list[str]) -> None:
    """The other commands are Hydra apps: their flags (--info, --cfg job, -m, --shell-completion),
    typed here, were read as a missing folder or an unknown argument, which named no way out."""
    from chargpt.hydra_internals import hydra_options  # the flags Hydra's commands take

    hydra_flags = set(hydra_options()) - {"-h", "--help", "--version"}
    if flag := next((arg for arg in args if arg.partition("=")[0] in hydra_flags), None):
        exit_usage(f"{flag} is a flag of chargpt's Hydra commands (chargpt-train, -sample, -eval, -export, "
                   "-serve), not of chargpt-report, which takes a sweep's folder, --csv and --sort; see "
                   "chargpt-report --help")


def _check_not_a_setting(typed: str, sweep_dir: Path) -> None:
    """`chargpt-report seed=1,2`, as the other commands take settings, was "seed=1,2 does not exist".
    A path typed from here, the root or home (`./`, `/`, `~`), or through a folder that exists or
    that names no config group, is a path, missing: a sweep's job folder is named by its settings
    with hydra.sweep.subdir=${hydra.job.override_dirname} (`runs/lr=0.1`; `hydra/launcher=joblib`
    is a setting)."""
    key = typed.partition("=")[0]
    if typed.startswith(("./", "../", "/", "~/")) or sweep_dir.exists():
        return
    if "/" in key and (Path(key.split("/")[0]).exists() or not _names_a_group(key)):
        return
    if re.fullmatch(r"[+~]{0,2}[\w.\-/@]+=.*", typed, re.DOTALL):
        exit_usage(f"{typed} is a setting, which chargpt-report does not take: it reports the runs of "
                   "a sweep's folder, each with the settings it ran with (chargpt-report "
                   "outputs/multirun/...); see chargpt-report --help")


def _names_a_group(key: str) -> bool:
    """Whether `key` (GROUP/NAME) starts with a config group of Hydra's or chargpt's."""
    first = key.lstrip("+~").split("/")[0]
    return first == "hydra" or (Path(CONFIG_PATH) / first).is_dir()


def _sweep_dir(typed: str) -> Path:
    """The sweep's folder as typed (_path), refused where it is a setting (_check_not_a_setting)."""
    sweep_dir = _path(typed)
    _check_not_a_setting(typed, sweep_dir)
    return sweep_dir


def _path(text: str) -> Path:
    """A path as typed, `~` expanded as pandas' to_csv and read_csv expand it (a quoted `"~/out"` is
    no folder named `~`); an empty one (an unset shell variable: `--csv "$OUT"`) would be read as the
    current folder."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    return Path(os.path.expanduser(text))


def _file_path(text: str) -> Path:
    """A file's path: one ending in a slash names a folder, which Path would read as a file."""
    if text.endswith(("/", os.sep)):
        folder = _path(text)
        create = "" if folder.is_dir() else f"create it ({missing_folder(folder)}) and "
        raise argparse.ArgumentTypeError(
            f"{text} names a folder{', which does not exist' if create else ''}; {create}name the CSV file "
            f"in it, such as --csv {shell_words.quote(text + 'report.csv')}")
    return _path(text)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = _Parser(
        prog="chargpt-report",
        description="One table of the runs of a sweep, best first, and one of its settings "
        "(mean ± std over seeds, within noise of the best or not), printed and as CSV.",
    )
    parser.add_argument("sweep_dir", type=_sweep_dir, help="a multirun directory (or any folder of runs)")
    parser.add_argument(
        "--csv", type=_file_path, default=None,
        help="CSV path (default: SWEEP_DIR/report.csv); beside it the settings' table, NAME_groups.csv, "
        "and the validation-loss curves, NAME_curves.png (a report replaces only its own files)",
    )
    parser.add_argument("--sort", choices=SORT_CHOICES, default="best_val_loss", help="the ranking metric")
    typed = sys.argv[1:] if argv is None else argv
    _check_no_hydra_flags(typed)
    args = parser.parse_args(typed)
    with clean_exits(), raising_on_sigterm():  # SIGTERM: one line and exit 143, as Ctrl-C's 130
        report(args.sweep_dir, args.csv, args.sort)
