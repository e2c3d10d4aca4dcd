"""The README and the guides in docs/ tell the truth about the commands they show.

- The README starts with the two commands, says how to reach the installed commands, and stays a
  short front door.
- Every command a bash block (or a table) shows composes (the guides' in the slow set): each
  `chargpt-train` / `chargpt-sample` / `chargpt-eval` line is composed with Hydra's compose API,
  so an override that names a key the configs lack fails here; `make` targets, script flags,
  `chargpt-report` flags and pip extras are checked against the Makefile, the scripts, the
  report's parser and pyproject.toml.
- The Python API example runs and prints what it says.
- docs/training.md's model=auto block is what the rule prints for the timings it shows.
- (slow) docs/training.md's memorised-text example states the epochs, training characters and
  uniform guess that its command and text give.
- The settings tables of chargpt-sample and chargpt-serve state their config files' defaults, and
  leave out none of their settings.
- docs/configuration.md's table of groups names each group's options, as its config folder has them.
- The bad-input table of docs/reliability.md quotes what its commands print (the rows that need
  no text, run or hardware of their own).
- Its model=auto refusals are what the rule prints for the timings they show.
- Every scripts/*.py a document names exists, with the options it is given there (the
  measurement records too).
- Links between the documents resolve, and Markdown tables are well formed.
- (slow) A fresh clone, walked through as the README says: every command block, shortened.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from conftest import FENCE, fenced_blocks, free_port, make_checkpoint, run_cli, train_args

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
# The README and the guides; BENCHMARKS.md and EXPERIMENTS.md are measurement records.
GUIDES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in ("BENCHMARKS.md", "EXPERIMENTS.md"))
DOCS = [README, *GUIDES]
README_MAX_BYTES = 12 * 1024

INLINE_COMMAND = re.compile(r"`(chargpt-(?:train|sample|eval|export|serve) [^`]*)`")
# A Bad input row whose command Hydra cannot read, as its message says (an override it cannot parse,
# or one the shell split at its spaces), or which chargpt refuses before Hydra composes it (a sweep
# of prompt files, read before Hydra; chargpt-sample's check_copy given to chargpt-eval): not
# composed; its message is checked by running it (test_bad_input_table_quotes_what_the_command_prints)
# where it needs no setup, and by the tests of each refusal.
UNREADABLE_ON_PURPOSE = (
    "| `error: cannot read the override ", ": the shell splits it at its spaces into ",
    "| `error: prompt_file=choice(", "| `error: check_copy=true does nothing in chargpt-eval",
)
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
HYDRA_CONFIG = {
    "chargpt-train": "train", "chargpt-sample": "sample", "chargpt-eval": "eval",
    "chargpt-export": "export", "chargpt-serve": "serve",
}
# Hydra plugins some commands need (installed by `make`'s default EXTRAS).
PLUGINS = {
    "hydra/launcher=slurm": "hydra_plugins.hydra_submitit_launcher",
    "hydra/launcher=local_parallel": "hydra_plugins.hydra_joblib_launcher",
    "hparams_search=optuna": "hydra_plugins.hydra_optuna_sweeper",
}
# Programs the docs may show that this test does not check further.
UNCHECKED = {"source", "tensorboard", "git", "cd", "curl", "printf"}


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def entry_point(script: str):  # a console script's main function
    module, _, function = pyproject()["project"]["scripts"][script].partition(":")
    return getattr(importlib.import_module(module), function)


def config_path() -> str:
    for module in ("chargpt.cli", "chargpt.hydra_app"):  # the layout, then the flat package
        with contextlib.suppress(ImportError):
            return importlib.import_module(module).CONFIG_PATH
    raise AssertionError("no CONFIG_PATH in chargpt.cli")


# --- reading the documents -------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    source: str  # file:line, for test ids and messages
    text: str  # one command line, continuations joined, comment dropped

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)


def where(path: Path) -> str:
    """README.md or docs/NAME.md, in this checkout or a clone of it."""
    return f"docs/{path.name}" if path.parent.name == "docs" else path.name


def block_commands(path: Path, line: int, block: str) -> Iterator[Command]:
    pending, start = "", line
    for offset, raw in enumerate(block.splitlines()):
        if not pending:
            start = line + offset
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        # shlex drops the comment; join the tokens back with their quoting.
        tokens = shlex.split(pending, comments=True)
        pending = ""
        for part in " ".join(shlex.quote(t) for t in tokens).split(" '&&' "):
            if part.strip():
                yield Command(f"{where(path)}:{start}", part)


def bash_commands(path: Path) -> Iterator[Command]:
    for line, block in fenced_blocks(path, "bash"):
        yield from block_commands(path, line, block)


def shown_commands() -> list[Command]:
    """Every command in a bash block of the README and the guides, and every chargpt command
    written inline (the error table's commands, for instance)."""
    commands = [c for path in DOCS for c in bash_commands(path)]
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(marker in line for marker in UNREADABLE_ON_PURPOSE):
                continue
            for match in INLINE_COMMAND.finditer(line):
                commands.append(Command(f"{where(path)}:{number}", match.group(1)))
    return commands


def program_and_args(argv: list[str]) -> tuple[str, list[str]]:
    while argv and ENV_ASSIGNMENT.match(argv[0]):
        argv = argv[1:]
    program = argv[0].removeprefix(".venv/bin/")
    return program, argv[1:]


# --- the README's shape ----------------------------------------------------------------------


def test_readme_starts_with_the_two_commands() -> None:
    _, first_block = next(fenced_blocks(README, "bash"))
    assert README.read_text().index("```bash") < README.read_text().index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make train", "make test"]
    assert all("#" in line for line in first_block.splitlines() if line.strip())  # each says what it does


def test_readme_is_a_short_front_door_that_says_how_to_reach_the_commands() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference material to docs/"
    activation = [c.text for c in bash_commands(README) if c.argv[:1] == ["source"]]
    assert activation == ["source .venv/bin/activate"]
    text = README.read_text()
    assert text.index("source .venv/bin/activate") < text.index("chargpt-train ")
    for guide in GUIDES:
        assert f"docs/{guide.name}" in text, f"README.md does not link docs/{guide.name}"


# --- every command shown is runnable ---------------------------------------------------------


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """A multirun's overrides as single runs: every value of every sweep at least once."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    base, sweeps = [], []
    for override in parsed:
        key, raw = override.get_key_element(), override.input_line.partition("=")[2]
        if not override.is_sweep_override():
            base.append(override.input_line)
        elif override.is_discrete_sweep() and not key.startswith("hydra.sweeper.params."):
            values = list(override.sweep_string_iterator())
            sweeps.append((len(base), key, values))
            base.append(f"{key}={values[0]}")
        else:  # a search space for the Optuna sweeper (interval, tag, ...): its own syntax
            base.append(f"{key}='{raw}'")
    variants = [base]
    for index, key, values in sweeps:
        for value in values[1:]:
            variant = list(base)
            variant[index] = f"{key}={value}"
            variants.append(variant)
    return variants


def combinations(overrides: list[str]) -> int:
    """How many jobs a multirun of these overrides runs."""
    count = 1
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() and override.is_discrete_sweep():
            count *= len(list(override.sweep_string_iterator()))
    return count


def hydra_overrides(args: list[str]) -> list[str]:
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--cfg":
            skip = True  # its value (job, hydra, all)
        elif arg.startswith("-") or arg == "...":
            continue  # -m, --cfg=job, --help; `...` stands for "more overrides"
        else:
            overrides.append(arg)
    return overrides


def check_composes(config_name: str, args: list[str]) -> None:
    overrides = hydra_overrides(args)
    for needs, module in PLUGINS.items():
        if needs in overrides:
            pytest.importorskip(module, reason=f"{needs} needs its Hydra plugin")
    with initialize_config_dir(config_dir=config_path(), version_base="1.3"):
        for variant in sweep_variants(overrides):
            compose(config_name=config_name, overrides=variant, return_hydra_config=True)


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def check_make(args: list[str]) -> None:
    targets = [a for a in args if "=" not in a] or ["train"]  # make's first rule
    assert set(targets) <= make_targets(), f"no such make target: {set(targets) - make_targets()}"
    for arg in args:
        if arg.startswith("ARGS=") and targets in (["train"], ["sweep"]):
            check_composes("train", shlex.split(arg.partition("=")[2]))


def argparse_flags(source: str) -> set[str]:
    return set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", source))


def script_flags(script: Path) -> set[str]:
    """A script's options: its own, and those of the scripts/ helpers it imports (step_benchmarks'
    --layers, --width, ...)."""
    source = script.read_text()
    helpers = {script.parent / f"{name}.py" for name in re.findall(r"^(?:from|import) (\w+)", source, re.M)}
    return argparse_flags(source).union(*(argparse_flags(h.read_text()) for h in helpers if h.is_file()))


def check_script(args: list[str]) -> None:
    if args[:1] == ["-m"]:  # python -m venv .venv
        return
    script = ROOT / args[0]
    assert script.is_file(), f"{args[0]} does not exist"
    flags = {a.partition("=")[0] for a in args[1:] if a.startswith("--")}
    missing = flags - script_flags(script)
    assert not missing, f"{args[0]} has no {missing}"


# Every `python scripts/NAME.py ...` in the README and all of docs/, the measurement records too.
SCRIPT_RUN = re.compile(r"python (?:\S*/)?(scripts/\w+\.py)((?: +(?:--[\w-]+|[^\s`|#-]\S*))*)")


def test_every_script_the_docs_name_exists_with_the_options_they_give_it() -> None:
    documents = [README, *sorted((ROOT / "docs").glob("*.md"))]
    named = 0
    for path in documents:
        text = path.read_text()
        for name in re.findall(r"\bscripts/\w+\.py\b", text):
            assert (ROOT / name).is_file(), f"{where(path)} names {name}, which does not exist"
            named += 1
        for match in SCRIPT_RUN.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            flags = set(re.findall(r"(?<!\S)(--[\w-]+)", match.group(2)))
            missing = flags - script_flags(ROOT / match.group(1))
            assert not missing, f"{where(path)}:{line}: {match.group(1)} has no {missing}"
    assert named > 100  # the records name their scripts


def check_report(args: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_cli(entry_point("chargpt-report"), "--help") == 0
    flags = {a.partition("=")[0] for a in args if a.startswith("--")}
    missing = {f for f in flags if f not in out.getvalue()}
    assert not missing, f"chargpt-report has no {missing}"


def check_pip(args: list[str]) -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    for arg in args:
        if match := re.fullmatch(r"\.\[([\w,-]+)\]", arg):
            assert set(match.group(1).split(",")) <= set(extras), f"pyproject.toml has no extra {arg}"


def test_the_version_is_written_once_and_the_installed_package_reports_it() -> None:
    # pyproject.toml takes it from chargpt.__version__: a second copy there would drift.
    import importlib.metadata

    import chargpt

    project = pyproject()["project"]
    assert "version" not in project and "version" in project.get("dynamic", [])
    assert importlib.metadata.version("chargpt") == chargpt.__version__


# The README's commands compose in the default run; the guides' (~100, a few tenths of a second
# each) in the slow set.
@pytest.mark.parametrize("command", [
    pytest.param(c, id=c.source, marks=() if c.source.startswith("README") else pytest.mark.slow)
    for c in shown_commands()
])
def test_every_command_shown_is_runnable(command: Command) -> None:
    program, args = program_and_args(command.argv)
    if program in HYDRA_CONFIG:
        check_composes(HYDRA_CONFIG[program], args)
    elif program == "make":
        check_make(args)
    elif program == "python":
        check_script(args)
    elif program == "chargpt-report":
        check_report(args)
    elif program == "pip":
        check_pip(args)
    else:
        assert program in UNCHECKED, f"{command.source}: add a check for `{program}` to this test"


def test_an_override_the_configs_lack_fails_the_check() -> None:
    """The check above can fail: a key that does not exist, or a group option that does not."""
    with pytest.raises(Exception, match="grad_norms"):
        check_composes("train", ["callbacks.train_monitor.grad_norms=false"])
    with pytest.raises(Exception, match="huge"):
        check_composes("train", ["-m", "model=tiny,huge"])
    with pytest.raises(Exception, match="prompts"):
        check_composes("sample", ["ckpt_path=RUN", "prompts=x"])


# --- the Python API example ------------------------------------------------------------------


def python_examples() -> list[tuple[Path, str]]:
    return [(p, code) for p in DOCS for _, code in fenced_blocks(p, "python") if "chargpt.load(" in code]


@pytest.mark.slow
def test_python_api_example_runs(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    examples = python_examples()
    assert examples, "no Python example with chargpt.load in the README or the guides"
    run_dir = tmp_path / "run"
    assert run_cli(entry_point("chargpt-train"), *train_args(corpus, run_dir, "sample.max_new_tokens=0")) == 0
    for path, example in examples:
        capsys.readouterr()
        code = re.sub(r'chargpt\.load\("[^"]+"\)', f'chargpt.load("{run_dir}")', example)
        code = code.replace('"ROMEO:"', '"The"').replace('"JULIET:"', '"A"')  # the test corpus's letters
        namespace: dict = {}
        exec(compile(code, str(path), "exec"), namespace)
        out = capsys.readouterr().out
        # print(generate(...)[0]): n1 characters and a newline; then, where the example streams,
        # n2 more characters.
        n1, *rest = (int(n) for n in re.findall(r"max_new_tokens=(\d+)", code))
        assert len(out) == n1 + 1 + sum(rest), out
        assert out[n1] == "\n"
        name = re.search(r"(\w+) = chargpt\.load\(", code).group(1)
        vocabulary = set(namespace[name].tokenizer.chars)
        assert set(out[:n1]) <= vocabulary and set(out[n1 + 1 :]) <= vocabulary
        # The same seed gives the same text: the example's generate call, again.
        again = re.search(rf"print\(({name}\.generate\(.*\))\[0\]\)", code).group(1)
        assert eval(again, namespace)[0] == out[:n1]


# --- the bad-input table's messages --------------------------------------------------------

RELIABILITY = ROOT / "docs" / "reliability.md"
ENTRY_POINTS = {"chargpt-train": "train", "chargpt-sample": "sample", "chargpt-eval": "evaluate"}
# Rows whose command needs more than a checkpoint to read (a text, a run, another machine's
# hardware, a model=auto timing), or names the doc's example folders (PLACEHOLDERS), are left to
# tests/test_bad_input.py.
NEEDS_SETUP = {
    "data.path", "init_from", "data.train_fraction", "model", "trainer", "trainer.devices",
    "trainer.accelerator", "device", "check_copy", "stride", "hydra.run.dir",
}
PLACEHOLDERS = re.compile(r"\b(RUN|OTHER|NOTES|FT_RUN|BASE_RUN)\b")


@dataclass(frozen=True)
class QuotedError:
    source: str  # docs/reliability.md:LINE
    command: str
    message: str
    condition: str  # what the command cell says after the command: "(or `1.5`)", ", its output ..."


def bad_input_rows() -> list[QuotedError]:
    """The Bad input table: a row's first code span in its command cell, and its message."""
    rows = []
    lines = RELIABILITY.read_text().splitlines()
    start = lines.index("## Bad input")
    for number, line in enumerate(lines[start:], start + 1):
        if line.startswith("## ") and number > start + 1:
            break
        cells = re.sub(r"`[^`]*`", lambda m: m.group(0).replace("|", "\0"), line).split("|")
        if len(cells) != 5:
            continue
        command, message = (re.search(r"`([^`]*)`", c.replace("\0", "|")) for c in cells[2:4])
        if command and message and message.group(1).startswith("error: "):
            text = re.sub(r"^\.\.\. ", "chargpt-train ", command.group(1))
            condition = cells[2].replace("\0", "|")[command.end() :].strip()
            rows.append(QuotedError(f"docs/reliability.md:{number}", text, message.group(1), condition))
    return rows


