"""Hydra's own options on a command line (`-m`, `--cfg job`, `--info`, `-sc install=bash`, ...):
where the overrides stand among them, the options written out in full, and what Hydra's parser
(argparse) refuses with its usage page or a traceback, refused in one `error:` line instead. Hydra's
shell completion is served here too: the line being completed is read as the shell typed it.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from chargpt.data.sources.paths import expand_path
from chargpt.errors import ConfigError
from chargpt.hydra_internals import hydra_options, hydra_switches

# Hydra's own options that take a value (the next argument is not an override), each with an
# example of its value for the error when it is missing.
_OPTION_VALUES = {
    "-c": "job", "--cfg": "job", "-p": "model", "--package": "model", "-cp": "PATH", "--config-path": "PATH",
    "-cn": "NAME", "--config-name": "NAME", "-cd": "DIR", "--config-dir": "DIR",
    "--experimental-rerun": "FILE",
}
# Hydra's modes, short name -> long: a command line takes one.
_MODES = {"-r": "--run", "-m": "--multirun", "-c": "--cfg", "-i": "--info", "-sc": "--shell-completion"}
_MODE_NAMES = ("-m (a sweep)", "--cfg (print the config)", "--info", "-r (one run)", "-sc (shell completion)")
COMPLETION_ACTIONS = ("install", "uninstall", "query")  # what Hydra's --shell-completion does
_COMPLETION_SHELLS = ("bash", "zsh", "fish")  # the shells Hydra's completion plugins serve
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
# What only prints and runs nothing: Hydra's help, and its modes that print.
_PRINTING = {"-h", "--help", "--hydra-help",
             *(o for short, long in _MODES.items() if long in ("--cfg", "--info", "--shell-completion")
               for o in (short, long))}


def prints_only(argv: list[str]) -> bool:
    """Whether the command line only prints (--help, --info, --cfg, -sc): it runs nothing."""
    return any(arg.partition("=")[0] in _PRINTING for arg in argv[1:])


@functools.cache
def _hydra_long_options() -> tuple[str, ...]:
    return tuple(o for o in hydra_options() if o.startswith("--"))


_CFG_PARTS = ("job", "hydra", "all")  # what --cfg prints


def check_options(argv: list[str]) -> None:
    """An option Hydra does not have, or a --cfg part it does not print: one error line (its parser,
    argparse, would print its usage page)."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition("=")
        several = [o for o in _hydra_long_options() if o.startswith(flag)] if flag.startswith("--") else []
        if len(several) > 1 and flag not in several:
            raise ConfigError(f"{flag} is short for several options ({', '.join(several)}); write the one "
                              "meant")
        if arg.startswith("-") and flag not in hydra_options():
            raise ConfigError(f"{arg} is not an option of {Path(argv[0]).name}: settings are given as "
                              "key=value, without dashes (--help lists the options)")
        if eq and flag in hydra_switches():  # argparse printed its usage page, or for `-sc=` another option's
            raise ConfigError(_switch_with_value(Path(argv[0]).name, flag, value))
        if flag in ("-c", "--cfg"):
            part = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
            if part is not None and part not in _CFG_PARTS:
                raise ConfigError(f"{flag} {part}: it prints one of {', '.join(_CFG_PARTS)}, e.g. {flag} job")
        i += 2 if arg in _OPTION_VALUES else 1


def _switch_with_value(command: str, flag: str, value: str) -> str:
    """The error for `--multirun=yes`, `-sc=install=bash`: an option of Hydra's that takes no value
    given one with `=`. A completion query typed by hand is advised the install that the query's own
    refusal advises (_check_completion), not a command refused in turn."""
    if flag in ("-sc", "--shell-completion"):
        if (install := _query_by_hand(command, flag, value)) is not None:
            return (f"{flag}={value}: {flag} takes what to do as the next word, not after '='; and {value} "
                    f"is what the installed completion runs as Tab is pressed: install it instead: {install}")
        action = value or "install=bash"
        return (f"{flag}={value}: {flag} takes what to do as the next word, not after '='; write "
                f"-sc {action} (or --shell-completion {action})")
    return f"{flag}={value}: {flag} takes no value; write {flag} alone"


