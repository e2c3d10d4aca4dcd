"""The command line as the shell hands it over, made ready for Hydra.

Free text on the command line: Hydra's override grammar rejects commas, quotes, brackets, spaces,
`~`, non-ASCII letters and more, and reads `${...}` as an interpolation. The values of the
free-text settings (prompts, data paths and dataset names, checkpoints, a model's name) are
therefore taken literally: before Hydra parses the command line, `key=VALUE` becomes `key='VALUE'`
with Hydra's quoting and OmegaConf's escaping, so the composed config holds exactly what the shell
handed over. Path settings also get `~` and environment variables expanded; prompt files are read
into their prompt. Any other override Hydra cannot parse is one `error:` line that shows the
quoted form that works; so is an option a config group does not have (`model=nope`), listing the
options it has.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from chargpt import shell_words
from chargpt.cli import CONFIG_PATH
from chargpt.cli.hydra_errors import (
    ONE_OPTION_GROUPS,
    dimensions_as_settings,
    no_search_to_give,
    search_params_dict,
    settings_in,
    under_search_params,
)
from chargpt.data.corpus import device_or_socket, gives_no_text
from chargpt.data.encoding import BOM, read_as_trained
from chargpt.data.sources.paths import expand_path
from chargpt.errors import ConfigError
from chargpt.hydra_internals import hydra_options, hydra_switches
from chargpt.overrides import (
    choice_values,
    hydra_quoted,
    is_folder_key,
    is_free_text_key,
    is_path_key,
    is_prompt_key,
    is_sweep,
    literal_value,
    omegaconf_literal,
    override_key,
    parses,
    reaches_sweep_job,
    sweep_item,
)
from chargpt.plural import ordinal

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
_COMPLETION_ACTIONS = ("install", "uninstall", "query")  # what Hydra's --shell-completion does
_COMPLETION_SHELLS = ("bash", "zsh", "fish")  # the shells Hydra's completion plugins serve
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
# What only prints and runs nothing: Hydra's help, and its modes that print.
_PRINTING = {"-h", "--help", "--hydra-help",
             *(o for short, long in _MODES.items() if long in ("--cfg", "--info", "--shell-completion")
               for o in (short, long))}
# `prompt_file=FILE` (or `-` for standard input) is read here and becomes the prompt setting.
# The prompt-file settings of each command's config, and the prompt each one fills.
PROMPT_FILES = {"sample": {"prompt_file": "prompt"}, "train": {"sample.prompt_file": "sample.prompt"}}
# The prompt settings this process filled from a file, and the setting as typed (`prompt_file=x.txt`):
# an error about the prompt's text names the file, which is where the user will fix it.
_prompts_from_files: dict[str, str] = {}


def _split(arg: str) -> tuple[str, str, str] | None:
    """`+key=value` -> ('+', 'key', 'value'); None for anything that is not `key=value`."""
    match = re.match(r"^(\+{0,2})([\w.\-/@]+)=(.*)$", arg, re.DOTALL)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def prints_only(argv: list[str]) -> bool:
    """Whether the command line only prints (--help, --info, --cfg, -sc): it runs nothing."""
    return any(arg.partition("=")[0] in _PRINTING for arg in argv[1:])


@functools.cache
def _hydra_long_options() -> tuple[str, ...]:
    return tuple(o for o in hydra_options() if o.startswith("--"))


_CFG_PARTS = ("job", "hydra", "all")  # what --cfg prints


def _check_options(argv: list[str]) -> None:
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


def _read_prompt_file(key: str, name: str) -> str:
    try:
        if name == "-":
            stdin = getattr(sys.stdin, "buffer", None)
            return read_as_trained(stdin.read()) if stdin is not None else sys.stdin.read().removeprefix(BOM)
        path = Path(expand_path(_unquoted(key, name)))
        if gives_no_text(path):  # (a pipe, and a terminal, are read once as a prompt)
            raise ConfigError(f"{key}={name} is not a file but {device_or_socket(path)}; give a text file, "
                              "or - for standard input")
        return read_as_trained(path.read_bytes())
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{key}={name}: cannot read it ({reason}); give a readable UTF-8 text file, "
                          "or - for standard input") from None


def literal_argv(argv: list[str], config_name: str | None = None) -> list[str]:
    """The command line with prompt files read into their prompt setting (still as the shell gave
    it), for a command whose config (`config_name`) has one; elsewhere a prompt file is a setting
    the command does not have, and is not read."""
    out = list(argv)
    _prompts_from_files.clear()  # a new command line: tests run several in one process
    prompt_files = PROMPT_FILES.get(config_name or "", {})
    given = {p[1] for i in override_positions(out) if (p := _split(out[i]))}
    for i in override_positions(out):
        parts = _split(out[i])
        if parts is None or parts[1] not in prompt_files:
            continue
        plus, key, name = parts
        target = prompt_files[key]
        if target in given:
            raise ConfigError(f"both {target} and {key} are set; give one of them")
        _refuse_swept_prompt_file(out, i, target)
        out[i] = f"{plus}{target}={_read_prompt_file(key, name)}"
        _prompts_from_files[target] = f"{key}={name}"
    return out


def _refuse_swept_prompt_file(argv: list[str], i: int, target: str) -> None:
    """`-m prompt_file=choice(a.txt, b.txt)` (or `a.txt,b.txt`): a prompt file is read into its
    prompt here, before Hydra sees the command line, so it cannot be swept: the sweep was refused
    as one file name that cannot be read. Refused as a sweep, with the loop that runs each file.
    A file of that name that exists (`a,b.txt`) is one file."""
    plus, key, name = _split(argv[i]) or ("", "", "")
    multirun = bool({"-m", "--multirun"} & set(full_options(argv)))
    call = _hydra_function_call(name)
    if name == "-" or not (call or (multirun and "," in name)):
        return
    if Path(expand_path(_unquoted(key, name))).exists():
        return
    listed = name if call else f"choice({name})"
    files = _choice_texts(key, listed) if call is None or call[1] == "choice" else None
    each = shell_words.join(files) if files else "FILE ..."
    why = f"{key}={name}: a sweep cannot take several prompt files (a prompt file is read into {target} " \
          "before the sweep starts)"
    if key == "prompt_file":
        rest = shell_words.join([Path(argv[0]).name, *(a for j, a in enumerate(argv[1:], start=1) if j != i)])
        raise ConfigError(f"{why}; run once per file: for f in {each}; do {rest} {plus}{key}=\"$f\"; done "
                          "(or sweep prompts typed out: -m 'prompt=choice(ROMEO:,JULIET:)')")
    raise ConfigError(f"{why}; train once, then sample the run with each: for f in {each}; do chargpt-sample "
                      "ckpt_path=RUN prompt_file=\"$f\"; done")


def prompt_source(setting: str) -> str:
    """How to name the prompt `setting` in an error: the prompt file it was read from, if any."""
    return _prompts_from_files.get(setting, setting)


def hydra_argv(argv: list[str], checkpoint_sweeps: bool = False) -> list[str]:
    """The command line as Hydra must see it: free-text values quoted, paths expanded; an override
    Hydra cannot parse is a ConfigError that shows the quoted form. `checkpoint_sweeps`: a command
    whose every job reads a checkpoint (sampling, evaluation) reads `ckpt_path=choice(...)` as a
    sweep of checkpoints, as `data.path=choice(...)` is read as one of files."""
    out = full_options(argv)
    _check_option_values(out)
    _check_options(out)
    _ready_overrides(out, checkpoint_sweeps)
    # Hydra's parser takes the overrides as one run of positional arguments: any after an option
    # (`seed=1,2 -m lr=...`) were refused with its usage text. The overrides first, in order, then
    # the options (a bare --info, whose topic is optional, must not take an override for one).
    overrides = list(override_positions(out))
    options = [arg for i, arg in enumerate(out) if i and i not in overrides]
    _check_options_together(out, [out[i] for i in overrides], options)
    options = [*_hydra_part_resolvable(options), *_completed_config_dir(out)]
    return [*out[:1], *(out[i] for i in overrides), *options]


def _check_option_values(argv: list[str]) -> None:
    """An option that takes a value, given none: one error line (argparse's own refusal, "expected
    one argument", is a usage page)."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg in _OPTION_VALUES and (i + 1 == len(argv) or re.match(r"-[^\d.]", argv[i + 1])):
            raise ConfigError(f"{arg} needs a value after it, e.g. {arg} {_OPTION_VALUES[arg]}")


def _ready_overrides(out: list[str], checkpoint_sweeps: bool) -> None:
    """Each override in `out` made ready for Hydra's parser, in place (free text quoted, folders
    expanded), or refused as one error line: no setting before '=', what Hydra cannot parse, a
    config group's option it does not have."""
    group_dirs, searchpath = _group_dirs(out), _searchpath(out)
    sweeper = _sweeper_named(out)
    prompt_sweeps = checkpoint_sweeps and bool({"-m", "--multirun"} & set(out))
    completing = bool({"-sc", "--shell-completion"} & set(out))
    for i in override_positions(out):
        if completing and out[i] in _COMPLETION_ACTIONS:  # `-sc query`: _check_completion names the shell
            continue
        if nameless := re.match(r"^(\+{0,2}|~)\s*=(.*)$", out[i], re.DOTALL):  # Hydra: a ValueError
            raise ConfigError(f"cannot read the override {out[i]!r}: it names no setting before '='; write "
                              f"it as KEY={nameless[2] or 'VALUE'}, with a setting --help lists")
        parts = _split(out[i])
        if parts is not None:
            plus, key, value = parts
            if said := under_search_params(f"{plus}{key}", value):
                raise ConfigError(said)
            if (literal := _literal(plus, key, value, sweeper, checkpoint_sweeps, prompt_sweeps)) is not None:
                out[i] = literal
                continue
            if is_folder_key(key):  # may use ${now:...}: expanded, and quoted only when needed
                value = value if value[:1] in ("'", '"') else expand_path(value)
                out[i] = f"{plus}{key}={value}"
                if parses(out[i], single_string=True):
                    continue
                out[i] = f"{plus}{key}={hydra_quoted(value, interpolate=True)}"
        if parts is None and out[i - 1] in ("-i", "--info"):  # a misspelt topic, not an override
            raise ConfigError(_not_an_info_topic(out[i]))
        if not parses(out[i]):
            raise ConfigError(_spaced_around_equals(out, i) or _unparsable(out[i], group_dirs or [],
                                                                          checkpoint_sweeps))
        if parts is not None and group_dirs is not None:
            check_group_option(parts[1], parts[2], group_dirs, searchpath)


def _literal(
    plus: str, key: str, value: str, sweeper: str, checkpoint_sweeps: bool, prompt_sweeps: bool
) -> str | None:
    """A free-text setting's override with its value taken literally (or as a sweep of such values);
    None for any other setting."""
    # null (or nothing) still means "none" for a path or a name; a prompt takes it as text.
    if not is_free_text_key(key) or (not is_prompt_key(key) and value.lower() in ("null", "")):
        return None
    swept = _path_sweep(key, value, sweeper, checkpoint_sweeps)
    if key == "prompt" and prompt_sweeps:
        swept = _prompt_sweep(value)
    return f"{plus}{key}={swept or _free_text(key, value)}"


def _check_options_together(out: list[str], overrides: list[str], options: list[str]) -> None:
    """Options that Hydra refuses with its usage page or a traceback only together: --info=TOPIC
    naming no topic, -sc without one action, two modes."""
    for flag, eq, topic in (arg.partition("=") for arg in options):
        if flag in ("-i", "--info") and eq and topic not in _INFO_TOPICS:  # argparse would print its usage
            raise ConfigError(_not_an_info_topic(topic))
    # Hydra's shell completion takes one of its actions among the overrides, wherever they stand
    # (`install=bash -sc` is one); none, or two, was its traceback.
    actions = [arg for arg in overrides if arg.partition("=")[0] in _COMPLETION_ACTIONS]
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


def _completed_config_dir(argv: list[str]) -> list[str]:
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


def _hydra_part_resolvable(options: list[str]) -> list[str]:
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


def _group_dirs(argv: list[str]) -> list[Path] | None:
    """The config folders Hydra searches for this command line: chargpt's and any `--config-dir`
    (a `hydra.searchpath` adds more: _searchpath); None when the primary config is found another
    way (`--config-path`), whose options only Hydra can list."""
    dirs = [Path(CONFIG_PATH)]
    for i, arg in enumerate(argv[1:], start=1):
        flag, eq, value = arg.partition("=")
        if flag in ("-cp", "--config-path"):
            return None
        if arg in ("-cd", "--config-dir") and i + 1 < len(argv):
            dirs.append(Path(expand_path(argv[i + 1])))
        elif flag == "--config-dir" and eq:
            dirs.append(Path(expand_path(value)))
    return dirs


def _searchpath(argv: list[str]) -> str | None:
    """The command line's `hydra.searchpath=[...]` override (the last, which Hydra applies), or None."""
    given = [f"hydra.searchpath={parts[2]}" for i in override_positions(argv)
             if (parts := _split(argv[i])) and parts[1] == "hydra.searchpath"]
    return given[-1] if given else None


@functools.cache
def _searchpath_options(group: str, searchpath: str) -> frozenset[str] | None:
    """The options of config `group` in the folders a `hydra.searchpath=[...]` override adds (and
    chargpt's), as Hydra's config repository lists them with that override applied; None when
    Hydra cannot apply it (its own error says why)."""
    GlobalHydra.instance().clear()
    try:
        # Quiet: a folder of it that is missing is Hydra's to warn of, once, when it composes.
        with warnings.catch_warnings(), initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            warnings.simplefilter("ignore")
            loader = GlobalHydra.instance().config_loader()
            return frozenset(loader.get_group_options(group, overrides=[searchpath]))
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


# `~KEY` under these removes a component (a callback, a logger) or leaves a Trainer argument to
# Lightning's documented default; a whole group (`~experiment`) is Hydra's defaults list.
REMOVABLE = ("callbacks.", "logger.", "trainer.", "hydra.")


def check_removals(config_name: str, overrides: list[str]) -> None:
    """Any other `~KEY` removes a value the code would replace by a default of its own, one the
    run's saved config does not show (`~model.n_layer` trained 4 layers; `~data.batch_size` was a
    TypeError): refused before Hydra makes a run's or a sweep's folder, as a setting the command
    needs. A key with no value (null, or none such) is left to Hydra's own message."""
    removed = {o: override_key(o) for o in overrides if o.startswith("~")}
    removed = {o: key for o, key in removed.items()
               if not key.startswith(REMOVABLE) and not (Path(CONFIG_PATH) / key).is_dir()}
    if not removed:
        return
    # One composition without them (nor a sweep's lists: composing takes one value of each).
    config = composed(config_name, [o for o in overrides if o not in removed and not is_sweep(o)])
    for key in removed.values():
        value = None if config is None else OmegaConf.select(config, key, default=None,
                                                             throw_on_resolution_failure=False)
        if value is not None:
            raise removed_a_needed_setting(key, key)


def removed_a_needed_setting(removed: str, needed: str) -> ConfigError:
    """`~removed` on the command line took away `needed`, a setting the command reads."""
    return ConfigError(f"~{removed} removed a setting this command needs ({needed}); leave it out to keep "
                       f"its default, or set a value: {needed}=VALUE")


def composed(config_name: str, overrides: list[str], with_hydra: bool = False) -> DictConfig | None:
    """The command's config with these overrides, its `hydra` part too `with_hydra` (None when it
    cannot be composed)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=with_hydra)
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def check_search_space_typed(config_name: str, argv: list[str]) -> None:
    """`hydra.sweeper.params={model.dropout: x}` where no search is set up: OmegaConf's traceback
    (exit 1) as Hydra merged it into the null params of its basic sweeper, refused in one line. Where
    a search is set up the dict joins its dimensions. A command line that names its own config
    (--config-dir, --config-name, --config-path) is left to Hydra: only Hydra composes that."""
    overrides = [argv[i] for i in override_positions(argv)]
    typed = {o: dimensions for o in overrides if (dimensions := search_params_dict(o)) is not None}
    own_config = {"-cd", "--config-dir", "-cn", "--config-name", "-cp", "--config-path"}
    if not typed or any(arg.partition("=")[0] in own_config for arg in argv[1:]):
        return
    config = composed(config_name, [o for o in overrides if o not in typed], with_hydra=True)
    if config is None:
        return
    params = OmegaConf.select(config, "hydra.sweeper.params")
    for override, dimensions in typed.items():
        if params is None:
            searches = "hparams_search" in OmegaConf.select(config, "hydra.runtime.choices", default={})
            raise ConfigError(no_search_to_give(override, dimensions, searches))
        # A new dimension needs `+` (Hydra: "not a setting"), and a sweep typed bare OmegaConf cannot
        # merge (its text, `'interval(0.0, 0.3)'`, it can).
        added = not override.startswith("+") and any(name not in params for name in dimensions)
        if added or any(not isinstance(v, str | int | float | bool) for v in dimensions.values()):
            raise ConfigError(dimensions_as_settings(override, dimensions))


def check_one_option_lists(overrides: list[str]) -> None:
    """`model=[small,tiny]`: Hydra merges a list's options into one config (the last one's values
    win), which for chargpt's own options of a group of alternatives is no model meant: refused,
    naming the sweep that runs each. A list naming an option of one's own (`trainer=[default,mine]`
    with --config-dir) is Hydra's way to compose a config on top of another: left to Hydra. (After
    the checks of what a command does not use: chargpt-sample has no model to pick.)"""
    for override in overrides:
        parts = _split(override)
        listed = re.fullmatch(r"\[\s*([\w\-]+(?:\s*,\s*[\w\-]+)+)\s*\]", parts[2]) if parts else None
        if parts and listed and parts[1] in ONE_OPTION_GROUPS:
            key, value = parts[1], re.sub(r"\s+", "", listed[1])
            if not all((Path(CONFIG_PATH) / key / f"{option}.yaml").is_file() for option in value.split(",")):
                continue
            raise ConfigError(f"{key}=[{value}] picks {value.count(',') + 1} options of {key} at once, and "
                              f"Hydra merges them into one {key} (the last one's values win); pick one, or "
                              f"run once with each as a sweep: -m {key}={value}")


def check_group_option(key: str, value: str, config_dirs: list[Path], searchpath: str | None = None) -> None:
    """`group=option` (or a sweep's `group=a,b`, or a list `group=[a,b]`) for a config group in
    `config_dirs`, or in the folders of a `hydra.searchpath=[...]` override, must name options that
    exist there: a ConfigError listing them, before Hydra composes anything."""
    if "/" in key or "." in key:
        return  # not a config group
    groups = [d / key for d in config_dirs if (d / key).is_dir()]
    known_set = {f.stem for group in groups for f in group.glob("*.yaml")}
    if searchpath is not None:
        listed = _searchpath_options(key, searchpath)
        if listed is None:
            return  # a search path Hydra cannot read: Hydra's own error names it
        known_set |= listed
    if not known_set:
        return  # not a config group
    known = sorted(known_set)
    if value == "null":  # Hydra's ValueError, with a traceback
        none = f"; {key}=none for none" if "none" in known else ""
        raise ConfigError(f"{key}=null: a config group takes the name of one of its options "
                          f"({', '.join(known)}); leave it out for its default{none}")
    listed = re.fullmatch(r"\[\s*([\w\-]+(?:\s*,\s*[\w\-]+)*)?\s*\]", value)
    if listed is not None:
        value = re.sub(r"\s+", "", listed[1] or "")
    elif not re.fullmatch(r"[\w\-]+(,[\w\-]+)*", value):
        return  # a value Hydra reads itself (glob(...), ...)
    unknown = [name for name in value.split(",") if name and name not in known]
    if unknown:
        raise ConfigError(f"{key}={unknown[0]} is not an option of {key}; use one of: {', '.join(known)}")


def _unquoted(key: str, value: str) -> str:
    """A path without Hydra's way of quoting it ("data.path='src/*.py'", 'it\\'s.txt')."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        unquoted = literal_value(f"{key}={value}")
        return unquoted if unquoted != value else value[1:-1]
    return value


def _free_text(key: str, value: str) -> str:
    if is_path_key(key):
        value = expand_path(_unquoted(key, value))
        if key.startswith("data.") and "${" in value:
            # Hydra's instantiate resolves the data config twice, and OmegaConf's second pass
            # reads an escaped `${` as an interpolation: such a path cannot arrive intact.
            raise ConfigError(f"{key}={value}: a data path cannot contain '${{'; rename the file or "
                              "link it under another name")
    if key.startswith("callbacks."):
        # Only ever instantiated, which resolves it once more: one more level of escaping.
        return hydra_quoted(omegaconf_literal(value))
    return hydra_quoted(value)


# chargpt's sweepers hand a choice's every text to its job readable: the default (Hydra's basic
# sweeper in chargpt's subclass) and Optuna's (registered under its own name). Hydra's basic sweeper,
# named, escapes only spaces, commas and brackets; another plugin's search is taken to escape nothing.
_READABLE_SWEEPERS = ("quoting", "optuna")


def group_choices(argv: list[str]) -> dict[str, str]:
    """The values a command line's overrides give, by key as typed less its `+` (`hydra/launcher`:
    `slurm`); the last one where a key is given twice."""
    return {key.lstrip("+"): value for i in override_positions(argv)
            for key, _, value in [argv[i].partition("=")]}


def _sweeper_named(argv: list[str]) -> str:
    """The sweeper a command line picks: its `hydra/sweeper=NAME`, else the search it names
    (`hparams_search=optuna`), else chargpt's default."""
    named = group_choices(argv)
    if "hydra/sweeper" in named:
        return named["hydra/sweeper"]
    return named.get("hparams_search", "quoting")


def _path_sweep(
    key: str, value: str, sweeper: str = "quoting", checkpoint_sweeps: bool = False
) -> str | None:
    """A data path's sweep, `choice(a.txt, 'my texts/b.txt')` (or a checkpoint's, with
    `checkpoint_sweeps`), with each path expanded (`~`, $VARS) and written so that Hydra reads it;
    None for a value that is one path (a file named `choice(...)` that exists included). Any other of
    Hydra's functions is refused: it does not name files; so is a name that `sweeper` would hand its
    job unreadable."""
    sweepable = key.startswith("data.") or (checkpoint_sweeps and key == "ckpt_path")
    call = _hydra_function_call(value) if sweepable else None
    if call is None or Path(expand_path(_unquoted(key, value))).exists():
        return None
    checkpoints = key == "ckpt_path"
    example = f"-m '{key}=choice(a.ckpt,b.ckpt)'" if checkpoints else f"-m '{key}=choice(a.txt,b.txt)'"
    if call[1] != "choice":
        why = ("picks a config group's options, not files; a pattern such as 'corpus/*.txt' is one corpus of "
               "every file it matches" if call[1] == "glob" else "does not name files")
        once = "to run once per checkpoint" if checkpoints else "to train once per file"
        raise ConfigError(f"{key}={value}: Hydra's {call[1]}(...) {why}; {once}, list the files: {example}")
    paths = [expand_path(path) for path in _choices(key, value)]
    for path in paths:
        if not path or "${" in path:
            raise ConfigError(f"{key}={value}: {path!r} is not a path a sweep can take; list the files "
                              f"by name: {example}")
        if sweeper in _READABLE_SWEEPERS or reaches_sweep_job(key, path, search=sweeper != "basic"):
            continue
        if sweeper == "basic":
            raise ConfigError(f"{key}={value}: hydra/sweeper=basic, Hydra's own sweeper, cannot hand "
                              f"{path!r} to its job (it drops the quotes a non-ASCII letter, a quote or a ~ "
                              "needs); leave hydra/sweeper=basic out: chargpt's default sweeper is "
                              "Hydra's with that mended")
        raise ConfigError(f"{key}={value}: a search's sweeper ({sweeper}) cannot hand {path!r} to its "
                          "job (it drops the quotes such a name needs: spaces, commas, non-ASCII letters, "
                          "quotes, ~, ! ...); link the file under a plain name (ln -s) and list that, or "
                          "train on it without -m")
    return f"choice({','.join(sweep_item(path) for path in paths)})"


def _prompt_sweep(value: str) -> str | None:
    """A sampling sweep's `prompt=choice(ROMEO:, 'Où est, dis')`: one job per prompt, each taken as
    typed (a comma or a quote in one quoted); None for any other prompt, which is text as typed
    (`prompt=a,b` included: a comma is common in a prompt, and the bare form would split it)."""
    if not re.fullmatch(r"\s*choice\s*\(.*\)\s*", value, re.DOTALL):
        return None
    prompts = _choice_texts("prompt", value)
    if "" in prompts:  # (a trailing comma, most likely: the job's own refusal said to leave prompt unset)
        raise ConfigError(f"prompt={value}: the sweep's {ordinal(prompts.index('') + 1)} prompt is empty "
                          "(nothing between its commas, or after the last); give each prompt at least one "
                          "character, or drop the empty one")
    return f"choice({','.join(hydra_quoted(prompt) for prompt in prompts)})"



def _choices(key: str, value: str) -> list[str]:
    """The paths in `choice(...)`, as Hydra reads them where it can, else split at the commas outside
    quotes, each quoted one unquoted (`choice(café.txt, 'a, b.txt')`: Hydra refuses the é)."""
    if (values := choice_values(f"{key}={value}")) is not None:
        return [str(path) for path in values]
    return _choice_texts(key, value)


def _choice_texts(key: str, value: str) -> list[str]:
    """The texts in `choice(...)` as typed, split at the commas outside quotes, each quoted one
    unquoted (`choice(true, 1e3)` are the texts `true` and `1e3`, not Hydra's boolean and number)."""
    inner = re.fullmatch(r"\s*choice\s*\((.*)\)\s*", value, re.DOTALL)
    if inner is None:
        raise ConfigError(f"{key}={value}: write a sweep of files as {key}=choice(FILE,FILE,...), a "
                          "name with commas or spaces in quotes: choice(a.txt,'b, c.txt')")
    pieces, quote, piece = [], "", ""
    for char in inner[1]:
        # A quote opens only at an item's start: the apostrophe of `it's` is text.
        opens = not quote and not piece.strip()
        if char in "'\"" and (char == quote or opens) and not piece.endswith("\\"):
            quote = "" if quote else char
        if char == "," and not quote:
            pieces.append(piece)
            piece = ""
        else:
            piece += char
    return [_unquoted(key, p.strip()) for p in [*pieces, piece]]


def _hydra_function_call(value: str) -> re.Match[str] | None:
    """`value` starting as a call of one of Hydra's override functions (choice, interval, tag, ...)."""
    from hydra.core.override_parser.overrides_parser import create_functions  # the error path only

    return re.match(rf"\s*({'|'.join(map(re.escape, create_functions().definitions))})\s*\(", value)


def _not_an_info_topic(topic: str) -> str:
    return (f"--info {topic}: {topic!r} is not one of its topics; use one of "
            f"{', '.join(sorted(_INFO_TOPICS))}, or --info alone for all of them")


_KEY = re.compile(r"[+~]{0,2}[A-Za-z_][\w.\-/@]*")  # a setting's or a group's name, as typed


def _spaced_around_equals(argv: list[str], i: int) -> str | None:
    """`seed = 3`, `model =tiny`, `seed= 3`: an override typed with spaces around its '=', which the
    shell handed over as several words, the one at `i` unreadable: the error naming the override
    meant. None where argv[i] is no such word."""
    word, before = argv[i], argv[i - 1] if i > 1 else ""
    after = argv[i + 1] if i + 1 < len(argv) else None
    if _KEY.fullmatch(word) and after is not None and after.startswith("="):  # `seed = 3`, `model =tiny`
        typed = after.lstrip("=")  # (`seed == 3`, '==' as a comparison is written: one '=' meant)
        value = argv[i + 2] if not typed and i + 2 < len(argv) and "=" not in argv[i + 2] else None
        words = [word, after] if value is None else [word, after, value]
        meant = f"{word}={typed or value or 'VALUE'}"
    elif "=" not in word and _KEY.fullmatch(before[:-1]) and before.endswith("=") and before.count("=") == 1:
        words = [before, word]  # `seed= 3`: the first word, set to nothing, read; this one not
        meant = before + word
    else:
        return None
    return (f"{shell_words.join(words)}: the shell splits it at its spaces into {len(words)} words; write it "
            f"without spaces around '=': {shell_words.quote(meant)}")


def _unparsable(arg: str, group_dirs: list[Path], reads_checkpoint: bool = False) -> str:
    """The error for an override Hydra cannot read; `group_dirs`: the config groups' folders;
    `reads_checkpoint`: whether the command reads a run (chargpt-sample, -eval, -export)."""
    parts = _split(arg)
    if parts is None:
        if reads_checkpoint and os.path.exists(expand_path(arg.strip())):  # `chargpt-sample my_run`
            return (f"cannot read the override {arg!r}: overrides are key=value; to read the run or "
                    f"checkpoint it names, give its setting: {shell_words.quote(f'ckpt_path={arg.strip()}')}")
        yaml_like = ":" in arg and _KEY.fullmatch(arg.partition(":")[0])  # `model:tiny`, as YAML writes it
        meant = f" ({arg.replace(':', '=', 1)}?)" if yaml_like else ""
        return (f"cannot read the override {arg!r}: overrides are key=value{meant}; "
                "see the command's --help")
    plus, key, value = parts
    if match := _hydra_function_call(value):
        # Meant as a sweep or search expression: quoting it would make it text, which no setting takes.
        return (f"cannot read the override {arg!r}: its value starts as Hydra's {match[1]}(...) but does not "
                "parse; check its parentheses, commas and numbers, e.g. "
                f"'{key}=tag(log, interval(1e-4, 1e-2))'")
    works = shell_words.quote_in_double_quotes(f"{plus}{key}={hydra_quoted(value)}")
    meant = value.rstrip().removesuffix(",")
    if meant != value.rstrip() and meant and parses(f"{plus}{key}={meant}"):
        # `model=tiny,`: quoted, the value is a text, which a group's option (or a number) is not.
        dropped = (f"cannot read the override {arg!r}: it ends with a comma, and no value follows it (a "
                   f"comma separates the values a sweep runs); drop the comma: "
                   f"{shell_words.quote(f'{plus}{key}={meant}')}")
        if any((folder / key).is_dir() for folder in group_dirs) or not parses(f"{key}={meant}", True):
            return dropped
        return f"{dropped} (or, for a text that ends with a comma, quote the value: {works})"
    reserved = (f"cannot read the override {arg!r} (Hydra's override syntax reserves characters such as "
                "spaces, commas, quotes and brackets)")
    items = [item.strip() for item in value[1:-1].split(",")] if value[:1] + value[-1:] == "[]" else []
    listed = f"{plus}{key}=[{', '.join(hydra_quoted(item) for item in items)}]"
    if items and parses(listed):
        # A list (hydra.searchpath=[file://my configs]): the whole value quoted is one text, which
        # a list setting refuses; each item quoted keeps the list.
        each = shell_words.quote_in_double_quotes(listed)
        return f"{reserved}; quote each item of the list: {each} (or the whole value, for a text: {works})"
    return f"{reserved}; quote the value: {works}"


def settings_beside(config_name: str, overrides: list[str]) -> Callable[[str], list[str]]:
    """For a command's config: the settings beside a key, in the config the other overrides make
    (composed again, on the error path only); none when that cannot be composed. For a top-level
    key, a group's setting of that very name too (`sample.max_new_tokens` for `max_new_tokens`,
    typed to chargpt-train as chargpt-sample takes it), which "did you mean" then names."""

    def sets(override: str, key: str) -> bool:  # (a dict given above it, {extra: {lr: 2}}, sets it too)
        above = override_key(override)
        return above == key or (key.startswith(f"{above}.") and override.partition("=")[2].startswith("{"))

    def settings(key: str) -> list[str]:
        config = composed(config_name, [o for o in overrides if not sets(o, key)])
        if config is None:
            return []
        if "." in key:
            return settings_in(config, key)
        groups = OmegaConf.to_container(config, resolve=False)
        assert isinstance(groups, dict)
        named = [f"{group}.{key}" for group, node in groups.items() if isinstance(node, dict) and key in node]
        return [*settings_in(config, key), *named]

    return settings