def runnable_here(row: QuotedError) -> bool:
    argv = shlex.split(row.command)
    keys = {a.partition("=")[0] for a in argv[1:]}
    return (
        argv[0] in ENTRY_POINTS and not keys & NEEDS_SETUP
        and all(a == "ckpt_path=RUN" for a in argv if a.startswith("ckpt_path="))  # no file of its own
        and not PLACEHOLDERS.search(row.message)
        and not PLACEHOLDERS.search(row.command.replace("ckpt_path=RUN", ""))
        and (not row.condition or row.condition.startswith("("))  # not "..., output to a full disk"
    )


def message_pattern(message: str) -> re.Pattern[str]:
    """The quoted message as a pattern: its `...` (an elision) stands for any text."""
    return re.compile(".*?".join(re.escape(part) for part in message.split("...")))


def test_the_bad_input_table_is_read() -> None:
    rows = bad_input_rows()
    assert len(rows) > 60 and sum(map(runnable_here, rows)) >= 20
    assert message_pattern("error: a ...; b").fullmatch("error: a x.y; b")
    assert not message_pattern("error: a ...; b").fullmatch("error: a x.y; c")


@pytest.mark.parametrize("row", [r for r in bad_input_rows() if runnable_here(r)], ids=lambda r: r.source)
def test_bad_input_table_quotes_what_the_command_prints(
    row: QuotedError, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Each runnable row of the table, as typed there (a run directory replaced by a checkpoint of
    the test's, a training text added), prints the message the table quotes."""
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(row.command)
    ckpt = make_checkpoint(tmp_path / "run.ckpt")
    args = [a.replace("ckpt_path=RUN", f"ckpt_path={ckpt}") for a in argv[1:]]
    if argv[0] == "chargpt-train":
        args += ["data=text", f"data.path={corpus}"]
    launch = importlib.import_module("chargpt.cli.launch")
    code = run_cli(getattr(launch, ENTRY_POINTS[argv[0]]), *args, prog=argv[0])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors, f"{row.command} exited {code}"
    assert message_pattern(row.message).fullmatch(errors[-1]), (
        f"{row.source} quotes\n  {row.message}\nbut {row.command} prints\n  {errors[-1]}"
    )


# --- the settings tables of the guides ---------------------------------------------------------

# A guide's table of a command's settings, and the config file whose defaults it states.
SETTINGS_TABLES = [("docs/sampling.md", "| option | default | what |", "sample"),
                   ("docs/serving-and-export.md", "| setting | default | what |", "serve")]
LITERAL = re.compile(r"-?\d[\d.e-]*|null|true|false|[\w.:-]+")  # one YAML scalar, not a description


def settings_table(guide: str, header: str) -> list[tuple[list[str], str]]:
    """Each row of the table: the settings it names (`host`, `port` in one row) and its default cell."""
    lines = (ROOT / guide).read_text().splitlines()
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        name_cell, default_cell = line.strip("|").split("|")[:2]
        rows.append((re.findall(r"`([\w.]+)`", name_cell), default_cell.strip()))
    return rows


@pytest.mark.parametrize(("guide", "header", "config"), SETTINGS_TABLES, ids=[t[2] for t in SETTINGS_TABLES])
def test_a_settings_table_states_its_commands_defaults(guide: str, header: str, config: str) -> None:
    """Each default the table states is the config file's, and every setting of the file is in the
    table (but ckpt_path, which the guide's text explains): a default changed or a setting added in
    the config alone fails here."""
    defaults = OmegaConf.load(Path(config_path()) / f"{config}.yaml")
    settings = {f"{key}.{sub}" if isinstance(value, dict) else key
                for key, value in OmegaConf.to_container(defaults).items() if key not in ("defaults", "hydra")
                for sub in (value if isinstance(value, dict) else [None])}
    shown: set[str] = set()
    for names, cell in settings_table(guide, header):
        for name, value in zip(names, cell.split(", ") if len(names) > 1 else [cell], strict=True):
            shown.add(name)
            default = OmegaConf.select(defaults, name, default="<absent>")
            if not value:  # a command-line setting of its own (prompt_file), not in the file
                assert default == "<absent>", f"{guide}: `{name}` shows no default; {config}.yaml has one"
                continue
            assert default != "<absent>", f"{guide}: `{name}` is not a setting of {config}.yaml"
            value, wrong = value.strip("`"), f"{guide}: `{name}` defaults to {default!r}, not {value}"
            if value in ("unset", "(required)"):
                assert default is None, wrong
            elif LITERAL.fullmatch(value):
                assert yaml.safe_load(value) == default, wrong
    left_out = sorted(settings - shown - {"ckpt_path"})
    assert not left_out, f"{guide} leaves out {left_out} of {config}.yaml"


def test_the_groups_table_lists_each_groups_options() -> None:
    """docs/configuration.md's table of groups names every group and every option file of each, and
    no option without one (Hydra's own `basic` launcher aside; `callbacks` names its two selections,
    not the file of each callback; `paths`, one file, is told of in the text)."""
    lines = (ROOT / "docs/configuration.md").read_text().splitlines()
    rows = lines[lines.index("| group | options | what it sets |") + 2 :]
    table = {}
    for row in rows[: next(i for i, r in enumerate(rows) if not r.startswith("|"))]:
        group, options = row.strip("|").split("|")[:2]
        # The options cell names the options in code spans before any parenthesis or `;`.
        named = re.findall(r"`([\w/]+)`", re.sub(r"\([^)]*\)|;.*", "", options))
        table[group.strip().strip("`")] = set(named)
    folder = Path(config_path())
    for group, named in table.items():
        files = {p.stem for p in (folder / group).glob("*.yaml")}
        wrong = f"docs/configuration.md: {group} lists {sorted(named)}; its folder has {sorted(files)}"
        assert named <= files if group == "callbacks" else named - {"basic"} == files, wrong
    groups = {p.name for p in folder.iterdir() if p.is_dir() and p.name != "hydra"} | {"hydra/launcher"}
    missing = sorted(groups - {"paths"} - set(table))
    assert not missing, f"docs/configuration.md lacks the groups {missing}"


# --- model=auto's printed block in docs/training.md ------------------------------------------

AUTO_HEADER = re.compile(
    r"model=auto: (?P<budget>[\d.]+) s budget, (?P<chars>[\d,]+) training characters; "
    r"\d+ shape\(s\) timed in (?P<seconds>[\d.]+) s \(target [\d.]+ tokens per non-embedding parameter\)"
)
AUTO_ROW = re.compile(
    r"(?P<mark>[ *]) (?P<shape>\d+x\d+ h\d+ ctx\d+ b\d+) +[\d,]+ +(?P<ms>[\d.]+) +(?P<steps>[\d,]+) "
    r"+(?P<tok>[\d.]+) +(?P<epochs>[\d.]+)"
)


def test_the_model_auto_block_shown_is_what_the_rule_prints_for_its_timings() -> None:
    """docs/training.md shows the block a model=auto run prints, from the command it names. Given
    the block's own timings, the rule must pick the starred shape with the rates, reason and
    re-run command shown, word for word: a change of the rule, its recipe or its wording that the
    example does not follow fails here."""
    from chargpt.training.auto_size import ladder
    from chargpt.training.auto_size.choice import Estimate
    from chargpt.training.auto_size.report import report
    from chargpt.training.auto_size.rule import nearest, settle
    from chargpt.training.auto_size.run_config import apply_choice

    guide = ROOT / "docs/training.md"
    [block] = [b.rstrip("\n") for _, b in fenced_blocks(guide, "text") if b.startswith("model=auto: ")]
    command = re.search(r"\(`(chargpt-train model=auto [^`]*)`", guide.read_text())
    assert command, "docs/training.md names no command for its model=auto block"
    header = AUTO_HEADER.fullmatch(block.splitlines()[0])
    rows = [m for line in block.splitlines()[2:] if (m := AUTO_ROW.fullmatch(line))]
    assert header and rows, block
    shapes = {s.name: s for s in ladder.LADDER}
    measured = [
        Estimate(shapes[r["shape"]], float(r["ms"]), int(r["steps"].replace(",", "")), float(r["tok"]),
                 float(r["epochs"]))
        for r in rows
    ]
    stopped = re.search(r"climb stopped: ([^;]+);", block)
    assert stopped, block
    best, why_shape = nearest(measured, stopped.group(1))
    assert [r["mark"] for r in rows].count("*") == 1
    assert best.shape.name == next(r["shape"] for r in rows if r["mark"] == "*")
    planned = re.search(r"of the ([\d,]+) steps it planned", guide.read_text())
    assert planned, "docs/training.md no longer says how many steps its model=auto example planned"
    assert int(planned.group(1).replace(",", "")) == best.steps, "the text and the block plan other steps"
    choice = settle(best, measured, why_shape)
    choice.calibration_seconds = float(header["seconds"])

    overrides = hydra_overrides(shlex.split(command.group(1))[1:])
    with initialize_config_dir(config_dir=config_path(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    # What `auto` resolved to on the machine of the example, as its last line names it.
    resolved = dict(re.findall(r"(trainer\.precision|matmul_precision)=(\S+)", block.splitlines()[-1]))
    with open_dict(cfg):
        cfg.trainer.precision = resolved["trainer.precision"]
        cfg.matmul_precision = resolved["matmul_precision"]
    apply_choice(cfg, choice, overrides, cfg.hydra.runtime.choices)
    budget = float(header["budget"])
    assert report(choice, budget, int(header["chars"].replace(",", ""))) == block
    assert f"budget_seconds={budget:g}" in overrides


@pytest.mark.slow  # it reads Tiny Shakespeare, downloaded once if absent
def test_the_memorised_text_example_states_what_its_command_and_text_give(shakespeare: Path) -> None:
    """docs/training.md's run on the first 1,400 characters of Tiny Shakespeare states its training
    characters, its epochs and the uniform guess; they follow from the command it shows and the
    text, so a command changed without running it again fails here."""
    import math

    text = (ROOT / "docs/training.md").read_text()
    claim = re.search(r"(\d+) steps on the first ([\d,]+) characters of Tiny Shakespeare \(`short\.txt`\), "
                      r"went over its ([\d,]+) training characters (\d+) times and ended at [\d.]+ against "
                      r"ln (\d+) = ([\d.]+)", " ".join(text.split()))
    command = re.search(r"^chargpt-train [^\n]*data\.path=short\.txt[^\n]*$", text, re.M)
    assert claim and command, "docs/training.md's memorised-text example changed shape"
    with initialize_config_dir(config_dir=config_path(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=hydra_overrides(shlex.split(command.group(0))[1:]))
    short = shakespeare.read_text()[: int(claim[2].replace(",", ""))]
    train_chars = len(short) - round(len(short) * (1 - cfg.data.train_fraction))
    tokens = cfg.trainer.max_steps * cfg.data.batch_size * cfg.model.block_size
    assert int(claim[1]) == cfg.trainer.max_steps
    assert int(claim[3].replace(",", "")) == train_chars
    assert int(claim[4]) == round(tokens / train_chars)
    assert int(claim[5]) == len(set(short)) and claim[6] == f"{math.log(len(set(short))):.2f}"


# Tiny Shakespeare's validation split, the data of the table's model=auto rows (a run logs it).
SHAKESPEARE_VAL_CHARS = 111_540
STARTUP_REFUSAL = re.compile(
    r"error: budget_seconds=(?P<budget>[\d.]+) is too small for model=auto on this machine: start-up took "
    r"(?P<used>[\d.]+) s of it before any shape could be timed, .* need ~(?P<reserve>[\d.]+) s after"
)
STEPS_REFUSAL = re.compile(
    r"error: budget_seconds=(?P<budget>[\d.]+) is too small for model=auto on this machine: start-up and "
    r"timing its smallest shape \((?P<shape>[^)]+)\) took (?P<used>\d+) s, and \d+ steps of it at "
    r"(?P<ms>\d+) ms"
)


def test_the_model_auto_refusals_shown_are_what_the_rule_prints_for_their_timings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bad-input table quotes two model=auto refusals measured on one machine. Given the timings
    each one shows, the rule must print it word for word, the budget it advises included: a change
    of the rule's margins or wording that the table does not follow fails here."""
    from chargpt.errors import ConfigError
    from chargpt.training.auto_size import ladder, rule

    monkeypatch.setattr(rule, "busy_advice", lambda: "")  # the table leaves out the load's clause
    shapes = {s.name: s for s in ladder.LADDER}
    rows = {row.source: row.message for row in bad_input_rows() if "too small for model=auto" in row.message}
    startup = [(s, m, STARTUP_REFUSAL.match(m)) for s, m in rows.items() if STARTUP_REFUSAL.match(m)]
    steps = [(s, m, STEPS_REFUSAL.match(m)) for s, m in rows.items() if STEPS_REFUSAL.match(m)]
    assert len(startup) == 1 and len(steps) == 1, rows
    for source, message, found in startup:
        with pytest.raises(ConfigError) as refused:
            rule.check_room_to_time(float(found["budget"]), float(found["used"]), float(found["reserve"]))
        assert f"error: {refused.value}" == message, f"{source}: the rule prints\n  {refused.value}"
    for source, message, found in steps:
        with pytest.raises(ConfigError) as refused:
            rule.check_enough_steps(shapes[found["shape"]], int(found["ms"]) / 1000, float(found["budget"]),
                                    float(found["used"]), SHAKESPEARE_VAL_CHARS)
        assert f"error: {refused.value}" == message, f"{source}: the rule prints\n  {refused.value}"


# --- links and tables ------------------------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_resolve(path: Path) -> None:
    text = FENCE.sub("", path.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{path.name} links to {target}: no such heading"


def table_cells(row: str) -> int:
    """Cells of a Markdown table row, not counting pipes inside code spans."""
    return len(re.sub(r"`[^`]*`", "", row).strip().strip("|").split("|"))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_tables_are_well_formed(path: Path) -> None:
    lines = FENCE.sub("", path.read_text()).splitlines()
    for number, line in enumerate(lines):
        if line.startswith("|") and (number == 0 or not lines[number - 1].startswith("|")):
            header = table_cells(line)
            separator = lines[number + 1]
            assert re.fullmatch(r"\|( ?:?-+:? ?\|)+", separator), f"{path.name}: bad separator {separator!r}"
            assert table_cells(separator) == header
            body = lines[number + 2 :]
            for row in body[: next((i for i, r in enumerate(body) if not r.startswith("|")), len(body))]:
                assert table_cells(row) == header, f"{path.name}: {row[:60]!r} has the wrong number of cells"


# --- the README walked through in a fresh clone (slow) ---------------------------------------

# Each run: 10 steps, one validation of 4 batches at the end, a 50-character sample.
SHORT = {
    "trainer.max_steps": "10", "trainer.val_check_interval": "10", "trainer.log_every_n_steps": "5",
    "+trainer.limit_val_batches": "4", "sample.max_new_tokens": "50",
}
SUMMARY = re.compile(
    r"step (\d+): val loss \d+\.\d{4} \(best \d+\.\d{4}\), \d+ s, \d+ tokens/s; run dir (\S+)"
)
SAMPLE_HEADER = "--- sample (temperature 0.8, seed 1337) ---"
EXAMPLE_RUN = re.compile(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d")


def shortened(args: list[str], **values: str) -> list[str]:
    settings = {**SHORT, **values}
    kept = [a for a in args if a.partition("=")[0] not in settings]
    return kept + [f"{k}={v}" for k, v in settings.items()]


class FreshShell:
    """Commands as a user types them in a new shell in the clone, after `source .venv/bin/activate`
    (`.venv` here is the environment running the tests; its chargpt is the clone's, through
    PYTHONPATH, as an editable install in the clone would be)."""

    def __init__(self, clone: Path, data_dir: Path) -> None:
        self.clone = clone
        bin_dir = str(Path(sys.executable).parent)
        # A shell that never activated the environment.
        path = [p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir]
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")},
            "PATH": os.pathsep.join(path), "PYTHONPATH": str(clone / "src"),
            "CHARGPT_DATA_DIR": str(data_dir), "COLUMNS": "200",
        }
        (clone / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
        self.activate = "source .venv/bin/activate" if (clone / ".venv/bin/activate").exists() else (
            f"export PATH={shlex.quote(bin_dir)}:$PATH"  # not a venv: its bin dir is what activation gives
        )

    def argv(self, argv: list[str]) -> list[str]:
        return ["bash", "-c", f'{self.activate} && exec "$@"', "bash", *argv]

    def run(self, argv: list[str]) -> str:
        done = subprocess.run(
            self.argv(argv), cwd=self.clone, env=self.env, capture_output=True, text=True, timeout=600
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{output[-3000:]}"
        return done.stdout if argv[0] == "chargpt-sample" else output

    def serve(self, argv: list[str], expect: str) -> str:
        """Start a server, wait until it prints `expect`, stop it."""
        process = subprocess.Popen(
            self.argv(argv), cwd=self.clone, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not any(expect in line for line in lines) and time.monotonic() < deadline:
                if process.poll() is not None:
                    reader.join(timeout=5)
                    break
                time.sleep(0.2)
            seen = "".join(lines)
            assert expect in seen, f"{shlex.join(argv)} did not print {expect!r}:\n{seen[-2000:]}"
            return seen
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.slow
def test_readme_walkthrough_in_a_fresh_clone(tmp_path: Path, shakespeare: Path) -> None:
    """Every command block of the README, in order, shortened, in a fresh clone of this checkout."""
    clone = tmp_path / "chargpt"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    shell = FreshShell(clone, shakespeare.parent.parent)
    readme = (clone / "README.md").read_text()
    shown_output = next(block for _, block in fenced_blocks(clone / "README.md", "text"))
    assert SUMMARY.search(shown_output) and SAMPLE_HEADER in shown_output  # what the test expects is shown

    first_run, sweep_dir, sweep_args = None, None, []
    commands = [c for line, block in fenced_blocks(clone / "README.md", "bash")
                for c in block_commands(clone / "README.md", line, block)]
    for command in commands:
        program, args = program_and_args(command.argv)
        args = [EXAMPLE_RUN.sub(str(first_run), a) if first_run else a for a in args]
        if command.text == "make train" or (program == "make" and args[:1] == ["train"]):
            out = shell.run(["chargpt-train", *shortened([])])
            summary = SUMMARY.search(out)
            assert summary and summary.group(1) == SHORT["trainer.max_steps"], out[-3000:]
            assert SAMPLE_HEADER in out
            first_run = summary.group(2)
        elif command.text == "make test":
            out = shell.run(["pytest", "-q", "-p", "no:cacheprovider", "tests/test_tokenizer.py"])
            assert re.search(r"\d+ passed", out), out[-3000:]
        elif program == "source":
            assert command.text == "source .venv/bin/activate"  # what every command here runs after
        elif program == "chargpt-train" and "-m" in args:
            out, sweep_args = shell.run([program, *shortened(args)]), args
            sweep_dir = next(a.partition("=")[2] for a in args if a.startswith("hydra.sweep.dir="))
            runs = combinations(hydra_overrides(args))
            assert len(list((clone / sweep_dir).glob("*/metrics.json"))) == runs > 1
            assert len(SUMMARY.findall(out)) == runs, out[-3000:]
        elif program == "chargpt-train" and any(a.startswith("ckpt_path=") for a in args):
            out = shell.run([program, *shortened(args, **{"trainer.max_steps": "15"})])
            summary = SUMMARY.search(out)
            assert summary and summary.group(1) == "15" and summary.group(2).endswith(first_run), out[-3000:]
        elif program == "chargpt-train":
            summary = SUMMARY.search(shell.run([program, *shortened(args)]))
            assert summary and summary.group(1) == SHORT["trainer.max_steps"]
        elif program == "chargpt-report":
            assert args == [sweep_dir]
            table = shell.run([program, *args])
            assert table.count("finished") == combinations(hydra_overrides(sweep_args)), table
            assert (clone / sweep_dir / "report.csv").is_file()
        elif program == "tensorboard":
            shell.serve([program, *args, "--host", "127.0.0.1", "--port", str(free_port())], "http://")
        elif program == "chargpt-sample":
            prompt = next(a.partition("=")[2] for a in args if a.startswith("prompt="))
            args = [a for a in args if not a.startswith("max_new_tokens=")]
            out = shell.run([program, *args, "max_new_tokens=100"])
            assert out.startswith(prompt) and len(out) == len(prompt) + 100 + 1, out
        else:
            pytest.fail(f"README.md has a command this walkthrough does not cover: {command.text}")
    assert first_run and sweep_dir and "chargpt-sample" in readme  # the walk reached them all
