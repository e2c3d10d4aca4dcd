"""MLflow and W&B get what TensorBoard gets, read back through their own client and files."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from chargpt.cli.exits import Terminated
from chargpt.cli.train import main
from chargpt.errors import ConfigError
from chargpt.stop_signals import SignalOutsideTraining
from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted
from chargpt.training.run_checks import check_constructor_settings
from chargpt.training.trackers import flat_params
from conftest import StepHook, bare_train_args, free_port, run_cli, train_args


def test_flat_params_are_config_keys() -> None:
    nested = {
        "model": {"n_layer": 2, "arch": "gpt"},
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 0.01},
        "vocab": list("abc"),
    }
    assert flat_params(nested) == {
        "model.n_layer": 2, "model.arch": "gpt", "optimizer.name": "AdamW", "optimizer.lr": 0.01,
        "vocab_size": 3,
    }


def csv_val_losses(run: Path) -> dict[int, float]:
    with (run / "csv" / "metrics.csv").open() as f:
        return {int(r["step"]): float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")}


@pytest.mark.slow
def test_no_logger_as_an_empty_list_and_wandb_without_a_login(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # logger=[] was omegaconf's traceback; W&B without a login its own.
    args = [a for a in bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2") if a != "logger=none"]
    assert run_cli(main, *args, "logger=[]") == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "metrics.json", "status.json", "train.log"]
    pytest.importorskip("wandb")
    for variable in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb config"))
    capsys.readouterr()
    assert run_cli(main, *args, "logger=wandb", f"hydra.run.dir={tmp_path / 'w'}") == 2
    err = capsys.readouterr().err
    # Only the error: W&B's own warning that Lightning's anonymous=None has no effect came first.
    [line] = err.strip().splitlines()
    assert line.startswith("error: logger=wandb cannot start a W&B run (") and "WANDB_MODE=offline" in line
    assert "Traceback" not in err


def test_a_wandb_setting_is_checked_against_wandb_init() -> None:
    # WandbLogger hands what it does not take to wandb.init as the run starts: a setting neither
    # takes was W&B's error then, after the run's folder was made.
    pytest.importorskip("wandb")
    wandb = {"_target_": "chargpt.training.trackers.WandbTracker", "project": "chargpt", "tags": ["a"]}
    check_constructor_settings(OmegaConf.create({"logger": {"wandb": wandb}}))  # wandb.init's tags
    with pytest.raises(ConfigError, match=r"^logger\.wandb\.tag is not a setting of chargpt\.training\."
                       r"trackers\.WandbTracker or the wandb\..*init it hands settings to \(did you mean "
                       r"logger\.wandb\.tags\?\)"):
        check_constructor_settings(OmegaConf.create({"logger": {"wandb": {**wandb, "tag": ["a"]}}}))


@pytest.mark.slow
def test_a_resumed_run_keeps_its_csv_rows_before_the_checkpoint(corpus: Path, tmp_path: Path) -> None:
    # Lightning's CSV writer deleted metrics.csv when a run resumed: the report's curves and the
    # file lost every step before the resume.
    run = tmp_path / "run"
    args = bare_train_args(corpus, run, "logger=csv", "trainer.val_check_interval=4")
    assert run_cli(main, *args, "trainer.max_steps=8") == 0
    metrics = run / "csv" / "metrics.csv"
    with metrics.open() as f:  # a row logged after the checkpoint, as by a run killed later
        header = next(csv.reader(f))
    with metrics.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=header).writerow({"step": 9, "train/loss": 99.0})
    assert run_cli(main, *args, "trainer.max_steps=12", f"ckpt_path={run}") == 0
    with metrics.open() as f:
        rows = list(csv.DictReader(f))
    train_steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    # The row after the checkpoint is gone (a tokens/s figure such as 10799.03 may hold "99.0").
    assert train_steps == list(range(1, 13)) and "99.0" not in [r["train/loss"] for r in rows]
    assert list(csv_val_losses(run)) == [4, 8, 12]


@pytest.mark.slow  # a run stopped by a signal in a subprocess: seconds
@pytest.mark.parametrize("loggers", [
    "[tensorboard,csv]", pytest.param("[csv,mlflow]", marks=pytest.mark.slow),  # (MLflow's store)
])
@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGTERM, marks=pytest.mark.slow), signal.SIGINT], ids=["SIGTERM", "SIGINT"]
)
def test_the_step_a_signal_stops_at_is_in_every_curve_once(
    loggers: str, signum: int, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stop was raised in on_train_batch_end, before Lightning hands the step's values to the
    # loggers, and the resume starts at the next step: the curves had steps 1-6 and 8-12.
    root, run = tmp_path / "outputs", tmp_path / "outputs" / "run"
    args = bare_train_args(corpus, run, f"paths.output_root={root}", f"logger={loggers}",
                           "trainer.val_check_interval=4", "trainer.max_steps=12")
    StepHook(monkeypatch).send_signal_at(7, signum)
    assert run_cli(main, *args) == 128 + signum
    # (TensorBoard orders event files by their second: a real resume starts seconds later.)
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    assert run_cli(main, *args, f"ckpt_path={run}") == 0

    curves = {}
    with (run / "csv" / "metrics.csv").open() as f:
        curves["csv"] = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    if "tensorboard" in loggers:
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        curves["tensorboard"] = [e.step for e in events.Scalars("train/loss")]
    if "mlflow" in loggers:
        mlflow = pytest.importorskip("mlflow")
        client = mlflow.tracking.MlflowClient(tracking_uri=(root / "mlruns").resolve().as_uri())
        (experiment,) = [e for e in client.search_experiments() if e.name == "chargpt"]
        (mlflow_run,) = client.search_runs([experiment.experiment_id])
        history = client.get_metric_history(mlflow_run.info.run_id, "train/loss")
        curves["mlflow"] = sorted(m.step for m in history)
    assert curves == {tracker: list(range(1, 13)) for tracker in curves}


@pytest.mark.slow  # three trainings with MLflow's store; test_flat_params_are_config_keys runs by default
def test_mlflow_next_to_csv_gets_the_same_scalars_flat_params_pictures_and_one_run_across_resume(
    corpus: Path, tmp_path: Path
) -> None:
    mlflow = pytest.importorskip("mlflow")
    root, run = tmp_path / "outputs", tmp_path / "outputs" / "run"
    common = [f"paths.output_root={root}", "logger=[csv,mlflow]", "sample.max_new_tokens=0"]
    assert run_cli(main, *train_args(corpus, run, *common)) == 0

    client = mlflow.tracking.MlflowClient(tracking_uri=(root / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "chargpt"]
    (first,) = client.search_runs([experiment.experiment_id])
    params = first.data.params
    assert params["model.n_layer"] == "1" and params["optimizer.lr"] == "0.01"
    assert params["trainer.max_steps"] == "20" and params["seed"] == "1337" and "vocab_size" in params
    assert not any(key.startswith(("model/", "vocab")) and key != "vocab_size" for key in params)
    assert first.info.run_name == "outputs/run"
    history = {m.step: m.value for m in client.get_metric_history(first.info.run_id, "val/loss")}
    assert history == pytest.approx(csv_val_losses(run))  # the same values at the same steps
    assert set(first.data.metrics) >= {"train/loss", "val/loss", "hparams/best_val_loss"}
    pictures = [a.path for a in client.list_artifacts(first.info.run_id, "images")]
    assert any("attention_maps" in p for p in pictures)

    # Resume: the same MLflow run goes on (one curve), with the later steps added.
    assert run_cli(main, *train_args(corpus, run, *common, "trainer.max_steps=30", f"ckpt_path={run}")) == 0
    (again,) = client.search_runs([experiment.experiment_id])
    assert again.info.run_id == first.info.run_id
    steps = [m.step for m in client.get_metric_history(first.info.run_id, "val/loss")]
    assert max(steps) > max(history) and len(steps) == len(set(steps))


@pytest.mark.slow  # MLflow's store, three short trainings
def test_a_resume_from_another_folder_continues_the_mlflow_run_where_it_is(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # The store is named relative to the launch folder (outputs/mlruns): a resume launched from
    # elsewhere looked for the run in another store and failed with MLflow's traceback.
    mlflow = pytest.importorskip("mlflow")
    first_folder, elsewhere, run = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "run"
    first_folder.mkdir(), elsewhere.mkdir()
    args = bare_train_args(corpus, run, "logger=mlflow", "trainer.val_check_interval=4")
    monkeypatch.chdir(first_folder)
    assert run_cli(main, *args, "trainer.max_steps=4") == 0
    monkeypatch.chdir(elsewhere)
    # A new process: the first run's opt-in to MLflow's file store is not in its environment.
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert run_cli(main, *args, "trainer.max_steps=8", f"ckpt_path={run}") == 0
    assert not (elsewhere / "outputs").exists()
    client = mlflow.tracking.MlflowClient(tracking_uri=(first_folder / "outputs" / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "chargpt"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "val/loss")] == [4, 8]

    # The store gone: one error line naming what to set, and the run is as it was.
    (first_folder / "outputs").rename(tmp_path / "moved")
    capsys.readouterr()
    code = run_cli(main, *args, "trainer.max_steps=12", f"ckpt_path={run}")
    err = capsys.readouterr().err
    assert code == 2 and f"error: the MLflow run {logged.info.run_id} this run logged to is not in" in err
    assert not (elsewhere / "outputs").exists()  # no empty store made where the run is not
    assert "set logger.mlflow.tracking_uri (or logger.mlflow.save_dir)" in err and "Traceback" not in err
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


@contextlib.contextmanager
def _answering_server(cert: Path | None = None, key: Path | None = None) -> Iterator[int]:
    """A local HTTP server (HTTPS with `cert` and `key`) that answers every request, "not
    implemented": something is at the address. Yields its port."""
    import http.server
    import ssl
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def test_an_mlflow_server_that_cannot_be_reached_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow retried an address with no server behind it for about 4 minutes before its traceback.
    pytest.importorskip("mlflow")
    from chargpt.errors import ConfigError
    from chargpt.training.trackers import MLFlowTracker

    closed = free_port()
    with pytest.raises(ConfigError, match=rf"cannot reach the MLflow server at .*:{closed} .*mlflow server"):
        MLFlowTracker(tracking_uri=f"http://127.0.0.1:{closed}")
    # With MLflow's own TLS settings (a client certificate), MLflow alone judges the server.
    monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(tmp_path / "client.pem"))
    MLFlowTracker(tracking_uri=f"https://127.0.0.1:{closed}")
    monkeypatch.delenv("MLFLOW_TRACKING_CLIENT_CERT_PATH")

    # A server that answers, even "not found" (a proxy, an older MLflow), is MLflow's to talk to.
    with _answering_server() as port:
        assert MLFlowTracker(tracking_uri=f"http://127.0.0.1:{port}")._tracking_uri.endswith(str(port))


