"""The command line as the shell hands it over, made ready for Hydra.

Free text on the command line: Hydra's override grammar rejects commas, quotes, brackets, spaces,
`~`, non-ASCII letters and more, and reads `${...}` as an interpolation. The values of the
free-text settings (prompts, data paths and dataset names, checkpoints, a model's name) are
therefore taken literally: before Hydra parses the command line, `key=VALUE` becomes `key='VALUE'`
with Hydra's quoting and OmegaConf's escaping, so the composed config holds exactly what the shell
handed over (free_text.py). Path settings also get `~` and environment variables expanded; prompt
files are read into their prompt (prompt_files.py). Any other override Hydra cannot parse is one
`error:` line that shows the quoted form that works (override_errors.py); so is an option a config
group does not have (`model=nope`), listing the options it has (config_groups.py), and what Hydra's
own options refuse with a usage page (hydra_options.py).
"""

from __future__ import annotations

import re

from chargpt.cli.config_groups import check_group_option, config_group_dirs, searchpath_override
from chargpt.cli.free_text import literal_override, sweeper_named
from chargpt.cli.hydra_errors import under_search_params
from chargpt.cli.hydra_options import (
    COMPLETION_ACTIONS,
    check_option_values,
    check_options,
    check_options_together,
    completed_config_dir,
    full_options,
    hydra_part_resolvable,
    not_an_info_topic,
    override_positions,
)
from chargpt.cli.override_errors import spaced_around_equals, unparsable
from chargpt.data.sources.paths import expand_path, path_as_read
from chargpt.errors import ConfigError
from chargpt.overrides import hydra_quoted, is_folder_key, parses, split_override


def hydra_argv(argv: list[str], checkpoint_sweeps: bool = False) -> list[str]:
    """The command line as Hydra must see it: free-text values quoted, paths expanded; an override
    Hydra cannot parse is a ConfigError that shows the quoted form. `checkpoint_sweeps`: a command
    whose every job reads a checkpoint (sampling, evaluation) reads `ckpt_path=choice(...)` as a
    sweep of checkpoints, as `data.path=choice(...)` is read as one of files."""
    out = full_options(argv)
    check_option_values(out)
    check_options(out)
    _ready_overrides(out, checkpoint_sweeps)
    # Hydra's parser takes the overrides as one run of positional arguments: any after an option
    # (`seed=1,2 -m lr=...`) were refused with its usage text. The overrides first, in order, then
    # the options (a bare --info, whose topic is optional, must not take an override for one).
    overrides = list(override_positions(out))
    options = [arg for i, arg in enumerate(out) if i and i not in overrides]
    check_options_together(out, [out[i] for i in overrides], options)
    options = [*hydra_part_resolvable(options), *completed_config_dir(out)]
    return [*out[:1], *(out[i] for i in overrides), *options]



def _ready_overrides(out: list[str], checkpoint_sweeps: bool) -> None:
    """Each override in `out` made ready for Hydra's parser, in place (free text quoted, folders
    expanded), or refused as one error line: no setting before '=', what Hydra cannot parse, a
    config group's option it does not have."""
    group_dirs, searchpath = config_group_dirs(out), searchpath_override(out)
    sweeper = sweeper_named(out)
    prompt_sweeps = checkpoint_sweeps and bool({"-m", "--multirun"} & set(out))
    completing = bool({"-sc", "--shell-completion"} & set(out))
    for i in override_positions(out):
        if completing and out[i] in COMPLETION_ACTIONS:  # `-sc query`: _check_completion names the shell
            continue
        if nameless := re.match(r"^(\+{0,2}|~)\s*=(.*)$", out[i], re.DOTALL):  # Hydra: a ValueError
            raise ConfigError(f"cannot read the override {out[i]!r}: it names no setting before '='; write "
                              f"it as KEY={nameless[2] or 'VALUE'}, with a setting --help lists")
        parts = split_override(out[i])
        if parts is not None:
            plus, key, value = parts
            if said := under_search_params(f"{plus}{key}", value):
                raise ConfigError(said)
            literal = literal_override(plus, key, value, sweeper, checkpoint_sweeps, prompt_sweeps)
            if literal is not None:
                out[i] = literal
                continue
            if is_folder_key(key):  # may use ${now:...}: expanded, and quoted only when needed
                value = value if value[:1] in ("'", '"') else expand_path(value)
                out[i] = f"{plus}{key}={value}"
                if parses(out[i], single_string=True):
                    continue
                # One Hydra cannot read (an accent unquoted): its escapes read as Hydra reads them.
                out[i] = f"{plus}{key}={hydra_quoted(path_as_read(key, value), interpolate=True)}"
        if parts is None and out[i - 1] in ("-i", "--info"):  # a misspelt topic, not an override
            raise ConfigError(not_an_info_topic(out[i]))
        if not parses(out[i]):
            raise ConfigError(spaced_around_equals(out, i) or unparsable(out[i], group_dirs or [],
                                                                          checkpoint_sweeps))
        if parts is not None and group_dirs is not None:
            check_group_option(parts[1], parts[2], group_dirs, searchpath)

