"""chargpt-serve: an OpenAI-style completions API and a web page for a trained model."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.serve: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("serve")

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from chargpt.checks import utf8_text, whole_number, yes_no
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import (
    MODEL_FROM_CHECKPOINT,
    check_threads,
    cli_task,
    quiet_known_warnings,
    run_main,
    use_threads,
)
from chargpt.cli.held_weights import SERVER_HOLDS, held, held_weights_note, training_run
from chargpt.errors import (
    ConfigError,
    ask_for_less,
    exit_on_user_error,
    naming_what_ran_out,
    needs_extra,
    no_checkpoint_given,
)
from chargpt.inference import TrainedModel, load_with_checkpoint, pick_device
from chargpt.model_card import ModelCard, card_for

if TYPE_CHECKING:  # (imported where used: chargpt-serve without its extra says what to install)
    from chargpt.serving.engine import Engine
    from chargpt.serving.protocol import Limits

CONFIG_NAME = "serve"  # configs/serve.yaml


def check_settings(cfg: DictConfig) -> None:
    if not cfg.ckpt_path:
        raise no_checkpoint_given("chargpt-serve")
    if isinstance(cfg.port, bool) or not isinstance(cfg.port, int) or not 0 <= cfg.port <= 65535:
        raise ConfigError(f"port={cfg.port!r} must be a number from 0 to 65535 (0 = any free port)")
    for name, low in (("max_concurrency", 1), ("max_queue", 0), ("max_tokens", 0), ("max_tokens_cap", 0),
                      ("max_n", 1), ("max_choices", 1)):
        whole_number(name, cfg[name], low)
    if cfg.max_tokens > cfg.max_tokens_cap:
        raise ConfigError(f"max_tokens={cfg.max_tokens} is above max_tokens_cap={cfg.max_tokens_cap}; "
                          "lower it or raise the cap")
    if cfg.max_n > cfg.max_choices:
        raise ConfigError(f"max_n={cfg.max_n} is above max_choices={cfg.max_choices}, the choices of a "
                          "whole request; lower max_n or raise max_choices")
    check_threads(cfg.threads)
    yes_no("compile", cfg.compile)
    utf8_text("name", cfg.name)  # the model's id in every answer's JSON
    pick_device(cfg.device)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    quiet_known_warnings()
    check_settings(cfg)
    serve_model(cfg)


def serve_model(cfg: DictConfig) -> None:
    """Serve the model of cfg.ckpt_path (a run, a checkpoint or an export) until Ctrl-C or SIGTERM:
    its port bound first, then the model loaded and warmed up, then the port listens."""
    _check_serving_installed()
    from chargpt.serving.app import create_app
    from chargpt.serving.server import LOG_LEVELS, LOOPBACK, bind, serve, url_of

    if cfg.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level={cfg.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    sock = bind(str(cfg.host), cfg.port)  # first: a port in use is reported before the model loads
    try:
        use_threads(cfg.threads)
        trained, card, note = _loaded(cfg)
        with _warmed_up_engine(cfg, trained) as engine:
            app = create_app(engine, trained.tokenizer, card, _limits(cfg))
            if str(cfg.host) not in LOOPBACK:
                print(f"warning: host={cfg.host} lets other machines reach this server (no authentication)")
            if note is not None:  # not the run's trained weights: it still trains, or stopped early
                print(f"note: {note}", file=sys.stderr, flush=True)
            url = url_of(sock)
            ready = f"serving {card.name} ({held(card)}) at {url}/ (API: {url}/v1)"
            serve(app, sock, str(cfg.log_level), on_ready=lambda: print(ready, flush=True))
    finally:
        sock.close()


def _check_serving_installed() -> None:
    """The serving packages (the `serve` extra), asked for before anything is bound or loaded."""
    try:
        from chargpt.serving import app, engine, protocol, server  # noqa: F401
    except ImportError as err:
        raise ConfigError(needs_extra("chargpt-serve", f"the {err.name} package", "serve")) from None


@contextlib.contextmanager
def _warmed_up_engine(cfg: DictConfig, trained: TrainedModel) -> Iterator[Engine]:
    """The decoding engine, started and warmed up (compiled, where asked): the server listens only
    once the model answers at full speed. Closed at the end."""
    from chargpt.serving.engine import Engine

    with naming_what_ran_out(lambda: _smaller_settings(cfg)):
        engine = Engine(trained.model, trained.tokenizer, cfg.max_concurrency, cfg.max_queue, cfg.compile)
    engine.start()
    try:
        if cfg.compile:
            print("compiling the decoding step (tens of seconds, once)...", flush=True)
        with naming_what_ran_out(lambda: _smaller_settings(cfg)):
            engine.warm_up()
        yield engine
    finally:
        engine.close()


def _limits(cfg: DictConfig) -> Limits:
    """What one request may ask for. (The setting max_tokens is the default a request gets; Limits'
    max_tokens is the cap.)"""
    from chargpt.serving.protocol import Limits

    return Limits(default_max_tokens=cfg.max_tokens, max_tokens=cfg.max_tokens_cap, max_n=cfg.max_n,
                  max_choices=cfg.max_choices)


def _loaded(cfg: DictConfig) -> tuple[TrainedModel, ModelCard, str | None]:
    """The model cfg.ckpt_path holds, what it says of itself, and the note for weights that are
    not its run's trained ones."""
    training = training_run(str(cfg.ckpt_path))  # before the read, as chargpt-export asks it
    trained, ckpt, file = load_with_checkpoint(cfg.ckpt_path, pick_device(cfg.device))
    card = card_for(cfg.ckpt_path, trained, cfg.name, ckpt)
    return trained, card, held_weights_note(training, ckpt, Path(file), card.step, SERVER_HOLDS)


def _smaller_settings(cfg: DictConfig) -> str:
    """What most likely asked for the memory that ran out at the start, and the fix: the key/value
    cache holds a row of the model's whole context for each of max_concurrency prompts."""
    rows = int(cfg.max_concurrency)
    settings = (f"max_concurrency={rows} (a key/value cache row of the model's whole context per prompt "
                "decoded at once)")
    fewer = f"max_concurrency={rows // 2}" if rows > 1 else None
    return ask_for_less(settings, "serve", fewer, cfg.device)


def main() -> None:
    run_main(_hydra_main, config_name=CONFIG_NAME, unused=MODEL_FROM_CHECKPOINT)
