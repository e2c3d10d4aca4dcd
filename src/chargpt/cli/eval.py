"""chargpt-eval: full-split loss and bits per character of a checkpoint, as one JSON line, with the
loss by position in the context window and by class of character (chargpt.checkpoint_eval scores
it; this entry point reads the command line and refuses the settings it does not use)."""

from __future__ import annotations

if __name__ == "__main__":  # python -m chargpt.cli.eval: as its console script runs it, whose
    from chargpt.cli.launch import run_as_main  # handling of a Ctrl-C covers the imports below

    run_as_main("eval")

import json
import sys

import hydra
from omegaconf import DictConfig

from chargpt.checkpoint_eval import check_asked, evaluate_checkpoint
from chargpt.checks import as_utf8
from chargpt.cli import CONFIG_PATH
from chargpt.cli.common import check_threads, cli_task, quiet_known_warnings, run_main, use_threads
from chargpt.cli.sweep_jobs import job_heading, results_table, sweep_folder_removed, whole_in_parallel_sweeps
from chargpt.data.corpus import check_data_dir
from chargpt.errors import ask_for_less, exit_on_user_error, naming_what_ran_out
from chargpt.evaluation import check_stride
from chargpt.hydra_run import task_overrides
from chargpt.inference import pick_device
from chargpt.overrides import as_typed, parsed_override

CONFIG_NAME = "eval"  # configs/eval.yaml

# Settings chargpt-eval does not use (the model comes from the checkpoint; scoring draws no random
# numbers): passing one would silently do nothing, so it is refused with what to do instead.
UNUSED = {
    "model": "the model and its context length come from the checkpoint",
    "data.block_size": "the context length comes from the checkpoint",
    "data.batch_size": "the evaluation batch is batch_size=N",
    "data.val_batch_size": "the evaluation batch is batch_size=N",
    "data.val_max_chars": "every character of the split is scored",
    "data.num_workers": "the evaluation reads the text in this process",
    "data.seed": "the evaluation draws no random numbers",
    "seed": "the evaluation draws no random numbers",
    # (chargpt-sample's, which its docs name beside chargpt-eval: not a misspelling to correct)
    "check_copy": "it is chargpt-sample's check of its samples against the training text; an evaluation "
                  "writes no text",
}


def overridden_keys() -> dict[str, str]:
    """The keys (and groups) set on the command line, each with the override as typed."""
    return {parsed_override(text).key_or_group: as_typed(text) for text in task_overrides()}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
@cli_task
@whole_in_parallel_sweeps
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> dict:
    if heading := job_heading():  # a sweep's job, first: on stderr (stdout stays one JSON line a job)
        print(heading, file=sys.stderr, flush=True)
    use_threads(cfg.threads)
    quiet_known_warnings()
    check_settings(cfg)
    with naming_what_ran_out(lambda: _smaller_settings(cfg)):
        line = evaluate_checkpoint(
            cfg.ckpt_path, cfg.data, cfg.split, cfg.batch_size, cfg.stride, cfg.device, cfg.precision,
            cfg.matmul_precision, given=overridden_keys(),
        )
    print(json_line(line), flush=True)
    return line  # a sweep's sweeper has it back, for the table


def check_settings(cfg: DictConfig) -> None:
    """The checks of an evaluation's settings that read no checkpoint and no text: an evaluation makes
    them first, and a sweep (-m) makes them on each value of each setting it sweeps before its first
    job starts (sweep_folder_removed's `check`)."""
    check_threads(cfg.threads)
    check_data_dir(cfg)
    check_asked(cfg.ckpt_path, cfg.split, cfg.batch_size)
    pick_device(cfg.device)


def check_stride_of(cfg: DictConfig, block_size: int) -> None:
    """A sweep's check of a job's stride with the context length of a checkpoint it scores, before its
    first job starts (the job itself checks it once it has read its checkpoint)."""
    if cfg.stride is not None:
        check_stride(cfg.stride, block_size)


def _smaller_settings(cfg: DictConfig) -> str:
    """What most likely asked for the memory that ran out, and the fix (batch_size is valid by now)."""
    batch = int(cfg.batch_size)
    fewer = f"batch_size={batch // 2}" if batch > 1 else None
    return ask_for_less(f"batch_size={batch}", "evaluate", fewer, cfg.device)


def json_line(result: dict) -> str:
    """The result as one JSON line, its text as written (é, not \\u00e9), unless a path named in
    another encoding (a Latin-1 folder name) has no UTF-8: then JSON's escapes (a strict UTF-8
    output refused the line with a traceback)."""
    text = json.dumps(result, ensure_ascii=False)
    return text if as_utf8(text) == text else json.dumps(result)


def main() -> None:
    with sweep_folder_removed(check=check_settings, with_context=check_stride_of) as prepare:
        run_main(_hydra_main, prepare=prepare, checkpoint_sweeps=True, config_name=CONFIG_NAME, unused=UNUSED)
    if table := results_table():
        print(table, file=sys.stderr)
