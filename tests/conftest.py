"""Shared test helpers and fixtures: generated corpora, an isolated cache, tiny training runs and
the console scripts called in-process."""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.util
import io
import os
import random
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

import hydra_shortcuts

if TYPE_CHECKING:
    from chargpt.training import CharLM

# torch and Lightning are imported where they are used, not here: with `make test`'s workers this
# module is also loaded by the process that only hands tests out, and their ~8 s of imports there
# would hold every worker's start back.

# A test run started in the background by a script (`make test-slow &`) inherits Ctrl-C ignored,
# and so would every command the tests start: the tests that send one would see it ignored. A
# Python handler here becomes the default again in each started process.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Small enough to train in seconds; every test model uses it unless it needs Tiny Shakespeare.
TINY_MODEL = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=16"]

hydra_shortcuts.install()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """One torch thread per test process: the test models are too small to gain from more, `make
    test` runs one worker per core, and on a busy machine a thread waiting for a core makes every
    small operation several times slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _float32_products() -> Iterator[None]:
    """A training run sets torch's float32 matmul precision for its process (matmul_precision:
    `medium` on a CPU with AMX); tests share a process, and fixtures that train run before this
    one, so each test starts from torch's default, as a command that trains nothing does."""
    import torch

    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision("highest")


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Hydra's --info sets the root logger to DEBUG with a handler on the stdout of its moment
    (a test's captured one, closed after it): later tests in the process would log into it."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _library_log_handlers_on_live_streams() -> Iterator[None]:
    """Lightning gives its loggers a handler on the stderr of the moment it is first imported: in a
    test, the test's captured one, closed after it, and each later Lightning line in the process
    was a "--- Logging error ---" (a file of tests run alone, whose first in-process run imports
    Lightning). Such a handler writes to stderr again, as it does where Lightning was imported
    before any test."""
    import logging

    yield
    loggers = logging.Logger.manager.loggerDict.values()  # (the root's: _root_logger_restored)
    for handler in (h for logger in loggers for h in getattr(logger, "handlers", [])):
        if (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                and getattr(handler.stream, "closed", False)):
            handler.stream = sys.stderr  # (not setStream, which flushes the closed stream first)


@pytest.fixture(autouse=True)
def _stop_signal_handlers_restored() -> Iterator[None]:
    """A console script that has ended leaves its process a handler for Ctrl-C and SIGTERM (the
    first ignored, the second ends it: the process only exits then). A test that runs one in this
    process (through chargpt.cli.launch) would leave it to the tests after it, whose own signals
    would then end the test run."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in handlers.items():
        if handler is not None:
            signal.signal(s, handler)


@pytest.fixture(autouse=True)
def _no_hydra_run_in_effect() -> Iterator[None]:
    """Hydra leaves the config of a command's run set in its process after the run ends: a test
    after one that ran a command with --config-dir read that folder as its own run's (each test
    starts as a fresh process does, outside any run)."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None
    yield
    HydraConfig.instance().cfg = None


@pytest.fixture(scope="session", autouse=True)
def _event_files_in_order() -> None:
    """TensorBoard reads a folder's event files in name order, and a name ends in the second it was
    made, the process id and a count of the files that process made: a test that stops a run and
    resumes it in the same process and second got `...784.10` read before `...784.9` once the count
    passed 9, so the resume's steps were read first and purged as out of order. A command resumes in
    a new process, seconds later; here the count starts where its digits stay the same."""
    from tensorboard.summary.writer import event_file_writer

    event_file_writer._global_uid = event_file_writer.AtomicCounter(10**6)


@pytest.fixture(scope="session", autouse=True)
def _bundled_fonts_only() -> Iterator[None]:
    """Text in a picture falls back to an installed font that draws a character the default one
    lacks: the tests see matplotlib's own fonts only (no CJK, no emoji), so what they draw is the
    same on every machine."""
    from chargpt import glyphs

    installed = glyphs._installed_fonts

    def bundled() -> list[Any]:
        import matplotlib

        return [entry for entry in installed() if entry.fname.startswith(matplotlib.get_data_path())]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(glyphs, "_installed_fonts", bundled)
        yield


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user cache a command falls back to without CHARGPT_CACHE_DIR (a module's fixture trains
    before _isolated_cache sets it; some tests unset it): the session's own folder, not the home
    folder's (its file-sha256.json would collect every test's files)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user cache")))
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGPT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 90 kB of pseudo-English with a 20-odd character vocabulary."""
    rng = random.Random(0)
    words = "the king queen lord of and to my thy thou art love death night day sweet fair good".split()
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 10))).capitalize() + "."
        for _ in range(3000)
    ]
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    """Tiny Shakespeare from the data directory (CHARGPT_DATA_DIR, else ./data); downloaded if absent."""
    from chargpt.data.corpus import default_data_dir, resolve_corpus

    url = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    sha = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    return resolve_corpus(Path(default_data_dir()) / "tinyshakespeare" / "input.txt", url, sha)


def lacks(*modules: str) -> bool:
    """Whether any of these modules is not installed, found without importing it: the optional
    extras' libraries take seconds to import, and every test worker collects every test module."""
    return any(importlib.util.find_spec(name) is None for name in modules)


