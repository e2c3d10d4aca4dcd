"""What a run logs for TensorBoard, read back from its event files in-process (the same story
tests/test_tensorboard.py checks through a real TensorBoard server, in the slow run)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from chargpt.cli import train as train_cli
from chargpt.metric_names import MONITORABLE, STEP, VAL_LOSS, group_rate, is_monitorable
from conftest import run_cli

SCALARS = [
    "train/loss", "train/lr", "train/grad_norm", "train/tokens_per_sec", "train/step_time_ms",
    "val/loss", "val/bpc", "hparams/best_val_loss", "hparams/last_val_loss",
]


def test_what_a_checkpoint_may_monitor_is_what_a_run_logs() -> None:
    assert set(MONITORABLE) - {STEP} <= set(SCALARS)  # the step is the loggers' x-axis, not a scalar
    assert group_rate("") == "train/lr" and group_rate("muon") == "train/lr/muon"
    assert is_monitorable(group_rate("muon")) and not is_monitorable("train/lr_muon")


def train_tiny(tmp_path: Path, *overrides: str) -> EventAccumulator:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)
    run = tmp_path / "run"
    code = run_cli(
        train_cli.main, "data=text", f"data.path={corpus}", f"hydra.run.dir={run}",
        "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16", "data.batch_size=4",
        "trainer.max_steps=8", "trainer.val_check_interval=4", "+trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=2", "sample.max_new_tokens=0", "~callbacks.progress_bar",
        "trainer.enable_model_summary=false", "callbacks.sample_text.max_new_tokens=40", *overrides,
    )
    assert code == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    return events.Reload()


def test_scalars_text_images_and_hparams_are_logged(tmp_path: Path) -> None:
    events = train_tiny(tmp_path)
    tags = events.Tags()

    assert set(SCALARS) <= set(tags["scalars"])
    series = {tag: events.Scalars(tag) for tag in SCALARS}
    assert all(math.isfinite(e.value) for points in series.values() for e in points)
    assert [e.step for e in series["train/grad_norm"]] == [2, 4, 6, 8]
    # A last step off the logging interval is logged too, with its own values (not the last ones again).
    (tmp_path / "odd").mkdir()
    odd = train_tiny(tmp_path / "odd", "trainer.max_steps=7")
    for tag in ("train/grad_norm", "train/tokens_per_sec", "train/step_time_ms"):
        points = odd.Scalars(tag)
        assert [e.step for e in points] == [2, 4, 6, 7] and points[-1].value != points[-2].value, tag
    val_steps = [e.step for e in series["val/loss"]]
    assert val_steps == [4, 8]  # the steps taken, as the checkpoint names and metrics.json say
    for loss, bpc in zip(series["val/loss"], series["val/bpc"], strict=True):
        assert bpc.value == pytest.approx(loss.value / math.log(2), rel=1e-5)
    best = min(e.value for e in series["val/loss"])
    assert series["hparams/best_val_loss"][-1].value == pytest.approx(best)

    samples = events.Tensors("samples/text/text_summary")
    assert [s.step for s in samples] == val_steps
    assert all(len(s.tensor_proto.string_val[0]) > 40 for s in samples)

    images = events.Images("attention/maps")
    assert [i.step for i in images] == val_steps
    assert images[-1].width > 200 and images[-1].height > 200  # the labelled matplotlib figure

    plugin = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin[hparams_metadata.SESSION_START_INFO_TAG])
    hparams = start.session_start_info.hparams
    assert {"optimizer.lr", "model.n_layer", "model.n_embd", "data.batch_size", "seed"} <= set(hparams)
    assert hparams["optimizer.lr"].number_value == pytest.approx(1e-3)
    # The text it trained on: runs on different texts, all else alike, had the same row.
    assert hparams["data"].string_value == str(tmp_path / "corpus.txt")
    assert session_status(events) == "STATUS_SUCCESS"  # written at the end


@pytest.mark.slow  # a training; the maps themselves are checked by default above
def test_attention_maps_switch_off(tmp_path: Path) -> None:
    events = train_tiny(tmp_path, "~callbacks.attention_maps")
    assert events.Tags()["images"] == []
    assert "samples/text/text_summary" in events.Tags()["tensors"]


def fit_start_of_hparams(tmp_path: Path, extra: dict) -> tuple[dict, EventAccumulator]:
    """HParamsSummary at the start of a fit, without training: what the other trackers get, and
    the run's TensorBoard events."""
    from types import SimpleNamespace

    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from omegaconf import OmegaConf

    from chargpt.training.callbacks.tensorboard import HParamsSummary

    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tensorboard", version="")
    trainer = SimpleNamespace(loggers=[logger], max_steps=8, precision="32-true", world_size=1,
                              accumulate_grad_batches=1, datamodule=None)
    module = SimpleNamespace(parameters=lambda: [torch.zeros(3)], hparams={
        "model": {"n_layer": 2, "qk_norm": True, "logit_softcap": None}, "vocab": list("ab"),
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.99]}})
    callback = HParamsSummary(extra=OmegaConf.create(extra))  # as Hydra builds it
    callback.on_fit_start(trainer, module)
    logger.experiment.flush()
    return callback.params(trainer, module), EventAccumulator(str(tmp_path / "tensorboard")).Reload()


