"""chargpt-report draws the validation-loss curves of a sweep's runs beside report.csv."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import time
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from chargpt.overrides import hydra_quoted
from chargpt.run_layout import find_runs
from chargpt.runs.curves import (
    DPI,
    LABEL_LINE_CHARS,
    LABEL_VALUE_CHARS,
    PLOT_HEIGHT_IN,
    CurveRun,
    curve_label,
    curve_runs,
    curves_figure,
    val_curve,
)
from chargpt.runs.report import report
from chargpt.runs.run_rows import run_row, sort_rows
from fake_runs import fake_run


def log_run(sweep: Path, name: str, overrides: list[str], losses: dict[int, float], source: str) -> None:
    """A run with its validation losses logged by `source`: csv, tensorboard or none (logger=none)."""
    metrics = {"best_val_loss": min(losses.values()), "step": max(losses)}
    run = fake_run(sweep, name, overrides, metrics, {"status": "completed"})
    if source == "none":  # logger=none
        return
    if source == "csv":
        (run / "csv").mkdir()
        lines = ["epoch,step,train/loss,val/loss"]
        for step, loss in losses.items():
            lines += [f"0,{step},{loss + 0.1},", f"0,{step},,{loss}"]
        (run / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    else:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(run / "tensorboard")) as writer:
            for step, loss in losses.items():
                writer.add_scalar("val/loss", loss, step)


def sweep_of_three(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    log_run(sweep, "0", ["optimizer.lr=0.001", "model=tiny"], {9: 3.0, 19: 2.5, 29: 2.2}, "csv")
    log_run(sweep, "1", ["optimizer.lr=0.003", "model=tiny"], {9: 2.8, 19: 2.1, 29: 1.9}, "tensorboard")
    log_run(sweep, "2", ["optimizer.lr=0.01", "model=tiny"], {9: 2.9}, "csv")
    return sweep


def ranked(sweep: Path) -> list[dict]:
    return sort_rows([run_row(r, sweep) for r in find_runs(sweep)], "best_val_loss")


def legend_labels(sweep: Path) -> list[str]:
    fig = curves_figure(sweep, curve_runs(ranked(sweep)))
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_curves_come_from_csv_or_tensorboard_logs(tmp_path: Path) -> None:
    sweep = sweep_of_three(tmp_path)
    assert val_curve(sweep / "0") == [(9, 3.0), (19, 2.5), (29, 2.2)]
    steps, losses = zip(*val_curve(sweep / "1"), strict=True)
    assert steps == (9, 19, 29) and losses == pytest.approx((2.8, 2.1, 1.9))
    assert val_curve(tmp_path) == []


@pytest.mark.slow
def test_a_run_resumed_after_a_kill_reads_quietly_with_its_new_steps(tmp_path: Path, caplog) -> None:
    # Killed at step 30 with its last checkpoint at 20: the resume logs 30 again, and TensorBoard
    # drops the killed run's step 30 (its own warning about it says nothing to a report reader).
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    for losses, purge_step in (({10: 3.0, 20: 2.5, 30: 2.2}, None), ({30: 2.3, 40: 2.0}, 21)):
        # Event files sort by their second, then a per-process counter compared as text: within one
        # second the resume's file can sort first (tests/test_faults.py). A real resume comes later.
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        with SummaryWriter(str(run / "tensorboard"), purge_step=purge_step) as writer:  # as a resume
            for step, loss in losses.items():
                writer.add_scalar("val/loss", loss, step)
    with caplog.at_level("WARNING"):
        steps, losses = zip(*val_curve(run), strict=True)
    assert steps == (10, 20, 30, 40) and losses == pytest.approx((3.0, 2.5, 2.3, 2.0))
    assert caplog.records == []


def test_one_line_per_run_labelled_by_the_swept_settings(tmp_path: Path) -> None:
    sweep = sweep_of_three(tmp_path)
    fig = curves_figure(sweep, curve_runs(ranked(sweep)))
    assert fig is not None
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 3
    assert legend_labels(sweep) == [
        "1: optimizer.lr=0.003  (1.900)", "0: optimizer.lr=0.001  (2.200)", "2: optimizer.lr=0.01  (2.900)",
    ]
    assert ax.get_ylabel() == "validation loss"
    assert ax.get_title() == "validation loss of 3 runs: tmp_path/sweep".replace("tmp_path", tmp_path.name)

    # A run that failed before its first validation has no curve: the title says one is missing.
    (sweep / "3" / ".hydra").mkdir(parents=True)
    (sweep / "3" / ".hydra" / "overrides.yaml").write_text("- optimizer.lr=0.1\n- model=tiny\n")
    (sweep / "3" / "status.json").write_text(json.dumps({"status": "failed", "error": "nan"}))
    (ax,) = curves_figure(sweep, curve_runs(ranked(sweep))).axes
    assert len(ax.get_lines()) == 3
    assert ax.get_title() == f"validation loss of 3 of 4 runs (1 never validated): {tmp_path.name}/sweep"


def test_runs_without_a_log_are_told_apart_from_runs_that_never_validated(tmp_path: Path, capsys) -> None:
    # logger=none validates but keeps no log to draw from: "never validated" said the wrong thing,
    # and a sweep of such runs got no picture without a word.
    sweep = tmp_path / "sweep"
    for name in ("0", "1"):
        log_run(sweep, name, [f"seed={name}", "logger=none"], {9: 2.5}, "none")
        launch = "hydra:\n  runtime:\n    choices:\n      logger: none\n"
        (sweep / name / ".hydra" / "hydra.yaml").write_text(launch)
    report(sweep)
    out = capsys.readouterr().out
    told = ("no curves drawn (2 runs: 2 without a TensorBoard or CSV log; "
            "logger=tensorboard or csv writes one)")
    assert told in out
    assert not (sweep / "report_curves.png").exists()
    log_run(sweep, "2", ["seed=2"], {9: 2.4}, "csv")
    (ax,) = curves_figure(sweep, curve_runs(ranked(sweep))).axes
    assert ax.get_title().startswith("validation loss of 1 of 3 runs (2 without a TensorBoard or CSV log): ")


def test_a_folder_of_one_run_is_counted_as_one_run(tmp_path: Path, capsys) -> None:
    # chargpt-report reads any folder of runs: one run was "1 runs" in the title and in the line
    # that says why nothing was drawn.
    folder = tmp_path / "runs"
    log_run(folder, "mine", ["seed=1"], {9: 2.5}, "csv")
    (ax,) = curves_figure(folder, curve_runs(ranked(folder))).axes
    assert ax.get_title() == f"validation loss of 1 run: {tmp_path.name}/runs"
    (folder / "mine" / "csv" / "metrics.csv").unlink()  # stopped before its first validation
    report(folder)
    assert "no curves drawn (1 run: 1 never validated)" in capsys.readouterr().out


def test_a_label_shows_a_removal_as_typed(tmp_path: Path) -> None:
    # `~callbacks.progress_bar` was labelled `callbacks.progress_bar=`, which sets it to nothing.
    sweep = tmp_path / "sweep"
    log_run(sweep, "0", ["~callbacks.progress_bar"], {9: 3.0}, "csv")
    log_run(sweep, "1", ["optimizer.lr=0.003"], {9: 2.5}, "csv")
    assert legend_labels(sweep) == ["1: optimizer.lr=0.003  (2.500)", "0: ~callbacks.progress_bar  (3.000)"]


def test_a_label_shows_an_added_setting_with_its_plus(tmp_path: Path) -> None:
    # `+new.key=1` was labelled `new.key=1`, where the tables show `+new.key` (pasted without the
    # `+`, a command refuses a setting the config does not have).
    sweep = tmp_path / "sweep"
    log_run(sweep, "0", ["+new.key=1", "++other.key=a"], {9: 3.0}, "csv")
    log_run(sweep, "1", ["+new.key=2", "++other.key=b"], {9: 2.5}, "csv")
    assert legend_labels(sweep) == ["1: +new.key=2, ++other.key=b  (2.500)",
                                    "0: +new.key=1, ++other.key=a  (3.000)"]


def test_a_value_with_a_comma_is_labelled_quoted_as_a_shell_takes_it(tmp_path: Path) -> None:
    # `data.name=my ds, é, seed=1` read as three settings, `é` one of them: the legend's own
    # separator inside a value. Quoted as a shell takes it, the value pastes as one word; a value
    # without a comma reads as one already and stays bare (`data.name=tiny ds`).
    sweep = tmp_path / "my runs, é 🚀"
    log_run(sweep, "0", [f"data.name={hydra_quoted('my ds, é')}", "seed=1"], {9: 3.0}, "csv")
    log_run(sweep, "1", [f"data.name={hydra_quoted('tiny ds')}", "seed=2"], {9: 2.5}, "csv")
    log_run(sweep, "2", [f"data.name={hydra_quoted('ROMEO, it’s late')}", "seed=3"], {9: 2.0}, "csv")
    labels = legend_labels(sweep)
    assert labels == ["2: data.name='ROMEO, it’s late', seed=3  (2.000)",
                      "1: data.name=tiny ds, seed=2  (2.500)",
                      "0: data.name='my ds, é', seed=1  (3.000)"]
    (setting, _, _) = labels[2].partition(", seed=")
    assert shlex.split(setting.partition(": ")[2]) == ["data.name=my ds, é"]

def test_a_label_names_its_run_and_only_the_settings_it_set(tmp_path: Path) -> None:
    # Runs with the same overrides had the same label, and one that left a swept setting at its
    # default read `optimizer.lr=`.
    sweep = tmp_path / "sweep"
    log_run(sweep, "0", ["optimizer.lr=0.001", "model=tiny"], {9: 3.0, 19: 2.2}, "csv")
    log_run(sweep, "good run", ["optimizer.lr=0.001", "model=tiny"], {9: 3.0, 19: 2.3}, "csv")
    log_run(sweep, "2", ["model=tiny", "model.dropout=0.1"], {9: 3.0, 19: 2.4}, "csv")
    path = "data.path='corpus number 3, a rather long file name.txt'"
    log_run(sweep, "3", ["optimizer.lr=0.003", "model=tiny", path], {9: 3.0, 19: 2.5}, "csv")
    assert legend_labels(sweep) == [
        "0: optimizer.lr=0.001  (2.200)", "good run: optimizer.lr=0.001  (2.300)",
        "2: model.dropout=0.1  (2.400)",
        "3: optimizer.lr=0.003, data.path='corpus number 3, a rather long file name.txt'  (2.500)",  # a name
    ]


@pytest.mark.parametrize("count", [2, 8, pytest.param(20, marks=pytest.mark.slow)])
def test_the_legend_covers_no_curve_and_is_never_clipped(tmp_path: Path, count: int) -> None:
    # Inside the plot (upper right) it hid the curves, and long labels ran off the image's left edge;
    # a label of its longest lines in the widest letters, too.
    runs = []
    for i in range(count):
        (tmp_path / str(i) / "csv").mkdir(parents=True)
        points = "".join(f"{step},{4.0 - i / count - step / 100}\n" for step in (10, 100, 200))
        (tmp_path / str(i) / "csv" / "metrics.csv").write_text("step,val/loss\n" + points)
        settings = {"optimizer.lr": f"0.00{i}", **{f"model.{'W' * 30}{k}": "WM" * 50 for k in range(4)}}
        runs.append(CurveRun(curve_label(str(i), settings), tmp_path / str(i), "finished", setting=i))
    fig = curves_figure(tmp_path, runs)
    fig.canvas.draw()  # lays the figure out as savefig does
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    (drawn,) = [legend for legend in (ax.get_legend(), *fig.legends) if legend is not None]
    legend, plot = drawn.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= plot.y0  # below the plot, not over it
    assert legend.x0 >= 0 and legend.y0 >= 0 and legend.x1 <= fig.bbox.width  # whole, inside the image
    # The legend's rows did not squeeze the plot away: the figure grew by them.
    assert plot.height >= 0.75 * PLOT_HEIGHT_IN * DPI
    labels = [t.get_text() for t in drawn.get_texts()]
    assert all(label.startswith(f"{i}: optimizer.lr=") for i, label in enumerate(labels))
    assert all(label.count("\n") == 3 and len(label.partition("  (")[0].splitlines()[0]) <= LABEL_LINE_CHARS
               for label in labels)
    colors = [line.get_color() for line in ax.get_lines()]
    assert len(set(colors)) == count  # no two runs share a colour


def test_runs_told_apart_by_their_last_setting_keep_it_in_their_labels(tmp_path: Path) -> None:
    # A folder of a sweep and single runs of other prompts, files and shapes: labels cut at 96
    # characters ended before optimizer.lr, the one setting runs 0 and 1 differ in, so they had one
    # label. Every setting stays, over lines broken between settings.
    folder = tmp_path / "runs"
    shared = ["data.path=/home/me/corpora/un.txt", "sample.prompt='ROMEO, où êtes-vous?'", "model.n_layer=2",
              "model.dropout=0.1", "trainer.max_steps=300"]
    log_run(folder / "sweep", "0", [*shared, "optimizer.lr=0.001"], {9: 3.0, 19: 2.2}, "csv")
    log_run(folder / "sweep", "1", [*shared, "optimizer.lr=0.003"], {9: 3.0, 19: 2.3}, "csv")
    other = ["data.path=/home/me/corpora/deux.txt", "sample.prompt=JULIET", "model.n_layer=4",
             "model.dropout=0.2", "trainer.max_steps=200", "optimizer.lr=0.003"]
    log_run(folder, "single", other, {9: 3.0, 19: 2.4}, "csv")
    rows = ranked(folder)
    labels = legend_labels(folder)
    assert labels[:2] == [
        f"sweep/{run}: data.path=…/un.txt, sample.prompt='ROMEO, où êtes-vous?', model.n_layer=2,\n"
        f"    model.dropout=0.1, trainer.max_steps=300, optimizer.lr=0.00{lr}  ({loss})"
        for run, lr, loss in ((0, 1, "2.200"), (1, 3, "2.300"))
    ]
    # The figure names each run as the table does, its name whole, in the table's order.
    assert [label.partition(": ")[0] for label in labels] == [row["run"] for row in rows]
    lines = [line for label in labels for line in label.partition("  (")[0].splitlines()]
    assert all(len(line) <= LABEL_LINE_CHARS for line in lines)


def test_a_value_the_font_cannot_draw_is_cut_as_drawn() -> None:
    # Cut to 20 characters before its conversion, a CJK prompt came out as 16 code points: 111
    # characters for a value given 20.
    label = curve_label("日本 run", {"sample.prompt": "日本語のテキストを書いてください", "seed": "1"})
    name, _, settings = label.partition(": ")
    assert name == "U+65E5 U+672C run"  # the name whole, as in the table
    prompt = settings.split(", ")[0].removeprefix("sample.prompt=")
    assert prompt == "U+65E5 U+672C…" and len(prompt) <= LABEL_VALUE_CHARS
    assert settings.endswith(", seed=1")


def test_a_searchs_draws_are_labelled_short_and_every_setting_stays(tmp_path: Path) -> None:
    # Optuna's draws were cut at 20 characters (`optimizer.lr=0.00099838149495140…`), and the
    # label's 48 characters ended there: `model.n_e…`, the other settings of the trial lost.
    sweep = tmp_path / "search"
    for i, (lr, width, depth, dropout) in enumerate(
        [("0.0009983814949514017", 64, 2, "0.24971121092039475"), ("0.0003342330176505377", 192, 5, "0.1")]
    ):
        overrides = [f"optimizer.lr={lr}", f"model.n_embd={width}", f"model.n_layer={depth}",
                     f"model.dropout={dropout}"]
        log_run(sweep, str(i), overrides, {9: 3.0 + i, 19: 2.5 + i}, "csv")
    assert legend_labels(sweep) == [
        "0: optimizer.lr=0.000998381, model.n_embd=64, model.n_layer=2, model.dropout=0.249711  (2.500)",
        "1: optimizer.lr=0.000334233, model.n_embd=192, model.n_layer=5, model.dropout=0.1  (3.500)",
    ]


def test_paths_in_one_folder_are_labelled_from_there(tmp_path: Path) -> None:
    # Each label kept the first 20 characters of the path, the folder all of them share, and its
    # 48 characters ended before the next setting: four runs with one label.
    sweep = tmp_path / "runs"
    folder = "/home/me/corpora/Mes chansons d'été/"
    for i, (name, prompt) in enumerate([("un.txt", "ROMEO, my «lord»"), ("un.txt", "JULIET: it's late"),
                                        ("deux.txt", "ROMEO, my «lord»"), ("deux.txt", "JULIET: it's late")]):
        # As the command line records them: quoted for Hydra.
        overrides = [f"data.path={hydra_quoted(folder + name)}", f"sample.prompt={hydra_quoted(prompt)}"]
        log_run(sweep, str(i), overrides, {9: 3.0, 19: 2.5 + i / 10}, "csv")
    labels = legend_labels(sweep)
    assert labels[0] == "0: data.path=…/un.txt, sample.prompt='ROMEO, my «lord»'  (2.500)"
    assert len({label.partition(": ")[2] for label in labels}) == 4


def test_the_seeds_of_one_setting_share_its_colour_each_with_its_own_marker(tmp_path: Path) -> None:
    # Each run had a colour of its own: the seeds of one learning rate in unrelated colours, so the
    # picture did not show which curves belonged together.
    sweep = tmp_path / "seeds"
    for i, (lr, seed) in enumerate([("0.001", 1), ("0.001", 2), ("0.003", 1), ("0.003", 2), ("0.003", 3)]):
        losses = {step: 3.0 - step / 100 - i / 50 for step in range(10, 400, 10)}  # 39 points
        log_run(sweep, str(i), [f"optimizer.lr={lr}", f"seed={seed}"], losses, "csv")
    fig = curves_figure(sweep, curve_runs(ranked(sweep)))
    lines = {t.get_text().partition(":")[0]: line for t, line in zip(fig.legends[0].get_texts(),
                                                                      fig.axes[0].get_lines(), strict=True)}
    color = {name: line.get_color() for name, line in lines.items()}
    marker = {name: line.get_marker() for name, line in lines.items()}
    assert color["0"] == color["1"] and color["2"] == color["3"] == color["4"] and color["0"] != color["2"]
    assert len({marker["2"], marker["3"], marker["4"]}) == 3 and marker["0"] != marker["1"]
    assert marker["0"] == marker["2"] and marker["1"] == marker["3"]  # a seed's marker in every setting
    # A long curve keeps its markers (every few points), or its seed could not be told.
    assert all(1 < line.get_markevery() <= 4 for line in lines.values())


def test_values_alike_once_cut_are_labelled_whole(tmp_path: Path) -> None:
    # Files named alike but for their end were both `…/tinyshakespeare_v…`: cut at 20 characters,
    # the setting that told the runs apart no longer did.
    sweep = tmp_path / "runs"
    for i, name in enumerate(["tinyshakespeare_v1.txt", "tinyshakespeare_v2.txt"]):
        log_run(sweep, str(i), [f"data.path=/data/{name}", "optimizer.lr=0.0031415926535"],
                {9: 3.0, 19: 2.5 + i / 10}, "csv")
    log_run(sweep, "2", ["data.path=/data/x.txt", "optimizer.lr=0.0027182818284"], {9: 3.0, 19: 2.7}, "csv")
    assert legend_labels(sweep) == [
        "0: data.path=…/tinyshakespeare_v1.txt, optimizer.lr=0.00314159  (2.500)",
        "1: data.path=…/tinyshakespeare_v2.txt, optimizer.lr=0.00314159  (2.600)",
        "2: data.path=…/x.txt, optimizer.lr=0.00271828  (2.700)",
    ]


def test_a_cut_path_keeps_its_file_name(tmp_path: Path) -> None:
    # Cut at its end, a path in no folder shared with the others was `/srv/somewhere/scra…`: the
    # file name, what tells the runs apart, was lost. Cut between folders, the name is kept whole.
    sweep = tmp_path / "runs"
    for i, path in enumerate(["/srv/somewhere/scratch/a.txt", "~/corpora/my texts/b, c.txt",
                              "/data/corpora/shakespeare_notes_v1.txt", "/data/corpora/long_folder_name/"]):
        log_run(sweep, str(i), [f"data.path={hydra_quoted(path)}"], {9: 3.0, 19: 2.5 + i / 10}, "csv")
    assert legend_labels(sweep) == [
        "0: data.path=…/scratch/a.txt  (2.500)", "1: data.path='…/my texts/b, c.txt'  (2.600)",
        "2: data.path=…/shakespeare_notes_v1.txt  (2.700)", "3: data.path=…/long_folder_name/  (2.800)"]


def test_paths_alike_once_cut_to_their_file_name_are_labelled_whole(tmp_path: Path) -> None:
    sweep = tmp_path / "runs"
    for i, folder in enumerate(["corpus one", "corpus two"]):
        log_run(sweep, str(i), [f"data.path={hydra_quoted(f'/data/{folder}/input.txt')}"],
                {9: 3.0, 19: 2.5 + i / 10}, "csv")
    assert legend_labels(sweep) == ["0: data.path=…/corpus one/input.txt  (2.500)",
                                    "1: data.path=…/corpus two/input.txt  (2.600)"]


def test_a_setting_that_names_no_file_is_labelled_whole(tmp_path: Path) -> None:
    # Prompts that share `and/` were labelled `…/or the king`: a prompt is no path.
    sweep = tmp_path / "runs"
    for i, prompt in enumerate(["and/or the king", "and/or the queen"]):
        log_run(sweep, str(i), [f"sample.prompt={hydra_quoted(prompt)}"], {9: 3.0, 19: 2.5 + i / 10}, "csv")
    assert legend_labels(sweep) == ["0: sample.prompt=and/or the king  (2.500)",
                                    "1: sample.prompt=and/or the queen  (2.600)"]


def test_runs_with_one_validation_each_get_whole_step_ticks(tmp_path: Path) -> None:
    # One point per run gave an axis of 19.00-21.00 in quarter steps.
    runs = []
    for i, loss in enumerate((2.1, 2.3)):
        (tmp_path / str(i) / "csv").mkdir(parents=True)
        (tmp_path / str(i) / "csv" / "metrics.csv").write_text(f"step,val/loss\n20,{loss}\n")
        runs.append(CurveRun(f"seed={i}", tmp_path / str(i), "finished"))
    (ax,) = curves_figure(tmp_path, runs).axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_report_writes_the_png_beside_report_csv(tmp_path: Path, capsys) -> None:
    sweep = sweep_of_three(tmp_path)
    report(sweep)
    png = sweep / "report_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"written: {png}" in capsys.readouterr().out
    report(sweep)  # its own picture: replaced
    assert f"written: {png}" in capsys.readouterr().out
    empty = tmp_path / "no-curves"
    (empty / "0" / ".hydra").mkdir(parents=True)
    (empty / "0" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    report(empty)
    assert not (empty / "report_curves.png").exists()  # no logged curve: no picture


def _stop_half_way_through(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C half way through the report's writing of `name`, as a signal lands mid-write."""
    if name.endswith(".png"):
        real_savefig = Figure.savefig

        def savefig(self: Figure, target: Path, *args: object, **kwargs: object) -> None:
            whole = io.BytesIO()
            real_savefig(self, whole, *args, **kwargs)
            Path(target).write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
            raise KeyboardInterrupt

        monkeypatch.setattr(Figure, "savefig", savefig)
        return
    real_writerows = csv.DictWriter.writerows
    tables = iter(["report.csv", "report_groups.csv"])  # in the order the report writes them

    def writerows(self: csv.DictWriter, rows: object) -> None:
        if next(tables) != name:
            return real_writerows(self, rows)
        self.writer.writerow(["half of a row"])  # below the header
        raise KeyboardInterrupt

    monkeypatch.setattr(csv.DictWriter, "writerows", writerows)


