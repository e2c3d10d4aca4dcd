"""What a run logs for TensorBoard, read back from its event files in-process (the same story
tests/test_tensorboard.py checks through a real TensorBoard server, in the slow run)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from chargpt.cli import train as train_cli
from chargpt.metric_names import MONITORABLE, STEP, group_rate, is_monitorable
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


@pytest.mark.slow  # a training; the maps themselves are checked by default above
def test_attention_maps_switch_off(tmp_path: Path) -> None:
    events = train_tiny(tmp_path, "~callbacks.attention_maps")
    assert events.Tags()["images"] == []
    assert "samples/text/text_summary" in events.Tags()["tensors"]
