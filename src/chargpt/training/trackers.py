"""CSV, MLflow and Weights & Biases as chargpt loggers: Lightning's own loggers, plus what a run needs.

- A resumed run continues the same tracker run: the TrackerRuns callback keeps each tracker's
  run id in the checkpoint, and the logger gets it back as `tracker_runs` (kept_in_checkpoint of
  the checkpoint build_run read) when it is built, before the tracker starts a run. A resume into
  another run folder starts new ones (build_trainer).
- Hyperparameters go in as flat config keys (`model.n_layer`, `optimizer.lr`), as in TensorBoard's
  HParams view, not as nested dicts or the whole vocabulary.
- Runs are named after their run directory unless the config names them.
- The CSV file of a resumed run keeps the rows logged before its checkpoint; its MLflow run keeps
  each step's values once.
- A run stopped on purpose (Ctrl-C, SIGTERM) ends its MLflow run KILLED, not FAILED. One stopped
  hard (kill -9, a second Ctrl-C, out of memory) cannot end it: a new MLflow run of the same run
  folder on the same machine ends it KILLED, as chargpt's own status calls it.
- Under `mlflow run` (MLFLOW_RUN_ID set) a new run logs into the run it made; a sweep is refused.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from omegaconf import DictConfig

from chargpt.distributed import is_rank_zero
from chargpt.errors import ConfigError, SetupError, first_line, needs_extra, signal_exit_code
from chargpt.hydra_run import is_multirun, sweep_dir
from chargpt.metric_names import STEP
from chargpt.stop_signals import SignalOutsideTraining
from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted

log = logging.getLogger(__name__)

TRACKER_RUNS_KEY = "TrackerRuns"  # the callback's state key in checkpoints
MLFLOW_STORE = "mlflow_tracking_uri"  # beside the run ids: where the MLflow run is
# The user's MLFLOW_TRACKING_URI: MLflow sets the variable itself once a logger has used a store, and
# a later run of the same process (a sweep's next job) must not take that for the user's choice.
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")
# Tags of each new MLflow run: the run folder it logs and the machine it runs on, by which a later
# run of the folder finds one whose process died without ending it.
RUN_DIR_TAG = "chargpt.run_dir"
HOST_TAG = "chargpt.host"
# Tag of a sweep's MLflow runs: its folder, by which MLflow's runs table filters and groups them.
SWEEP_TAG = "chargpt.sweep"


def kept_in_checkpoint(ckpt: dict[str, Any] | None) -> dict[str, str]:
    """What TrackerRuns kept (the trackers' run ids, the MLflow store) in the checkpoint a run
    resumes from, as read; empty for a new run (no checkpoint)."""
    runs = (ckpt.get("callbacks") or {}).get(TRACKER_RUNS_KEY) if ckpt else None
    return runs if isinstance(runs, dict) else {}


def _folder(file_uri: str) -> Path:
    return Path(unquote(urlparse(file_uri).path))


def _store_of_run(kept: dict[str, str]) -> str | None:
    """The MLflow store a resumed run logged to, when it is a local folder that is still there (a
    store named relative to the launch folder is another one from elsewhere) or a server."""
    uri = kept.get(MLFLOW_STORE)
    if not uri:
        return None
    if uri.startswith("file:"):
        return uri if _folder(uri).is_dir() else None
    return uri


def _not_in_store(run_id: str, store: str, reason: str) -> ConfigError:
    return ConfigError(
        f"the MLflow run {run_id} this run logged to is not in the store {store} ({reason}); set "
        "logger.mlflow.tracking_uri (or logger.mlflow.save_dir) to the store the run used"
    )


def _project_run_not_in_store(run_id: str, store: str, reason: str) -> ConfigError:
    return ConfigError(
        f"MLFLOW_RUN_ID={run_id} (the MLflow run `mlflow run` made for this command) is not in the store "
        f"{store} ({reason}); log to the store that holds it (its MLFLOW_TRACKING_URI, which "
        "logger.mlflow.tracking_uri overrides), or unset MLFLOW_RUN_ID for a run of chargpt's own"
    )


def _project_run_id() -> str | None:
    """The MLflow run that `mlflow run` made for this command (MLFLOW_RUN_ID, with its store in
    MLFLOW_TRACKING_URI), which it expects the command to log into. A sweep's jobs cannot all log
    into one run: they are refused, pointed at MLflow's way to file runs under one."""
    run_id = os.environ.get("MLFLOW_RUN_ID") or None
    if run_id and is_multirun():
        raise _one_run_for_a_sweep(run_id)
    return run_id


def check_sweep_job_loggers(job: DictConfig) -> None:
    """A sweep's job (its composed config) that would log to MLflow under MLFLOW_RUN_ID, refused as
    the sweep starts: in the job, the refusal came after its text was read, and left its folder."""
    run_id = os.environ.get("MLFLOW_RUN_ID") or None
    loggers = (job.get("logger") or {}).values()
    if run_id and any(str((c or {}).get("_target_", "")).endswith("MLFlowTracker") for c in loggers):
        raise _one_run_for_a_sweep(run_id)


def _one_run_for_a_sweep(run_id: str) -> SetupError:
    return SetupError(
        f"MLFLOW_RUN_ID={run_id} (set by mlflow run) names one MLflow run, which a sweep's jobs cannot "
        "all log into; unset it, and to file the jobs under that run make each a child run of it: "
        f"'+logger.mlflow.tags={{mlflow.parentRunId:{run_id}}}'"
    )


def flat_params(params: dict[str, Any]) -> dict[str, Any]:
    """Nested settings as dotted keys; a `_target_` becomes `.name`; the vocabulary its size."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if key == "vocab" and isinstance(value, (list, tuple)):
            flat["vocab_size"] = len(value)
        elif key == "_target_":
            flat["name"] = str(value).rsplit(".", 1)[-1]
        elif isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in flat_params(value).items()})
        else:
            flat[key] = value
    return flat


def _run_name(name: str | None, run_dir: str | None) -> str | None:
    if name or not run_dir:
        return name
    path = Path(run_dir)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _import_check(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(needs_extra(f"logger={extra}", f"the {module} package", extra)) from None


MLFLOW_TLS_SETTINGS = ("MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
                       "MLFLOW_TRACKING_INSECURE_TLS")


def _check_reachable(server: str, timeout: float = 10.0) -> None:
    """MLflow retries a server it cannot reach for minutes before it says so (7 tries with
    growing waits); one quick request first turns a wrong address, or a server not started yet,
    into an error at once. Any HTTP answer will do: a proxy or a login page is MLflow's to judge.
    So will a server whose certificate this check cannot verify; and with MLflow's own TLS settings
    set (a client certificate, ...), MLflow alone talks to it."""
    import ssl
    import urllib.error
    import urllib.request

    if any(os.environ.get(name) for name in MLFLOW_TLS_SETTINGS):
        return
    try:
        urllib.request.urlopen(f"{server.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLCertVerificationError):
            return
        raise ConfigError(
            f"cannot reach the MLflow server at logger.mlflow.tracking_uri={server} ({reason}); start it "
            "(mlflow server --port PORT), correct the address, or leave tracking_uri out for a local store"
        ) from None


# MLflow keeps runs in a database through SQLAlchemy: the packages its client alone leaves out.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_DATABASE_PACKAGES = ("sqlalchemy", "alembic", "sqlparse")


def _check_database_packages(tracking_uri: str) -> None:
    """A database store without SQLAlchemy was MLflow's bare 'No module named sqlalchemy'."""
    missing = []
    for package in _DATABASE_PACKAGES:
        try:
            __import__(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise ConfigError(
            f"logger.mlflow.tracking_uri={tracking_uri} is a database store, which needs "
            f"{', '.join(missing)} (the [mlflow] extra is MLflow's client alone); pip install sqlalchemy "
            "alembic sqlparse, or leave tracking_uri out for a local folder store"
        )
    _check_database_driver(tracking_uri)


# The pip packages of SQLAlchemy's database drivers whose name is not the driver's.
_DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "mysqldb": "mysqlclient",
                    "mysqlconnector": "mysql-connector-python"}


def _check_database_driver(tracking_uri: str) -> None:
    """A database's driver (PostgreSQL's psycopg2, ...) is installed apart from SQLAlchemy: without
    it MLflow's error was the bare "No module named 'psycopg2'"."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(tracking_uri)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return  # a driver SQLAlchemy does not know, or no URL it reads: MLflow's to say
    try:
        # (SQLAlchemy 2's name for it; 1.4's is dbapi)
        (dialect.import_dbapi if hasattr(dialect, "import_dbapi") else dialect.dbapi)()
    except ImportError as err:
        driver, shown = url.get_driver_name(), url.render_as_string(hide_password=True)
        package = _DRIVER_PACKAGES.get(driver, driver)
        raise ConfigError(
            f"logger.mlflow.tracking_uri={shown} is a {url.get_backend_name()} database, whose driver "
            f"{driver} is not installed ({err}); pip install {package}, or leave tracking_uri out for a "
            "local folder store"
        ) from None


class CSVTracker(CSVLogger):
    """Lightning's CSVLogger, continued by a resumed run. Lightning's writer deletes the
    metrics.csv it finds, and with it the interrupted run's rows; here the rows before `purge_step`
    stay, as TensorBoard's purge_step keeps its events, and those at or after it go (logged after
    the checkpoint, the resume logs them again). Without `purge_step`, Lightning's behaviour."""

    def __init__(self, *args: Any, purge_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._purge_step = purge_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        header, kept = _rows_before(path, self._purge_step)
        writer = super().experiment  # deletes the file
        if header:
            with path.open("w", newline="", encoding="utf-8") as file:
                rows = csv.DictWriter(file, fieldnames=header)
                rows.writeheader()
                rows.writerows(kept)
            writer.metrics_keys = list(header)  # the writer appends under this header from here on
        return writer


def _rows_before(path: Path, step: int | None) -> tuple[list[str], list[dict[str, str]]]:
    """The header of the CSV file at `path` and its rows logged before `step` (none without one)."""
    if not step or not path.is_file():
        return [], []
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = [r for r in reader if _step_of(r) is not None and _step_of(r) < step]
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error):
        return [], []  # unreadable: started afresh, as Lightning would


