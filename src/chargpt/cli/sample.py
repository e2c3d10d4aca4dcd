"""chargpt-sample: stream text from a trained model (a run directory, a .ckpt file or an export);
check_copy=true also says how much of each sample the model copied from its training text."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.sample: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("sample")

import json
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from chargpt.checks import check_seed, whole_number, yes_no
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import (
    MODEL_FROM_CHECKPOINT,
    check_threads,
    cli_task,
    quiet_known_warnings,
    run_main,
    use_threads,
)
from chargpt.cli.prompts import check_output_writes, check_prompt, resolve_prompt
from chargpt.cli.sweep_jobs import job_heading, sweep_folder_removed, swept_settings, whole_in_parallel_sweeps
from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import (
    ConfigError,
    ask_for_less,
    exit_on_user_error,
    naming_what_ran_out,
    no_checkpoint_given,
)
from chargpt.inference import load_with_checkpoint, new_generator, pick_device
from chargpt.memorization import CopiedSpan, TextIndex
from chargpt.model.sampling import check_decoding, check_sampling
from chargpt.model_card import weights_step
from chargpt.plural import counted
from chargpt.recorded_text import check_train_fraction, training_text

CONFIG_NAME = "sample"  # configs/sample.yaml

# Longer copied spans are shown cut to this many characters (the length is given in full).
SHOWN_SPAN = 80


def copy_index(cfg: DictConfig, ckpt: dict[str, Any] | None, tokenizer: CharTokenizer) -> TextIndex:
    """The training text indexed for check_copy=true; read before sampling, so a missing or
    changed text is an error before any text is printed. `ckpt`: None for an export."""
    text, file = training_text(ckpt, str(cfg.ckpt_path), cfg.data.path, cfg.data.train_fraction)
    # A text given by path to an export, which records no reading settings: Windows line endings a
    # vocabulary without '\r' never wrote (its run read them as '\n') would keep every span that
    # crosses a line from matching, and the longest one found would be too short.
    text, done = tokenizer.as_written_here(text)
    if done:
        print(f"note: the training text {file} is read with {' and '.join(done)}, as the model's "
              "vocabulary writes them", file=sys.stderr)
    return TextIndex(text)


def sampling_from(file: str, step: int | None) -> str:
    return f"sampling from {file}" + (f" (step {step})" if step is not None else "")


def copy_line(span: CopiedSpan, sample: int, num_samples: int) -> str:
    shown = span.text if span.length <= SHOWN_SPAN else span.text[:SHOWN_SPAN] + "…"
    which = f" (sample {sample} of {num_samples})" if num_samples > 1 else ""
    return (f"copy check{which}: longest span found in the training text: "
            f"{counted(span.length, 'character')} ({json.dumps(shown, ensure_ascii=False)})")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@whole_in_parallel_sweeps
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    if heading := job_heading():  # a sweep's job, first: on stdout, where its samples go
        print(heading, flush=True)
    use_threads(cfg.threads)
    quiet_known_warnings()
    check_settings(cfg)  # bad settings (and, as it loads, prompt characters) before any text is printed
    with naming_what_ran_out(lambda: _smaller_settings(cfg)):
        _sample(cfg, yes_no("check_copy", cfg.check_copy))


def check_settings(cfg: DictConfig) -> None:
    """The checks of a sampling's settings that read no checkpoint: a sampling makes them first, and
    a sweep (-m) makes them on each value of each setting it sweeps before its first job starts
    (sweep_folder_removed's `check`)."""
    check_threads(cfg.threads)
    if not cfg.ckpt_path:
        raise no_checkpoint_given("chargpt-sample")
    whole_number("num_samples", cfg.num_samples, low=1)
    check_seed("seed", cfg.seed, optional=True)
    check_decoding(yes_no("use_cache", cfg.use_cache), yes_no("compile", cfg.compile))
    if yes_no("check_copy", cfg.check_copy):
        check_train_fraction(cfg.data.train_fraction)
    elif given := [key for key in ("path", "train_fraction") if cfg.data[key] is not None]:
        raise ConfigError(f"data.{given[0]}={cfg.data[given[0]]} does nothing without check_copy=true (it "
                          "names the training text the copy check reads); add check_copy=true, or drop it")
    check_sampling(cfg.temperature, cfg.top_k, cfg.top_p, cfg.max_new_tokens)
    pick_device(cfg.device)


def check_prompt_of(cfg: DictConfig, vocabulary: CharTokenizer) -> None:
    """A sweep's check of a job's prompt with a model's vocabulary, before its first job starts: the
    job itself refused it once its heading was printed, after the jobs before it had sampled. A
    swept prompt is named in the refusal: which of the sweep's prompts has the characters."""
    check_prompt(cfg.prompt, vocabulary, swept="prompt" in swept_settings())


def _smaller_settings(cfg: DictConfig) -> str:
    """What most likely asked for the memory that ran out, and the fix."""
    # (Samples are drawn one after another: num_samples does not add to what one needs.)
    tokens = int(cfg.max_new_tokens)
    fewer = f"max_new_tokens={tokens // 2}" if tokens > 1 else None
    return ask_for_less(f"max_new_tokens={tokens}", "sample", fewer, cfg.device)


def _sample(cfg: DictConfig, check_copy: bool) -> None:
    trained, ckpt, file = load_with_checkpoint(cfg.ckpt_path, pick_device(cfg.device))
    prompt = resolve_prompt(cfg.prompt, trained.tokenizer)
    check_output_writes(trained.tokenizer)
    if len(prompt) > (context := trained.model.block_size):
        # The sampler keeps the newest characters that fit: the rest of the prompt is never read.
        print(f"note: the prompt is {len(prompt):,} characters, more than the model's context of {context}: "
              f"samples continue from its last {context}", file=sys.stderr)
    index = copy_index(cfg, ckpt, trained.tokenizer) if check_copy else None
    # Which weights, on stderr (stdout stays the samples): a run directory's last.ckpt moves on
    # while its run trains, and one without it is sampled from its newest best checkpoint.
    print(sampling_from(file, weights_step(ckpt, file)), file=sys.stderr, flush=True)
    generator = new_generator(trained.device, cfg.seed)
    for i in range(cfg.num_samples):
        if i:
            print("---")
        print(prompt, end="", flush=True)
        generated: list[str] = []
        for ch in trained.stream(
            prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p,
            generator=generator, use_cache=cfg.use_cache, compile=cfg.compile,
        ):
            print(ch, end="", flush=True)
            generated.append(ch)
        print(flush=True)  # the sample's line ends before its copy check shows on a terminal
        if index is not None:
            # The generated characters only: a prompt quoted from the text says nothing of the model.
            span = index.longest_copied_span("".join(generated))
            print(copy_line(span, i + 1, cfg.num_samples), file=sys.stderr, flush=True)


def main() -> None:
    with sweep_folder_removed(check=check_settings, with_vocabulary=check_prompt_of) as prepare:
        run_main(_hydra_main, prepare=prepare, checkpoint_sweeps=True, config_name=CONFIG_NAME,
                 unused=MODEL_FROM_CHECKPOINT)