def free_port() -> int:
    """A local port nothing listens on (free when asked: bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str, int]:
    """OpenAI's `stop`, by brute force: the text up to where it first contains one of the sequences,
    less that sequence (of those ending there, the one that starts first); its finish_reason; and the
    characters generated until then, the sequence's included."""
    for end in range(1, len(text) + 1):
        starts = [end - len(s) for s in stops if text[:end].endswith(s)]
        if starts:
            return text[: min(starts)], "stop", end
    return text, "length", len(text)


def write_corpus(path: Path, n_chars: int = 4000, seed: int = 0, alphabet: str = "abcdefgh ijk\n") -> Path:
    """A small random text over a fixed alphabet (every character occurs)."""
    path.write_text(_random_text(n_chars, seed, alphabet), encoding="utf-8")
    return path


@functools.cache
def _random_text(n_chars: int, seed: int, alphabet: str) -> str:
    # Drawn once per process: the suite writes the same few texts hundreds of times.
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n_chars))


def callback_of_ones_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str) -> Path:
    """A callback class of the user's own, `module`.Mine in `tmp_path`/my code, imported as a user
    does: PYTHONPATH='my code', from `tmp_path`. Returns that folder; the caller adds
    +callbacks.mine._target_=`module`.Mine and drops `module` from sys.modules after."""
    mine = tmp_path / "my code"
    mine.mkdir()
    (mine / f"{module}.py").write_text("import lightning\nclass Mine(lightning.Callback): pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("PYTHONPATH", "my code")
    monkeypatch.syspath_prepend(str(mine))
    return mine


def train_args(corpus: Path, run_dir: Path, *extra: str) -> list[str]:
    """A 20-step run with everything on (TensorBoard with its text samples and attention maps,
    checkpoints, a 20-character closing sample)."""
    return [
        "data=text", f"data.path={corpus}", f"hydra.run.dir={run_dir}", *TINY_MODEL,
        "trainer.max_steps=20", "trainer.val_check_interval=10", "trainer.log_every_n_steps=5",
        "scheduler.warmup_steps=2", "optimizer.lr=1e-2", "sample.max_new_tokens=20",
        "callbacks.sample_text.max_new_tokens=40", *extra,
    ]


def offline_default_corpus_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small default corpus in `folder`/data, where a command run there without CHARGPT_DATA_DIR
    (unset here) looks for it; a download fails, as offline."""
    import urllib.error
    import urllib.request

    monkeypatch.delenv("CHARGPT_DATA_DIR", raising=False)
    (folder / "data" / "tinyshakespeare").mkdir(parents=True)
    write_corpus(folder / "data" / "tinyshakespeare" / "input.txt")

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


def on_the_default_corpus(args: list[str]) -> list[str]:
    """Training arguments without their text: the default corpus is read."""
    return [a for a in args if not a.startswith(("data=", "data.path="))]


def bare_train_args(corpus: Path, run_dir: Path | None, *extra: str) -> list[str]:
    """The tiny model with no logger, progress bar or sample: what the reliability tests compare
    step by step (they set the step counts themselves)."""
    args = [
        "data=text", f"data.path={corpus}", "data.batch_size=4", "data.val_batch_size=32", *TINY_MODEL,
        "trainer.enable_model_summary=false", "~callbacks.progress_bar", "logger=none",
        "sample.max_new_tokens=0", "trainer.log_every_n_steps=1",
    ]
    if run_dir is not None:
        args.append(f"hydra.run.dir={run_dir}")
    return [*args, *extra]


def train_two_step_run(root: Path) -> tuple[Path, Path]:
    """A finished two-step run of the tiny model and its text, under `root`: what the tests of
    refused resumes read, trained once per module by their fixtures."""
    from chargpt.cli.train import main as train_main

    corpus = write_corpus(root / "corpus.txt")
    args = bare_train_args(corpus, root / "run", "trainer.max_steps=2", "trainer.val_check_interval=2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHARGPT_CACHE_DIR", str(root / "cache"))
        assert run_cli(train_main, *args) == 0
    return root / "run", corpus


def run_cli(main: Callable[[], None], *args: str, prog: str = "chargpt") -> int:
    """Run a console-script entry point as `prog *args` in this process; returns its exit code."""
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        main()
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved


def run_main(
    main: Callable[[], None], argv: list[str], capsys: pytest.CaptureFixture
) -> tuple[int, str, str]:
    """run_cli, then what was printed since the last read: (exit code, stdout, stderr)."""
    code = run_cli(main, *argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class StepHook:
    """Wraps CharLM.training_step: records (step, loss) and can act at a given step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from chargpt.training import CharLM

        self.losses: list[tuple[int, float]] = []
        self.actions: dict[int, Callable[[CharLM], None]] = {}
        original = CharLM.training_step

        def training_step(module: CharLM, batch, batch_idx):  # type: ignore[no-untyped-def]
            step = module.trainer.global_step + 1
            if step in self.actions:
                self.actions.pop(step)(module)
            loss = original(module, batch, batch_idx)
            self.losses.append((step, loss.item()))
            return loss

        monkeypatch.setattr(CharLM, "training_step", training_step)

    def take(self) -> list[tuple[int, float]]:
        losses, self.losses = self.losses, []
        return losses

    def send_signal_at(self, step: int, signum: int = signal.SIGINT) -> None:
        self.actions[step] = lambda module: os.kill(os.getpid(), signum)


def signal_at_step_end(
    monkeypatch: pytest.MonkeyPatch, step: int, signum: int = signal.SIGINT,
    when: Callable[[], bool] = lambda: True,
) -> Callable[[], None]:
    """A real `signum` (a Ctrl-C, a scheduler's SIGTERM) at the end of training step `step`, where
    `when()` holds: handled there, before the step's boundary is checked. Returns what puts the
    step's end back as it was (a later launch in the same test runs unsignalled)."""
    from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt

    at_step_end = GracefulInterrupt.on_train_batch_end

    def signalled(self, trainer, *rest):  # type: ignore[no-untyped-def]
        if trainer.global_step == step and when():
            os.kill(os.getpid(), signum)
        at_step_end(self, trainer, *rest)

    monkeypatch.setattr(GracefulInterrupt, "on_train_batch_end", signalled)
    return lambda: monkeypatch.setattr(GracefulInterrupt, "on_train_batch_end", at_step_end)


def make_checkpoint(path: Path, chars: str = "\n abcdefghijk") -> Path:
    """A minimal chargpt checkpoint (untrained weights), written without training."""
    import torch

    from chargpt.model import ModelConfig, build_model

    config = ModelConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)
    vocab = sorted(set(chars))
    with torch.random.fork_rng():  # the same weights whichever tests ran before in this process
        torch.manual_seed(0)
        model = build_model(config, len(vocab))
    torch.save(
        {
            "hyper_parameters": {"model": config.to_dict(), "vocab": vocab},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


os.environ.setdefault("HYDRA_FULL_ERROR", "0")


def poison_weights(module: CharLM) -> None:
    """Fill one parameter with NaN: the next loss is NaN (for the non-finite guard's tests)."""
    import torch

    with torch.no_grad():
        next(module.parameters()).fill_(float("nan"))


def assert_stopped_on_nan(code: int, out: str, err: str, run: Path, step: int) -> dict:
    """The run stopped with one error line naming the NaN of `step`, kept its last checkpoint, and
    that checkpoint's weights are finite; returns the checkpoint."""
    import torch

    assert code == 2 and "Traceback" not in out + err
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert f"the training loss became nan at step {step}" in line
    assert f"the last checkpoint {run / 'checkpoints' / 'last.ckpt'} is kept" in line
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    return last


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py imported as module NAME (registered, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(SCRIPTS))  # its sibling helpers (script_cli), as running it finds them
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


@contextlib.contextmanager
def in_hydra_run(overrides: list[str]) -> Iterator[None]:
    """The block runs as inside `chargpt-train OVERRIDES`: Hydra's config of that run is set (what
    a run asks of Hydra, its overrides and folders, answers from it), and unset after."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from chargpt.cli import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = None


# A Markdown code block: its language and its text.
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.S | re.M)


def fenced_blocks(path: Path, language: str) -> Iterator[tuple[int, str]]:
    """The `language` code blocks of a Markdown file: (the line it starts on, its text)."""
    text = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        if match.group(1) == language:
            yield text.count("\n", 0, match.start(2)) + 1, match.group(2)


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Makes a file or folder unreadable: chmod 000, and (root reads through that) the calls that
    read it raising PermissionError as they would. `listable=True`: a folder readable but not
    searchable (chmod a-x): its names are listed, but none of them can be looked up."""
    locked: set[Path] = set()
    folders: set[Path] = set()
    changed: set[Path] = set()

    def denied(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    scandir, open_ = os.scandir, io.open

    def below_a_locked_folder(path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and not folders.isdisjoint(Path(os.fspath(path)).parents)

    def blocked(path: object) -> bool:  # locked itself, or reached through a folder without search permission
        return (isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)) in locked) or \
            below_a_locked_folder(path)

    def locked_scandir(path: object = ".") -> object:
        if blocked(path):
            raise denied(path)
        return scandir(path)

    def looked_up(stat_call: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def locked_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
            if below_a_locked_folder(path):
                raise denied(path)  # a name below a folder without search permission
            return stat_call(path, *args, **kwargs)

        return locked_stat

    def locked_open(file: object, *args: object, **kwargs: object) -> object:
        if blocked(file):
            raise denied(file)
        return open_(file, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", locked_scandir)
    monkeypatch.setattr(os, "stat", looked_up(os.stat))
    monkeypatch.setattr(os, "lstat", looked_up(os.lstat))
    monkeypatch.setattr(io, "open", locked_open)  # Path.open's and zipfile's

    def lock(path: Path, listable: bool = False) -> None:
        if path.is_dir():
            folders.add(path)
        path.chmod(0o444 if listable else 0)
        changed.add(path)
        if not listable:
            locked.add(path)

    yield lock
    for path in changed:  # for the temporary folder's removal
        path.chmod(0o755)