def _full_option(arg: str) -> str:
    """`arg` with an abbreviated long option of Hydra's written out (`--multi` -> `--multirun`,
    `--config-d=x` -> `--config-dir=x`), as Hydra's parser (argparse) would read it; anything else
    as it is. The checks below then see the option whatever way it was typed."""
    flag, eq, value = arg.partition("=")
    if not flag.startswith("--") or len(flag) < 3:
        return arg
    matches = [o for o in _hydra_long_options() if o.startswith(flag)]
    return f"{matches[0]}{eq}{value}" if len(matches) == 1 else arg


def full_options(argv: list[str]) -> list[str]:
    return [*argv[:1], *(_full_option(arg) for arg in argv[1:])]


def override_positions(argv: list[str]) -> Iterator[int]:
    """Indices of the overrides in argv (argv[0] is the program): Hydra's options are skipped."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in _OPTION_VALUES or (arg in ("-i", "--info") and i + 1 < len(argv)
                                          and argv[i + 1] in _INFO_TOPICS):
            i += 2
            continue
        if not arg.startswith("-"):
            yield i
        i += 1


def group_choices(argv: list[str]) -> dict[str, str]:
    """The values a command line's overrides give, by key as typed less its `+` (`hydra/launcher`:
    `slurm`); the last one where a key is given twice."""
    return {key.lstrip("+"): value for i in override_positions(argv)
            for key, _, value in [argv[i].partition("=")]}



def check_option_values(argv: list[str]) -> None:
    """An option that takes a value, given none: one error line (argparse's own refusal, "expected
    one argument", is a usage page)."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg in _OPTION_VALUES and (i + 1 == len(argv) or re.match(r"-[^\d.]", argv[i + 1])):
            raise ConfigError(f"{arg} needs a value after it, e.g. {arg} {_OPTION_VALUES[arg]}")


def check_options_together(out: list[str], overrides: list[str], options: list[str]) -> None:
    """Options that Hydra refuses with its usage page or a traceback only together: --info=TOPIC
    naming no topic, -sc without one action, two modes."""
    for flag, eq, topic in (arg.partition("=") for arg in options):
        if flag in ("-i", "--info") and eq and topic not in _INFO_TOPICS:  # argparse would print its usage
            raise ConfigError(not_an_info_topic(topic))
    # Hydra's shell completion takes one of its actions among the overrides, wherever they stand
    # (`install=bash -sc` is one); none, or two, was its traceback.
    actions = [arg for arg in overrides if arg.partition("=")[0] in COMPLETION_ACTIONS]
    completion = next((arg for arg in options if arg in ("-sc", "--shell-completion")), None)
    if completion is not None:
        _check_completion(os.path.basename(out[0]), completion, actions)
    flags = [arg.partition("=")[0] for arg in options]
    modes = list(dict.fromkeys(f for f in flags if f in _MODES or f in _MODES.values()))
    if len({_MODES.get(mode, mode) for mode in modes}) > 1:  # Hydra's own refusal is a traceback
        raise ConfigError(f"{' and '.join(modes)} cannot be combined: a command runs one of "
                          f"{', '.join(_MODE_NAMES)}; keep one of them")


def _check_completion(command: str, completion: str, actions: list[str]) -> None:
    """Refuse what Hydra's shell completion answers with a traceback: no action or two, a shell it
    has no plugin for, and a query typed by hand (the installed completion runs it as Tab is
    pressed, with the line being completed in COMP_LINE)."""
    if len(actions) != 1:
        raise ConfigError(f"{completion} needs what to do: install=SHELL or uninstall=SHELL (SHELL: "
                          f"{', '.join(_COMPLETION_SHELLS[:-1])} or {_COMPLETION_SHELLS[-1]}), e.g. "
                          f"{_installing(command, completion, 'bash')}"
                          + (f"; one, not {' and '.join(actions)}" if actions else ""))
    if (install := _query_by_hand(command, completion, actions[0])) is not None:
        raise ConfigError(f"{actions[0]} is what the installed completion runs as Tab is pressed, with the "
                          f"line being completed in COMP_LINE; install it instead: {install}")
    action, _, shell = actions[0].partition("=")
    if shell not in _COMPLETION_SHELLS:
        wrong = f"{action} needs the shell it is for:" if not shell else \
            f"{actions[0]} names no shell that {completion} completes for; use"
        raise ConfigError(f"{wrong} {action}=bash, {action}=zsh or {action}=fish, e.g. "
                          f'eval "$({command} {completion} {action}=bash)"')


def _query_by_hand(command: str, completion: str, action: str) -> str | None:
    """Where `action` (ACTION=SHELL) is a query typed by hand, not run by the installed completion
    (which sets COMP_LINE): the install to run instead, for the shell it names (bash where it names
    none Hydra completes for); else None."""
    what, _, shell = action.partition("=")
    if what != "query" or "COMP_LINE" in os.environ:
        return None
    return _installing(command, completion, shell if shell in _COMPLETION_SHELLS else "bash")


def _installing(command: str, completion: str, shell: str) -> str:
    """The command that installs the completion for `shell`, as typed in that shell (fish has no
    `$(...)`: its output is piped into `source`)."""
    if shell == "fish":
        return f"{command} {completion} install=fish | source"
    return f'eval "$({command} {completion} install={shell})"'


def completed_config_dir(argv: list[str]) -> list[str]:
    """For Hydra's shell completion (`-sc query=bash`, which the shell runs with the line being
    typed in COMP_LINE): the `--config-dir DIR` typed on that line, which Hydra reads from the
    query's own command line only, so that an option of one's own folder (`model=<TAB>`) is
    offered. A folder that is not there is left out: Hydra would answer the query with an error.
    Hydra splits the line it completes at its spaces: a word typed with one (`--config-dir "my
    configs"`, `data.path='my text.txt'`) was read as broken overrides, and the query printed an
    error into the line being typed. Those words, and the folder's, are taken off the line it reads
    (Hydra completes none of them)."""
    line = os.environ.get("COMP_LINE")
    if line is None or not {"-sc", "--shell-completion"} & {a.partition("=")[0] for a in argv[1:]}:
        return []
    words = [(m.span(), _as_handed_over(m.group())) for m in _TYPED_WORD.finditer(line)]
    typed, dropped = [], {i for i, (_, word) in enumerate(words) if any(c.isspace() for c in word)}
    for i, (_, word) in enumerate(words):
        flag, eq, value = _full_option(word).partition("=")
        if flag in ("-cd", "--config-dir") and (eq or i + 1 < len(words)):
            typed.append(value if eq else words[i + 1][1])
            dropped |= {i} if eq else {i, i + 1}
    for i in sorted(dropped, reverse=True):
        start, end = words[i][0]
        line = line[:start] + line[end:]
    os.environ["COMP_LINE"] = line
    folders = [folder for folder in map(expand_path, typed) if Path(folder).is_dir()]
    return ["--config-dir", folders[-1]] if folders else []


# A word of a line being typed, with its quotes and backslashes (an unclosed quote runs to the end).
_TYPED_WORD = re.compile(r"""(?:'[^']*'?|"(?:[^"\\]|\\.)*"?|\\.?|[^\s'"\\])+""")


def _as_handed_over(word: str) -> str:
    """A typed word as the shell hands it over (`"my configs"` -> `my configs`)."""
    try:
        return "".join(shlex.split(word))
    except ValueError:  # an unclosed quote: a word still being typed
        return word


def hydra_part_resolvable(options: list[str]) -> list[str]:
    """`--cfg hydra --resolve` as `--cfg all --package hydra --resolve`, the same settings: Hydra
    resolves its own part apart from the run's, where `hydra.run.dir` names `paths.output_root`,
    and that was an InterpolationKeyError traceback."""
    flags = [option.partition("=")[0] for option in options]
    if "--resolve" not in flags or "-p" in flags or "--package" in flags:
        return options
    for i, option in enumerate(options):
        flag, eq, part = option.partition("=")
        part = part if eq else (options[i + 1] if i + 1 < len(options) else "")
        if flag in ("-c", "--cfg") and part == "hydra":
            return [*options[:i], "--cfg", "all", "--package", "hydra", *options[i + (1 if eq else 2):]]
    return options


def not_an_info_topic(topic: str) -> str:
    return (f"--info {topic}: {topic!r} is not one of its topics; use one of "
            f"{', '.join(sorted(_INFO_TOPICS))}, or --info alone for all of them")