def _step_of(row: dict[str, str]) -> int | None:
    try:
        return int(float(row.get(STEP) or ""))
    except ValueError:
        return None


class MLFlowTracker(MLFlowLogger):
    """Lightning's MLFlowLogger; a local file store unless `tracking_uri` names a server or database."""

    def __init__(
        self,
        experiment_name: str = "chargpt",
        run_name: str | None = None,
        run_dir: str | None = None,
        tracking_uri: str | None = None,
        save_dir: str | None = None,
        tracker_runs: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        _import_check("mlflow", "mlflow")
        kept = tracker_runs or {}
        self._folder_tags: dict[str, str] = {}
        if run_dir and not kept.get("mlflow"):
            self._folder_tags = {RUN_DIR_TAG: str(Path(run_dir).resolve()), HOST_TAG: socket.gethostname()}
            sweep = sweep_dir()
            sweep_tag = {SWEEP_TAG: str(sweep.resolve())} if sweep is not None else {}
            kwargs["tags"] = {**self._folder_tags, **sweep_tag, **(kwargs.get("tags") or {})}
        tracking_uri = tracking_uri or _USER_TRACKING_URI or _store_of_run(kept)
        if not tracking_uri:
            tracking_uri = Path(os.path.expanduser(save_dir or "mlruns")).resolve().as_uri()
        scheme = urlparse(tracking_uri).scheme
        if scheme in ("", "file"):
            # MLflow calls its file store "maintenance mode" and refuses it unless told; for one
            # person's local runs it is the store that needs no server. A resumed run's too.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if scheme == "file" and kept.get("mlflow") and not _folder(tracking_uri).is_dir():
            # Refused before MLflow makes an empty store there.
            raise _not_in_store(kept["mlflow"], tracking_uri, "no such folder")
        if scheme in ("http", "https"):
            _check_reachable(tracking_uri)
        elif scheme.split("+")[0] in _DATABASE_SCHEMES:  # postgresql+psycopg2://...
            _check_database_packages(tracking_uri)
        super().__init__(
            experiment_name=experiment_name,
            run_name=_run_name(run_name, run_dir),
            tracking_uri=tracking_uri,
            # A resumed run's own; else the project run that `mlflow run` made, if any.
            run_id=kept.get("mlflow") or _project_run_id(),
            **kwargs,
        )
        self._resumed = kept.get("mlflow") is not None
        self._last_logged_steps: dict[str, int] = {}
        self.stopped_by: int | None = None  # set by TrackerRuns: the signal (Ctrl-C, SIGTERM) that stopped it

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._initialized:
            return self._mlflow_client
        new_run = self._run_id is None
        try:
            client = super().experiment
        except Exception as err:  # MLflow's, or its file store's plain Exception for a folder gone
            if self._initialized:
                raise
            if self._run_id is None:
                raise ConfigError(
                    f"cannot use the MLflow store {self._tracking_uri} ({first_line(err, 160)}); check "
                    "logger.mlflow.tracking_uri (a server must be running), or leave it out for a local store"
                ) from None
            # Not a resumed run's: the run MLFLOW_RUN_ID names, which this run never logged to.
            not_in_store = _not_in_store if self._resumed else _project_run_not_in_store
            raise not_in_store(self._run_id, self._tracking_uri, first_line(err, 120)) from None
        if new_run and self._folder_tags:
            self._end_runs_left_running(client)
        return client

    def _end_runs_left_running(self, client: Any) -> None:
        """End, KILLED, the MLflow runs of this run folder on this machine that still say RUNNING:
        this process holds the folder (a run's claim on it), so theirs is gone, ended hard before it
        could end them (kill -9, a second Ctrl-C, out of memory). Each ends at its last logged value."""
        left = client.search_runs([self._experiment_id], filter_string="attributes.status = 'RUNNING'")
        for run in left:
            tags = run.data.tags
            if run.info.run_id == self._run_id or any(tags.get(k) != v for k, v in self._folder_tags.items()):
                continue
            times = [m.timestamp for key in run.data.metrics
                     for m in client.get_metric_history(run.info.run_id, key)]
            client.set_terminated(run.info.run_id, "KILLED", end_time=max(times, default=run.info.start_time))
            log.info("the MLflow run %s of this run folder, left RUNNING by a process that ended hard, "
                     "is KILLED now", run.info.run_id)

    # (Rank 0 alone logs, as Lightning's own methods do: another rank's experiment is a stand-in
    # that answers None, so reading the run there was a traceback on a resume with two processes.)
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._resumed and step is not None:
            # A run stopped hard (a second Ctrl-C, a kill, a crash) logged the steps after its last
            # checkpoint, which its resume takes again; MLflow keeps every value and deletes none
            # (no purge_step, as TensorBoard and the CSV file have), so a step it has is not
            # logged twice. Its values are those the resume repeats.
            metrics = {k: v for k, v in metrics.items() if step > self._last_logged_step(k)}
        if metrics:
            super().log_metrics(metrics, step)

    def _last_logged_step(self, key: str) -> int:
        """The last step the resumed MLflow run has a value of `key` at (-1: none), asked once."""
        if key not in self._last_logged_steps:
            stored = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else key
            history = self.experiment.get_metric_history(self.run_id, stored)
            self._last_logged_steps[key] = max((m.step for m in history), default=-1)
        return self._last_logged_steps[key]

    def finalize(self, status: str = "success") -> None:
        # Lightning ends every interrupted fit as FAILED; a run stopped on purpose (with the
        # checkpoint its resume continues from, or before training began) is MLflow's KILLED, as a
        # cancelled `mlflow run` is.
        super().finalize("KILLED" if status == "failed" and self.stopped_by is not None else status)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        flat = flat_params(dict(params))
        if self._run_id is not None:
            # MLflow refuses to change a logged parameter: a resumed run keeps the first values.
            logged = self.experiment.get_run(self.run_id).data.params
            changed = sorted(k for k, v in flat.items() if k in logged and logged[k] != str(v))
            if changed:
                rank_zero_warn(f"MLflow keeps the first value of parameters changed on resume: {changed}")
            flat = {k: v for k, v in flat.items() if k not in logged}
        if flat:
            super().log_hyperparams(flat)


class WandbTracker(WandbLogger):
    """Lightning's WandbLogger; WANDB_MODE=offline writes the run under the run directory only."""

    def __init__(
        self,
        project: str = "chargpt",
        name: str | None = None,
        run_dir: str | None = None,
        save_dir: str | None = None,
        tracker_runs: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        _import_check("wandb", "wandb")
        run_id = (tracker_runs or {}).get("wandb")
        if run_id is not None:
            kwargs.update(id=run_id, resume="allow")
        super().__init__(project=project, name=_run_name(name, run_dir), save_dir=save_dir or ".", **kwargs)
        self.stopped_by: int | None = None  # set by TrackerRuns: the signal (Ctrl-C, SIGTERM) that stopped it
        self.resumable = False  # set by TrackerRuns: stopped with the checkpoint its resume continues from
        if self._wandb_init.get("anonymous") is None:
            # Lightning passes anonymous=None, which W&B answers on every run with a warning that
            # the setting has no effect (and before the one error line of a run with no login).
            self._wandb_init.pop("anonymous", None)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        from wandb.errors import UsageError

        try:
            return super().experiment
        except UsageError as err:  # no login: W&B's traceback
            raise ConfigError(
                f"logger=wandb cannot start a W&B run ({first_line(err, 160)}); log in once (wandb login, or "
                "set WANDB_API_KEY), or run offline: WANDB_MODE=offline chargpt-train ..."
            ) from None

    def log_hyperparams(self, params: Any) -> None:
        super().log_hyperparams(flat_params(dict(params)))

    def finalize(self, status: str) -> None:
        """Close the W&B run when fitting (or validating) ends, so its files are complete; a later
        use in the same process (fit after a fine-tuning's first validation) continues it.
        W&B's client ends a run Finished (exit code 0) or Failed (any other): one stopped on
        purpose gets the command's own exit code (130 for Ctrl-C, 143 for SIGTERM), a crash 1.
        One stopped with its checkpoint written, which its resume continues, is first marked
        preempting, W&B's way to say that (Preempted, not Failed)."""
        super().finalize(status)
        if self._experiment is not None and getattr(self._experiment, "id", None):
            self._wandb_init.update(id=self._experiment.id, resume="allow")
            if status == "success":
                exit_code = 0
            else:
                exit_code = 1 if self.stopped_by is None else signal_exit_code(self.stopped_by)
            if status != "success" and self.resumable:
                self._experiment.mark_preempting()
            self._experiment.finish(exit_code=exit_code)
            self._experiment = None


class TrackerRuns(Callback):
    """Keeps the run id of each MLflow and W&B logger in the checkpoint (read by the loggers above)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        # Whether the run continues the tracker runs of the checkpoint it resumes from (in its own
        # folder); a resume into another folder keeps none of them, not even of a tracker it does not
        # use now, which a later resume of its own would have continued.
        self.continues = True

    @property
    def state_key(self) -> str:
        return TRACKER_RUNS_KEY

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger) and logger.run_id:
                self.ids["mlflow"] = logger.run_id
                self.ids[MLFLOW_STORE] = str(logger._tracking_uri)
            elif isinstance(logger, WandbLogger) and is_rank_zero():
                self.ids["wandb"] = logger.experiment.id

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        # Called before Lightning finalizes the loggers of an interrupted fit: a stop signal in the
        # training loop (which checkpoints), or before or after it (KeyboardInterrupt where
        # Lightning handles the signals itself, several processes).
        if isinstance(exception, (TrainingInterrupted, SignalOutsideTraining, KeyboardInterrupt)):
            # (Terminated, chargpt's KeyboardInterrupt for SIGTERM, has its signum too.)
            signum = getattr(exception, "signum", signal.SIGINT)
            for logger in trainer.loggers:
                if isinstance(logger, (MLFlowTracker, WandbTracker)):
                    logger.stopped_by = int(signum)
                if isinstance(logger, WandbTracker):
                    # (Stopped before training, the run has no checkpoint: a new start makes a new W&B run.)
                    logger.resumable = isinstance(exception, TrainingInterrupted)

    def state_dict(self) -> dict[str, str]:
        return dict(self.ids)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.continues:
            self.ids = {**state_dict, **self.ids}