@pytest.mark.parametrize("stopped", ["report.csv", "report_groups.csv", "report_curves.png"])
def test_a_report_stopped_as_it_writes_a_file_leaves_the_earlier_one_whole(
    stopped: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C there left the picture half drawn; a kill -9 between its opening and its first write
    # left it empty, which every later report refused as a file not its own.
    sweep = sweep_of_three(tmp_path)
    report(sweep)
    names = ("report.csv", "report_groups.csv", "report_curves.png")
    before = {name: (sweep / name).read_bytes() for name in names}
    _stop_half_way_through(stopped, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        report(sweep)
    for name in names[: names.index(stopped) + 1]:
        assert (sweep / name).read_bytes() == before[name], name
    monkeypatch.undo()
    report(sweep)  # the next report replaces them
    assert sorted(p.name for p in sweep.iterdir() if p.is_file()) == sorted(names)


@pytest.mark.parametrize("linked", ["report.csv", "report_groups.csv", "report_curves.png"])
def test_a_report_file_linked_into_another_folder_is_written_there_and_stays_a_link(
    linked: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rename that makes a report whole replaced the link itself with a plain file: the shared
    # folder it pointed into kept the old report, and the link was gone.
    sweep = sweep_of_three(tmp_path)
    shared = tmp_path / "shared folder é 🚀"
    shared.mkdir()
    report(sweep)
    target = shared / f"team {linked}"
    (sweep / linked).replace(target)
    (sweep / linked).symlink_to(os.path.relpath(target, sweep))  # as `ln -s` names it, relative
    earlier = target.read_bytes()
    fake_run(sweep, "3", ["optimizer.lr=4e-3"], metrics={"best_val_loss": 1.0, "last_val_loss": 1.0})
    _stop_half_way_through(linked, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        report(sweep)
    assert (sweep / linked).is_symlink() and target.read_bytes() == earlier  # whole at the target
    monkeypatch.undo()
    report(sweep)
    assert (sweep / linked).is_symlink() and (sweep / linked).resolve() == target
    assert target.read_bytes() != earlier
    if linked == "report.csv":
        assert "4e-3" in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in shared.iterdir()) == [target.name]  # no temporary file left there
    target.unlink()  # a link to a file not there yet: the report goes where it points
    report(sweep)
    assert (sweep / linked).is_symlink() and target.is_file()


def test_a_single_run_gets_its_curve_and_junk_beside_runs_is_left_out(tmp_path: Path, capsys) -> None:
    sweep = sweep_of_three(tmp_path)
    report(sweep / "1")  # a run folder given itself
    assert (sweep / "1" / "report_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, text in (("junk", "{{{\n"), ("mapping", "a: 1\n")):  # not Hydra's list of overrides
        (sweep / name / ".hydra").mkdir(parents=True)
        (sweep / name / ".hydra" / "overrides.yaml").write_text(text)
    capsys.readouterr()
    rows = report(sweep)
    assert sorted(row["run"] for row in rows) == ["0", "1", "2"]
    err = capsys.readouterr().err
    assert f"warning: left out {sweep / 'junk'}: " in err and "is not a list of overrides" in err


def test_a_name_the_font_cannot_draw_is_named_by_code_point_without_a_warning(tmp_path: Path) -> None:
    # An emoji in a run's folder name was drawn as an empty box, and matplotlib's missing-glyph
    # warning reached the console, with its source line, under the report's tables.
    import warnings

    from chargpt.runs.curves import write_curves

    sweep = tmp_path / "sweeps 人" / "sweep"
    log_run(sweep, "ft é 🎉", ["optimizer.lr=0.001"], {9: 3.0, 19: 2.5}, "csv")
    log_run(sweep, "plain", ["optimizer.lr=0.003"], {9: 2.8, 19: 2.1}, "csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = write_curves(tmp_path / "curves.png", sweep, curve_runs(ranked(sweep)))
    assert png is not None and png.stat().st_size > 0
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    fig = curves_figure(sweep, curve_runs(ranked(sweep)))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("ft é U+1F389: ") for label in labels), labels
    assert fig.axes[0].get_title().endswith(": sweeps U+4EBA/sweep")


# DejaVu Sans has no ⌒ (U+2312); DejaVu Sans Mono, which matplotlib installs with it, has one.
IN_ANOTHER_FONT = "\u2312"


def test_a_character_the_default_font_lacks_is_drawn_in_an_installed_font_that_has_it(tmp_path: Path) -> None:
    # Only the default font was asked: a run on 数据.txt was labelled U+6570 U+636E on a machine
    # with a CJK font installed.
    import warnings

    from matplotlib.font_manager import findfont

    from chargpt.glyphs import drawable, families, has_glyph
    from chargpt.runs.curves import write_curves
    from chargpt.training.callbacks.attention_maps import visible

    assert has_glyph(IN_ANOTHER_FONT) and drawable(f"a{IN_ANOTHER_FONT} 🎉") == f"a{IN_ANOTHER_FONT} U+1F389"
    assert families(f"a{IN_ANOTHER_FONT}é{IN_ANOTHER_FONT}") == ["sans-serif", "DejaVu Sans Mono"]
    assert families("plain é") == ["sans-serif"] and visible(IN_ANOTHER_FONT) == IN_ANOTHER_FONT
    sweep = tmp_path / f"sweeps {IN_ANOTHER_FONT}" / "sweep"
    log_run(sweep, f"run {IN_ANOTHER_FONT}", ["optimizer.lr=0.001"], {9: 3.0, 19: 2.5}, "csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = curves_figure(sweep, curve_runs(ranked(sweep)))
        write_curves(tmp_path / "curves.png", sweep, curve_runs(ranked(sweep)))
    assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    label, title = fig.legends[0].get_texts()[0], fig.axes[0].title
    assert label.get_text() == f"run {IN_ANOTHER_FONT}  (2.500)"
    assert title.get_text().endswith(f": sweeps {IN_ANOTHER_FONT}/sweep")
    for text in (label, title):
        assert text.get_fontfamily() == ["sans-serif", "DejaVu Sans Mono"]
        assert findfont(text.get_fontproperties()).endswith("DejaVuSans.ttf")  # the default font first


def test_code_points_in_a_row_stay_apart_and_drawable_text_is_kept() -> None:
    from chargpt.glyphs import drawable

    assert drawable("日本 run é, b") == "U+65E5 U+672C run é, b"
    assert drawable("🎉x🎉") == "U+1F389xU+1F389"


def test_a_cut_drawable_text_keeps_whole_code_points() -> None:
    from chargpt.glyphs import drawable_cut

    assert drawable_cut("été 日本語", 20) == "été U+65E5 U+672C…"  # not `U+672C U+8…`
    assert drawable_cut("été 日本", 20) == "été U+65E5 U+672C"  # it fits: no ellipsis
    assert drawable_cut("a, b, c", 4) == "a…"  # no dangling separator before the ellipsis