def session_status(events: EventAccumulator) -> str | None:
    """How TensorBoard's HParams view says the run ended (None: no record, shown as unknown)."""
    plugin = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    if hparams_metadata.SESSION_END_INFO_TAG not in plugin:
        return None
    end = plugin_data_pb2.HParamsPluginData.FromString(plugin[hparams_metadata.SESSION_END_INFO_TAG])
    return api_pb2.Status.Name(end.session_end_info.status)


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("oom"), "STATUS_FAILURE"), ("signal", None)])
def test_a_run_that_fails_is_no_success_in_the_hparams_view(tmp_path: Path, error, status) -> None:
    # The end record said success, written at the start: a failed run was listed as successful.
    from lightning.pytorch.loggers import TensorBoardLogger

    from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted
    from chargpt.training.callbacks.tensorboard import HParamsSummary

    if error == "signal":  # resumable: its resume says how it ended
        error = TrainingInterrupted(2, 5, tmp_path / "last.ckpt")
    _, events = fit_start_of_hparams(tmp_path, {})
    assert session_status(events) is None  # running
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tensorboard", version="")
    trainer = SimpleNamespace(loggers=[logger])
    HParamsSummary().on_exception(trainer, None, error)
    assert session_status(EventAccumulator(str(tmp_path / "tensorboard")).Reload()) == status


def test_a_failed_run_resumed_to_its_end_is_a_success_in_the_hparams_view(tmp_path: Path) -> None:
    # TensorBoard keeps the first end record of a run's folder: a sweep's failed job, continued to
    # its end, stayed listed as a failure.
    from lightning.pytorch.loggers import TensorBoardLogger

    from chargpt.training.callbacks.tensorboard import HParamsSummary

    def launch() -> SimpleNamespace:  # a trainer with the run's TensorBoard logger
        logger = TensorBoardLogger(save_dir=str(tmp_path), name="tensorboard", version="")
        return SimpleNamespace(loggers=[logger])

    _, events = fit_start_of_hparams(tmp_path, {})
    HParamsSummary().on_exception(launch(), None, RuntimeError("disk full"))
    assert session_status(EventAccumulator(str(tmp_path / "tensorboard")).Reload()) == "STATUS_FAILURE"
    _, events = fit_start_of_hparams(tmp_path, {})  # the resume starts: running again
    assert session_status(events) is None
    HParamsSummary().on_fit_end(launch(), None)
    assert session_status(EventAccumulator(str(tmp_path / "tensorboard")).Reload()) == "STATUS_SUCCESS"