def test_an_mlflow_server_with_a_certificate_of_its_own_is_left_to_mlflow(tmp_path: Path) -> None:
    # A self-signed or company certificate fails this check's verification, which MLflow's own
    # settings (MLFLOW_TRACKING_SERVER_CERT_PATH, ...) may pass: it is not "cannot reach".
    import shutil
    import subprocess

    pytest.importorskip("mlflow")
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    from chargpt.training.trackers import MLFlowTracker

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    with _answering_server(cert, key) as port:
        assert MLFlowTracker(tracking_uri=f"https://127.0.0.1:{port}")._tracking_uri.endswith(str(port))


def test_a_resumed_run_opens_its_local_mlflow_store_and_a_missing_one_is_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resume took the store from its checkpoint and skipped the file-store opt-in, so in a new
    # process MLflow refused it ("maintenance mode"): no MLflow run could be resumed.
    pytest.importorskip("mlflow")
    from chargpt.errors import ConfigError
    from chargpt.training import trackers

    store = tmp_path / "my runs" / "mlruns"
    store.mkdir(parents=True)
    kept = {"mlflow": "0123abcd", trackers.MLFLOW_STORE: store.as_uri()}
    ckpt = {"callbacks": {trackers.TRACKER_RUNS_KEY: kept}}  # the checkpoint resumed from, as read
    assert trackers.kept_in_checkpoint(ckpt) == kept and trackers.kept_in_checkpoint(None) == {}
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    tracker = trackers.MLFlowTracker(tracker_runs=kept, save_dir=str(tmp_path / "elsewhere"))
    assert tracker._tracking_uri == store.as_uri()
    assert os.environ.get("MLFLOW_ALLOW_FILE_STORE") == "true"

    # The store moved away: refused before MLflow makes an empty one where the run is not.
    store.rename(tmp_path / "moved")
    with pytest.raises(ConfigError, match=r"MLflow run 0123abcd this run logged to is not in the store"):
        trackers.MLFlowTracker(tracker_runs=kept, save_dir=str(tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()


def test_a_database_mlflow_store_without_its_packages_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    # The [mlflow] extra is MLflow's client alone: a sqlite store was "logger.mlflow: No module
    # named sqlalchemy", with no word of what to install.
    pytest.importorskip("mlflow")
    import sys

    from chargpt.training import trackers

    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"^logger\.mlflow\.tracking_uri=sqlite:///runs\.db is a database "
                       r"store, which needs sqlalchemy.* \(.*\); pip install sqlalchemy alembic sqlparse"):
        trackers.MLFlowTracker(tracking_uri="sqlite:///runs.db")


def test_a_database_mlflow_store_without_its_driver_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SQLAlchemy there, PostgreSQL's driver not: the run stopped with MLflow's bare "logger.mlflow:
    # No module named 'psycopg2'", and no word of the package to install.
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    import sys

    from chargpt.training import trackers

    for module in ("psycopg2", "MySQLdb"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ConfigError, match=r"^logger\.mlflow\.tracking_uri=postgresql://me:\*\*\*@db/runs "
                       r"is a postgresql database, whose driver psycopg2 is not installed \(.*\); pip "
                       r"install psycopg2-binary, or leave tracking_uri out"):
        trackers.MLFlowTracker(tracking_uri="postgresql://me:secret@db/runs")  # (the password not shown)
    with pytest.raises(ConfigError, match=r"driver mysqldb is not installed .*; pip install mysqlclient,"):
        trackers.MLFlowTracker(tracking_uri="mysql://me@db/runs")


def test_a_run_under_mlflow_run_logs_into_its_project_run_and_a_sweep_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `mlflow run` makes a run for the command and names it in MLFLOW_RUN_ID: chargpt made a run of
    # its own beside it, and the project's run stayed empty.
    mlflow = pytest.importorskip("mlflow")
    from chargpt.errors import SetupError
    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.create_experiment("chargpt")
    project_run = client.create_run(experiment).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    tracker = trackers.MLFlowTracker(run_dir=str(tmp_path / "run"), save_dir=str(store))
    tracker.log_metrics({"train/loss": 2.0}, step=1)
    assert [r.info.run_id for r in client.search_runs([experiment])] == [project_run]
    assert [m.value for m in client.get_metric_history(project_run, "train/loss")] == [2.0]

    # A resumed run goes on in its own run, whatever run `mlflow run` made this time.
    kept = {"mlflow": client.create_run(experiment).info.run_id, trackers.MLFLOW_STORE: store.as_uri()}
    assert trackers.MLFlowTracker(tracker_runs=kept).run_id == kept["mlflow"]

    monkeypatch.setattr(trackers, "is_multirun", lambda: True)
    with pytest.raises(SetupError, match=rf"^MLFLOW_RUN_ID={project_run} \(set by mlflow run\) names one "
                       rf"MLflow run, which a sweep's jobs cannot all log into; .*"
                       rf"'\+logger\.mlflow\.tags={{mlflow\.parentRunId:{project_run}}}'$"):
        trackers.MLFlowTracker(save_dir=str(store))


def test_an_mlflow_run_id_not_in_the_store_is_named_as_the_variable_that_gave_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A MLFLOW_RUN_ID left in the shell, or a store other than `mlflow run`'s, was reported as "the
    # MLflow run ... this run logged to", with advice that named no variable: a new run logged nowhere.
    pytest.importorskip("mlflow")
    from chargpt.errors import ConfigError
    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef")
    store = tmp_path / "mlruns"
    tracker = trackers.MLFlowTracker(run_dir=str(tmp_path / "run"), save_dir=str(store))
    with pytest.raises(ConfigError, match=r"^MLFLOW_RUN_ID=0123456789abcdef \(the MLflow run `mlflow run` "
                       rf"made for this command\) is not in the store {re.escape(store.as_uri())} \(.*\); "
                       r"log to the store that holds it .* or unset MLFLOW_RUN_ID for a run of chargpt's "
                       r"own$"):
        tracker.log_metrics({"train/loss": 2.0}, step=1)


def test_a_resumed_mlflow_run_keeps_each_step_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run stopped hard after its last checkpoint had logged the later steps to MLflow, which
    # deletes no value: its resume logged them again, each step twice in the run's curves.
    mlflow = pytest.importorskip("mlflow")
    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run_id = client.create_run(client.create_experiment("chargpt")).info.run_id
    for step in range(1, 9):  # steps 1-8; the checkpoint resumed from is at step 4
        client.log_metric(run_id, "train/loss", 10.0 + step, step=step)
    client.log_metric(run_id, "val/loss", 5.0, step=4)
    kept = {"mlflow": run_id, trackers.MLFLOW_STORE: store}
    tracker = trackers.MLFlowTracker(tracker_runs=kept)
    for step in range(5, 11):
        tracker.log_metrics({"train/loss": float(step)}, step=step)
    tracker.log_metrics({"val/loss": 1.0}, step=8)  # stopped before its validation at step 8

    history = [(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")]
    assert sorted(history) == [(s, 10.0 + s) for s in range(1, 9)] + [(9, 9.0), (10, 10.0)]
    validations = [(m.step, m.value) for m in client.get_metric_history(run_id, "val/loss")]
    assert sorted(validations) == [(4, 5.0), (8, 1.0)]


def test_a_resumed_mlflow_run_is_read_and_logged_by_rank_zero_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resume with two processes (trainer=ddp_cpu) was a traceback on the second: it read the
    # run's parameters and steps from the stand-in experiment another rank has, which answers None.
    mlflow = pytest.importorskip("mlflow")
    from lightning.pytorch.utilities import rank_zero_only

    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run_id = client.create_run(client.create_experiment("chargpt")).info.run_id
    client.log_param(run_id, "seed", "1")
    client.log_metric(run_id, "train/loss", 3.0, step=4)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    tracker = trackers.MLFlowTracker(tracker_runs={"mlflow": run_id, trackers.MLFLOW_STORE: store})
    tracker.log_hyperparams({"seed": 2, "optimizer.lr": 0.1})
    tracker.log_metrics({"train/loss": 1.0}, step=5)

    run = client.get_run(run_id)
    assert run.data.params == {"seed": "1"}  # rank 0 logs what is new
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/loss")] == [(4, 3.0)]


@pytest.mark.slow  # MLflow's store, two short trainings
def test_an_mlflow_run_stopped_by_ctrl_c_is_killed_and_its_resume_finished(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lightning ends every interrupted fit as FAILED: a run the user stopped, whose checkpoint its
    # resume continues from, read as a crash in MLflow's runs list.
    mlflow = pytest.importorskip("mlflow")
    root, run = tmp_path / "outputs", tmp_path / "outputs" / "run"
    args = bare_train_args(corpus, run, f"paths.output_root={root}", "logger=mlflow",
                           "trainer.val_check_interval=4", "trainer.max_steps=8")
    StepHook(monkeypatch).send_signal_at(6)
    assert run_cli(main, *args) == 128 + signal.SIGINT
    client = mlflow.tracking.MlflowClient(tracking_uri=(root / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "chargpt"]
    (stopped,) = client.search_runs([experiment.experiment_id])
    assert stopped.info.status == "KILLED"

    assert run_cli(main, *args, f"ckpt_path={run}") == 0
    (resumed,) = client.search_runs([experiment.experiment_id])
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"


@pytest.mark.slow  # MLflow's store, a fit set up
def test_an_mlflow_run_stopped_before_training_is_killed(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C while the fit was being set up (its MLflow run made, no step taken) ended the run
    # FAILED, as a crash: only a stop inside the training loop read as a stop.
    mlflow = pytest.importorskip("mlflow")
    from chargpt.training import CharLM

    monkeypatch.setattr(CharLM, "on_fit_start", lambda module: os.kill(os.getpid(), signal.SIGTERM))
    root, run = tmp_path / "outputs", tmp_path / "outputs" / "run"
    args = bare_train_args(corpus, run, f"paths.output_root={root}", "logger=mlflow", "trainer.max_steps=8")
    assert run_cli(main, *args) == 128 + signal.SIGTERM
    client = mlflow.tracking.MlflowClient(tracking_uri=(root / "mlruns").resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "chargpt"]
    (stopped,) = client.search_runs([experiment.experiment_id])
    assert stopped.info.status == "KILLED"


def test_a_new_mlflow_run_of_a_folder_ends_one_left_running_there_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run stopped hard (kill -9, a second Ctrl-C) before its first checkpoint cannot end its
    # MLflow run: it said RUNNING for ever beside the run that trained the folder again.
    mlflow = pytest.importorskip("mlflow")
    import socket

    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, folder = tmp_path / "mlruns", tmp_path / "outputs" / "run 1"
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.create_experiment("chargpt")

    def left_running(run_dir: Path, host: str) -> str:
        tags = {trackers.RUN_DIR_TAG: str(run_dir), trackers.HOST_TAG: host}
        return client.create_run(experiment, tags=tags, start_time=1_000).info.run_id

    dead = left_running(folder, socket.gethostname())
    client.log_metric(dead, "train/loss", 3.0, timestamp=5_000, step=1)
    client.log_metric(dead, "train/loss", 2.0, timestamp=9_000, step=2)
    client.log_metric(dead, "val/loss", 2.5, timestamp=7_000, step=2)
    silent = left_running(folder, socket.gethostname())  # killed before it logged a value
    elsewhere = left_running(folder, "another-machine")  # may be alive: not this machine's to end
    other_folder = left_running(tmp_path / "outputs" / "run 2", socket.gethostname())
    done = left_running(folder, socket.gethostname())
    client.set_terminated(done, "FINISHED", end_time=2_000)

    tracker = trackers.MLFlowTracker(run_dir=str(folder), save_dir=str(store))
    new = tracker.run_id
    runs = {r.info.run_id: r.info for r in client.search_runs([experiment])}
    assert runs[dead].status == "KILLED" and runs[dead].end_time == 9_000  # at its last value
    assert runs[silent].status == "KILLED" and runs[silent].end_time == 1_000
    assert [runs[r].status for r in (elsewhere, other_folder, new)] == ["RUNNING"] * 3
    assert runs[done].status == "FINISHED" and runs[done].end_time == 2_000
    assert client.get_run(new).data.tags[trackers.RUN_DIR_TAG] == str(folder.resolve())


def test_the_mlflow_runs_of_a_sweep_carry_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sweep's jobs were flat MLflow runs, named `FOLDER/0`, `FOLDER/1` after the sweep folder's
    # last name alone: nothing to filter one sweep's runs by, or to group them by in MLflow's table.
    mlflow = pytest.importorskip("mlflow")
    from chargpt.training import trackers

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, sweep = tmp_path / "mlruns", tmp_path / "sweeps" / "lr, é 🎭"
    monkeypatch.setattr(trackers, "sweep_dir", lambda: Path(os.path.relpath(sweep)))  # as typed
    jobs = [trackers.MLFlowTracker(run_dir=str(sweep / job), save_dir=str(store)).run_id for job in "01"]
    monkeypatch.setattr(trackers, "sweep_dir", lambda: None)
    alone = trackers.MLFlowTracker(run_dir=str(tmp_path / "run"), save_dir=str(store)).run_id
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("chargpt")
    found = client.search_runs([experiment.experiment_id],
                               filter_string=f"tags.`{trackers.SWEEP_TAG}` = '{sweep.resolve()}'")
    assert sorted(r.info.run_id for r in found) == sorted(jobs)
    assert trackers.SWEEP_TAG not in client.get_run(alone).data.tags


def test_a_resume_into_another_folder_starts_its_own_mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Going back to an earlier step in a new folder (hydra.run.dir=NEW, as the refusal to rewind a
    # run in place advises) logged the new steps into the first run's MLflow run, over its curves.
    pytest.importorskip("mlflow")
    from hydra import compose, initialize_config_dir

    from chargpt.cli import CONFIG_PATH
    from chargpt.training import trackers
    from chargpt.training.build import build_trainer

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "outputs" / "mlruns"
    store.mkdir(parents=True)
    kept = {"mlflow": "0123abcd", trackers.MLFLOW_STORE: store.as_uri()}
    resumed = {"global_step": 20, "callbacks": {trackers.TRACKER_RUNS_KEY: kept}}
    file = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"

    def mlflow_run_id(run_dir: Path) -> tuple[str | None, dict[str, str]]:
        """The MLflow run the resume logs to, and the tracker runs its checkpoints keep."""
        overrides = [f"paths.output_dir={run_dir}", f"paths.output_root={tmp_path / 'outputs'}",
                     "logger=mlflow"]
        with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
            cfg = compose("train", overrides=overrides)
        trainer = build_trainer(cfg, resumed, file)
        (tracker_runs,) = [c for c in trainer.callbacks if isinstance(c, trackers.TrackerRuns)]
        tracker_runs.load_state_dict({**kept, "wandb": "w1"})  # as Lightning restores it
        return trainer.loggers[0]._run_id, tracker_runs.state_dict()

    # Its own folder: the runs go on, W&B's too when a later resume logs to it again.
    assert mlflow_run_id(tmp_path / "outputs" / "run") == ("0123abcd", {**kept, "wandb": "w1"})
    # Another folder: a new MLflow run, made on first use; its checkpoints kept the first run's W&B
    # run, which a resume of this folder with logger=wandb then logged into.
    assert mlflow_run_id(tmp_path / "outputs" / "branch") == (None, {})


# -- W&B: its offline run file (.wandb) is a log of protobuf records in 32 kB blocks ---------------


def wandb_records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    pos, records, pending = 7, [], b""
    while pos + header <= len(data):
        if block - pos % block < header:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if length == 0 and kind == 0:
            break
        chunk, pos = data[pos + header : pos + header + length], pos + header + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or last of several
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def finished_records(run: Path, index: int, patience: float = 60.0) -> list[Any]:
    """The records of the run's index-th W&B file once its `exit` record is in: W&B's service
    process writes the file, and may still be writing it when `finish()` has returned."""
    deadline = time.monotonic() + patience
    while True:
        files = sorted(run.glob("wandb/offline-run-*/run-*.wandb"))
        try:
            records, problem = wandb_records(files[index]), "no exit record"
        except Exception as error:  # no such file yet, or a record cut short by the writer
            records, problem = [], repr(error)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            names = [f.name for f in files]
            pytest.fail(f"W&B run file {index} of {names} unfinished after {patience} s: {problem}")
        time.sleep(0.2)


def wandb_run(run: Path, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"history": {}, "config": {}}
    for record in finished_records(run, index):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            out["id"], out["name"], out["project"] = info.run_id, info.display_name, info.project
        elif kind == "config":
            out["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            row = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            if "val/loss" in row:
                out["history"][int(row["trainer/global_step"])] = float(row["val/loss"])
            if "attention/maps/_type" in row:
                out["pictures"] = out.get("pictures", 0) + 1
    return out


@pytest.mark.parametrize(("raised", "ended"), [
    # In the loop, its checkpoint written: preempting, W&B's state for a run its resume continues.
    (TrainingInterrupted(signal.SIGTERM, 6, Path("last.ckpt")), ["preempting", 143]),
    (TrainingInterrupted(signal.SIGINT, 6, Path("last.ckpt")), ["preempting", 130]),
    (SignalOutsideTraining(signal.SIGINT), [130]),  # Ctrl-C before training began: no checkpoint
    (KeyboardInterrupt(), [130]),  # where Lightning handles the signals (several processes)
    (Terminated(), [143]),
    (RuntimeError("a crash"), [1]),
], ids=["in-the-loop", "ctrl-c-in-the-loop", "before-training", "ctrl-c", "sigterm", "crash"])
def test_a_wandb_run_stopped_on_purpose_ends_with_the_commands_exit_code_a_crash_with_1(
    raised: BaseException, ended: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # W&B's client ends a run Finished (0) or Failed (anything else): a Ctrl-C or SIGTERM ended it
    # with 1, as a crash does, while MLflow says KILLED for such a stop. One stopped with the
    # checkpoint its resume continues from was Failed too, as a crash is.
    pytest.importorskip("wandb")
    from chargpt.training.trackers import TrackerRuns, WandbTracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = WandbTracker(save_dir=str(tmp_path))
    calls: list = []
    tracker._experiment = SimpleNamespace(id="abc123", finish=lambda exit_code: calls.append(exit_code),
                                          mark_preempting=lambda: calls.append("preempting"))
    TrackerRuns().on_exception(SimpleNamespace(loggers=[tracker]), None, raised)  # type: ignore[arg-type]
    tracker.finalize("failed")  # as Lightning does after on_exception
    assert calls == ended


@pytest.mark.slow  # wandb runs its own service process
def test_wandb_offline_gets_the_same_scalars_flat_config_and_one_run_across_resume(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # W&B keeps its settings for the process: after a test of this process without the offline
    # mode, it went on asking for a login.
    wandb.teardown()
    run = tmp_path / "run"
    common = ["logger=[csv,wandb]", "sample.max_new_tokens=0", "logger.wandb.project=my-project"]
    assert run_cli(main, *train_args(corpus, run, *common)) == 0
    first = wandb_run(run, 0)
    assert first["project"] == "my-project" and first["name"].endswith("run")
    assert first["config"]["model.n_layer"] == 1 and first["config"]["optimizer.lr"] == 0.01
    assert first["config"]["trainer.max_steps"] == 20
    assert first["history"] == pytest.approx(csv_val_losses(run))
    assert first.get("pictures", 0) >= 1

    assert run_cli(main, *train_args(corpus, run, *common, "trainer.max_steps=30", f"ckpt_path={run}")) == 0
    second = wandb_run(run, 1)
    assert second["id"] == first["id"]  # the same W&B run continues
    assert min(second["history"]) > max(first["history"])