def test_hparams_keep_their_types_and_leave_the_columns_to_every_run(tmp_path: Path) -> None:
    # A bool was the text "True"; each run wrote an experiment summary, of which TensorBoard takes
    # the first run's for all: a setting only another run had (muon's momentum) got no column.
    _, events = fit_start_of_hparams(tmp_path, {"seed": 7, "notes": {"clean": False, "corpus": "été 🎵"}})
    plugin = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert hparams_metadata.EXPERIMENT_TAG not in plugin
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin[hparams_metadata.SESSION_START_INFO_TAG])
    hparams = start.session_start_info.hparams
    assert start.session_start_info.group_name == ""  # one row per run, named after it
    assert hparams["model.qk_norm"].WhichOneof("kind") == "bool_value" and hparams["model.qk_norm"].bool_value
    assert hparams["notes.clean"].WhichOneof("kind") == "bool_value"  # an extra entry, nested: flat
    assert hparams["notes.corpus"].string_value == "été 🎵" and hparams["seed"].number_value == 7
    assert hparams["model.n_layer"].number_value == 2
    assert hparams["optimizer.betas"].string_value == "[0.9, 0.99]"
    assert hparams["model.logit_softcap"].string_value == "None"  # TensorBoard has no null


def test_other_trackers_get_the_extra_settings_flat_and_as_they_are(tmp_path: Path) -> None:
    # A nested extra entry reached MLflow and W&B as the text of a Python dict, and W&B got a bool,
    # None or a list as text (MLflow writes each value as text itself).
    params, _ = fit_start_of_hparams(tmp_path, {"notes": {"tags": ["a", "b"], "clean": True, "cap": None}})
    assert params["notes.tags"] == ["a", "b"] and params["notes.clean"] is True
    assert params["notes.cap"] is None
    assert "notes" not in params
    assert params["model.qk_norm"] is True and params["optimizer.betas"] == [0.9, 0.99]


def test_a_fine_tunes_best_val_loss_is_of_its_own_training_as_metrics_json_says(tmp_path: Path) -> None:
    # hparams/best_val_loss counted the validation before training, the starting point (the weights
    # of the run it started from): a fine-tune that only got worse had the start as its best in the
    # HParams view, MLflow and W&B, where metrics.json's best (and a sweep's ranking) is of its steps.
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.trainer.states import TrainerFn

    from chargpt.training.callbacks.tensorboard import BEST_VAL_LOSS, LAST_VAL_LOSS, HParamsSummary

    logged: list[tuple[int, dict]] = []
    other = SimpleNamespace(log_metrics=lambda figures, step: logged.append((step, dict(figures))))
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="tensorboard", version="")
    callback = HParamsSummary()
    # the starting point, then a worse and a better validation of its own steps
    for fn, step, loss in [(TrainerFn.VALIDATING, 0, 3.0), (TrainerFn.FITTING, 5, 3.5),
                           (TrainerFn.FITTING, 10, 3.25)]:
        trainer = SimpleNamespace(loggers=[logger, other], sanity_checking=False, global_step=step,
                                  state=SimpleNamespace(fn=fn),
                                  callback_metrics={VAL_LOSS: torch.tensor(loss)})
        callback.on_validation_end(trainer, None)  # type: ignore[arg-type]
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars(BEST_VAL_LOSS)] == [(5, 3.5), (10, 3.25)]
    assert [(e.step, e.value) for e in events.Scalars(LAST_VAL_LOSS)] == [(0, 3.0), (5, 3.5), (10, 3.25)]
    assert logged == [(0, {LAST_VAL_LOSS: 3.0}), (5, {LAST_VAL_LOSS: 3.5, BEST_VAL_LOSS: 3.5}),
                      (10, {LAST_VAL_LOSS: 3.25, BEST_VAL_LOSS: 3.25})]
