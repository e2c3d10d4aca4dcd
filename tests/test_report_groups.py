"""chargpt-report groups the runs that differ only in their seed: mean ± std per setting, and each
setting compared with the best one (a difference smaller than the seeds' spread is marked)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from chargpt.errors import ChargptError
from chargpt.run_layout import find_runs
from chargpt.runs.curves import curve_runs
from chargpt.runs.report import report
from chargpt.runs.report_table import ONCE_EACH
from chargpt.runs.run_rows import run_row, sort_rows, validation_text
from chargpt.runs.seed_groups import group_runs
from conftest import run_cli
from fake_runs import fake_run


def loss_run(
    sweep: Path, name: str, overrides: list[str], best: float | None, status: str = "finished"
) -> None:
    """A run whose figures all follow from its best loss (None: no metrics.json)."""
    metrics = None if best is None else {
        "best_val_loss": best, "val_loss": best + 0.5, "step": 100, "tokens_per_second": 1000.0 * best,
        "train_seconds": 10 * best,
    }
    fake_run(sweep, name, overrides, metrics, {"status": status})


def sweep_of(tmp_path: Path, settings: dict[str, list[float]], extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    """One run per (setting, seed): settings maps an override to the best losses of seeds 1, 2, ..."""
    sweep = tmp_path / "sweep"
    i = 0
    for setting, losses in settings.items():
        for seed, loss in enumerate(losses, start=1):
            loss_run(sweep, str(i), [setting, f"seed={seed}", *extra], loss)
            i += 1
    return sweep


def groups_of(sweep: Path, metric: str = "best_val_loss") -> list[dict]:
    return group_runs(sort_rows([run_row(r, sweep) for r in find_runs(sweep)], metric), metric)


def test_mean_and_std_per_setting_over_its_seeds(tmp_path: Path, capsys) -> None:
    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.2, 2.4], "optimizer.lr=3e-3": [1.5, 1.6, 1.7]})
    loss_run(sweep, "6", ["optimizer.lr=3e-3", "seed=4"], None, status="failed")  # left out of the figures

    report(sweep)

    out = capsys.readouterr().out
    with (sweep / "report_groups.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["optimizer.lr"] for r in rows] == ["3e-3", "1e-3"]  # the best first
    best, other = rows
    assert best["seeds"] == "1,2,3,4" and best["runs"] == "4" and best["n"] == "3"
    assert float(best["best_val_loss_mean"]) == pytest.approx(1.6)
    assert float(best["best_val_loss_std"]) == pytest.approx(0.1)  # sample std (n - 1)
    assert float(best["last_val_loss_mean"]) == pytest.approx(2.1)
    assert float(best["tokens_per_sec_mean"]) == pytest.approx(1600.0)
    assert float(other["best_val_loss_mean"]) == pytest.approx(2.2)
    assert float(other["best_val_loss_std"]) == pytest.approx(0.2)
    assert float(other["delta"]) == pytest.approx(0.6)
    # 2.2 - 1.6 = 0.6 is more than 0.2 + 0.1: told apart.
    assert [r["vs_best"] for r in rows] == ["best", "apart"]
    assert "1.6000 ± 0.1000" in out and "2.2000 ± 0.2000" in out and "3/4" in out
    assert (sweep / "report.csv").exists()  # the per-run table is still written


@pytest.mark.parametrize(("other", "mark"), [
    ([1.65, 1.75, 1.85], "≈ noise"),  # mean 1.75, std 0.1: 0.15 < 0.1 + 0.1
    ([1.75, 1.85, 1.95], "apart"),  # mean 1.85: 0.25 > 0.2
    ([1.62], "≈ n=1"),  # one seed: no spread known, cannot be told apart
    ([3.0], "≈ n=1"),  # ... however far
])
def test_a_difference_within_the_seeds_spread_is_marked(tmp_path: Path, other: list[float], mark: str):
    sweep = sweep_of(tmp_path, {"model.dropout=0.0": [1.5, 1.6, 1.7], "model.dropout=0.1": other})
    groups = groups_of(sweep)
    marks = [(g["settings"]["model.dropout"], g["vs_best"]) for g in groups]
    assert marks == [("0.0", "best"), ("0.1", mark)]


def test_the_best_is_the_highest_throughput_when_ranked_by_it(tmp_path: Path) -> None:
    sweep = sweep_of(tmp_path, {"data.batch_size=8": [1.5, 1.6], "data.batch_size=16": [2.0, 2.1]})
    groups = groups_of(sweep, "tokens_per_sec")
    assert [g["settings"]["data.batch_size"] for g in groups] == ["16", "8"]
    assert [g["vs_best"] for g in groups] == ["best", "apart"]


def test_runs_differing_in_more_than_the_seed_are_not_grouped(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    loss_run(sweep, "0", ["optimizer.lr=1e-3", "seed=1"], 1.5)
    loss_run(sweep, "1", ["optimizer.lr=1e-3", "seed=2"], 1.6)
    loss_run(sweep, "2", ["optimizer.lr=1e-3", "seed=3", "model.dropout=0.1"], 1.4)
    loss_run(sweep, "3", ["optimizer.lr=1e-3"], 1.7)  # no seed given (the config default): same setting
    groups = groups_of(sweep)
    by_seeds = {g["seeds"]: g for g in groups}
    assert set(by_seeds) == {"1,2,-", "3"}  # "-": no seed given
    assert by_seeds["3"]["settings"] == {"optimizer.lr": "1e-3", "model.dropout": "0.1"}
    assert by_seeds["1,2,-"]["n"] == 3


def test_runs_repeating_a_seed_count_once(tmp_path: Path, capsys) -> None:
    # A run repeated with the same seed and settings (on a CPU, a copy of it) is not a second
    # measurement: it would make n larger and the spread smaller than the seeds show.
    sweep = tmp_path / "sweep"
    for name, seed, loss in [("0", 1, 1.5), ("1", 2, 1.7), ("2", 2, 1.7), ("3", 3, 1.6), ("4", "03", 1.6)]:
        loss_run(sweep, name, ["optimizer.lr=1e-3", f"seed={seed}"], loss)  # 03 is seed 3 again
    for name in ("5", "6"):
        loss_run(sweep, name, ["optimizer.lr=3e-3", "seed=7"], 1.4)  # one seed, twice: no spread known
    loss_run(sweep, "7", ["optimizer.lr=3e-3", "seed=8"], None, status="failed")
    report(sweep)
    with (sweep / "report_groups.csv").open() as f:
        best, other = csv.DictReader(f)
    assert (best["seeds"], best["runs"], best["n"], best["best_val_loss_std"]) == ("7×2,8", "3", "1", "")
    assert (other["seeds"], other["runs"], other["n"]) == ("1,2×2,3×2", "5", "3")
    assert (best["seed_count"], other["seed_count"]) == ("2", "3")  # the CSV's "1/2": n of seed_count
    assert float(other["best_val_loss_mean"]) == pytest.approx(1.6)  # over seeds 1, 2, 3
    assert float(other["best_val_loss_std"]) == pytest.approx(0.1)
    assert [best["vs_best"], other["vs_best"]] == ["best", "≈ n=1"]
    out = capsys.readouterr().out
    assert "1/2" in out and "1,2×2,3×2" in out and "3/5" not in out  # n out of the seeds, not the runs


def test_a_sweep_whose_settings_each_ran_once_says_so_in_one_line_for_their_table(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    # An Optuna search (or a sweep without seeds) printed its runs again as settings, each `≈ n=1`
    # with no spread: the same rows twice.
    monkeypatch.setenv("COLUMNS", "100")
    sweep = tmp_path / "sweep"
    loss_run(sweep, "0", ["optimizer.lr=1e-3"], 1.5)
    loss_run(sweep, "1", ["optimizer.lr=3e-3"], 1.4)
    report(sweep)
    out = capsys.readouterr().out
    under = out[out.index("└"):out.index("written:")]
    assert "2 settings" not in out and "± —" not in out and "≈ n=1" not in out
    assert " ".join(under.split()).endswith(" ".join(ONCE_EACH.split()))  # one line, wrapped at 100 columns
    assert max(len(line) for line in under.splitlines()) <= 100
    with (sweep / "report_groups.csv").open() as f:  # still written, as for every sweep
        rows = list(csv.DictReader(f))
    figures = [(r["n"], r["best_val_loss_std"], r["vs_best"]) for r in rows]
    assert figures == [("1", "", "best"), ("1", "", "≈ n=1")]


def test_a_narrow_terminal_keeps_the_setting_and_leaves_out_the_other_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.2], "optimizer.lr=3e-3": [1.5, 1.6]})
    report(sweep)
    out = capsys.readouterr().out
    group_table = out[out.index("2 settings"):out.index("written:")]
    assert max(len(line) for line in group_table.splitlines()) <= 80  # (the run table keeps its metrics)
    assert "optimizer.lr" in group_table and "3e-3" in group_table and "1.5500 ± 0.0707" in group_table
    assert "not shown (see the CSV): tokens_per_sec" in " ".join(group_table.split())


def test_the_ranking_figure_shows_the_spread_its_comparison_uses(tmp_path, capsys, monkeypatch):
    # Ranked by wall time, vs_best said `≈ noise` from the std of wall_s, which the table left out:
    # the mark could not be checked against what it showed.
    monkeypatch.setenv("COLUMNS", "120")
    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.2], "optimizer.lr=3e-3": [1.5, 1.6]})
    report(sweep, sort_by="wall_s")
    out = capsys.readouterr().out
    table = out[out.index("2 settings"):out.index("written:")]
    assert "15.5 ± 0.7" in table and "21.0 ± 1.4" in table and "≈ noise" not in table
    assert "1,550 " in table  # another figure: its mean


def test_a_narrow_settings_table_shows_what_tells_its_rows_apart(tmp_path, capsys, monkeypatch):
    # At 70 columns the learning rate, the one setting two rows differed in, was left out while a
    # figure (wall_s) and the seeds' list were shown: the rows read alike.
    monkeypatch.setenv("COLUMNS", "70")
    sweep, i = tmp_path / "sweep", 0
    for heads in (2, 3):
        for lr in ("3e-3", "3.1e-3"):
            for seed in (1, 2):
                best = 2.5 + heads / 10 + (0.01 if lr == "3e-3" else 0) + seed / 100
                loss_run(sweep, str(i), [f"model.n_head={heads}", f"optimizer.lr={lr}", f"seed={seed}"], best)
                i += 1
    report(sweep)
    out = capsys.readouterr().out
    table = out[out.index("4 settings"):out.index("written:")]
    header = next(line for line in table.splitlines() if line.startswith("┃"))
    assert "model.n_head" in header and "optimizer.lr" in header
    assert "wall_s" not in header and "seeds" not in header
    assert max(len(line) for line in table.splitlines()) <= 70
    notes = " ".join(table.split())
    assert ("the same in every row: seeds=1,2 not shown (see the CSV): last_val_loss, tokens_per_sec, "
            "wall_s") in notes


def test_the_csv_replaces_only_a_reports_own_files(tmp_path: Path, capsys) -> None:
    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.2], "optimizer.lr=3e-3": [1.5, 1.6]})
    report(sweep, tmp_path / "my report.csv")
    report(sweep, tmp_path / "my report.csv")  # its own earlier output: replaced
    names = {"my report.csv", "my report_groups.csv"}
    assert names <= {p.name for p in tmp_path.iterdir()}

    keep = tmp_path / "keep.txt"
    keep.write_text("my notes\n")
    with pytest.raises(ChargptError, match=r"keep\.txt exists and is not a report's output; nothing was"):
        report(sweep, keep)
    assert keep.read_text() == "my notes\n" and not (tmp_path / "keep_groups.txt").exists()
    # Another sweep's report, named by --csv: it was replaced.
    other_sweep = sweep_of(tmp_path / "other", {"optimizer.lr=1e-2": [2.5]})
    (other_sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: []\n    task: [optimizer.lr=1e-2]\n")
    report(other_sweep)
    theirs = (other_sweep / "report.csv").read_bytes()
    with pytest.raises(ChargptError, match=r"report\.csv is the report of the runs in .*sweep, not of "):
        report(sweep, other_sweep / "report.csv")
    assert (other_sweep / "report.csv").read_bytes() == theirs
    (tmp_path / "other_groups.csv").write_text("a,b\n1,2\n")  # the settings' table would replace it
    with pytest.raises(ChargptError, match=r"other_groups\.csv exists and is not a report's output"):
        report(sweep, tmp_path / "other.csv")
    assert not (tmp_path / "other.csv").exists()
    with pytest.raises(ChargptError, match=r"the folder .*no such folder does not exist; create it "
                       r"\(mkdir -p '.*/no such folder'\) or pass another --csv path"):
        report(sweep, tmp_path / "no such folder" / "x.csv")
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n not a report")  # a picture is a report's only as its curves
    with pytest.raises(ChargptError, match=r"photo\.png exists and is not a report's output"):
        report(sweep, picture)
    assert picture.read_bytes().endswith(b"not a report")
    # A user's own picture and table under the report's names: a PNG, a CSV with run and status.
    (sweep / "report_curves.png").write_bytes(b"\x89PNG\r\n\x1a\n my plot")
    with pytest.raises(ChargptError, match=r"report_curves\.png exists and is not a report's output"):
        report(sweep)
    mine = _matplotlib_png()  # the user's own plot (or an old report's), drawn with the report's library
    (sweep / "report_curves.png").write_bytes(mine)
    old_or_mine = r"report_curves\.png exists and is not marked as a report's output \(a report before 2026"
    with pytest.raises(ChargptError, match=old_or_mine):
        report(sweep)
    assert (sweep / "report_curves.png").read_bytes() == mine
    (sweep / "report_curves.png").unlink()
    (sweep / "report.csv").write_text("run,status,notes\n0,ok,mine\n")
    with pytest.raises(ChargptError, match=r"report\.csv exists and is not a report's output"):
        report(sweep)


def test_a_report_written_before_a_figure_column_was_added_is_still_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report's CSV is known by the columns every report has written, not by today's figures: a
    # version that adds one (params) still replaces the reports written before it.
    from chargpt.runs import report_files, run_rows

    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0], "optimizer.lr=3e-3": [1.5]})
    report(sweep)
    grown = [*run_rows.METRIC_COLUMNS, "params"]
    monkeypatch.setattr(run_rows, "METRIC_COLUMNS", grown)
    monkeypatch.setattr(report_files, "METRIC_COLUMNS", grown, raising=False)  # where it was read
    report(sweep)
    with (sweep / "report.csv").open(newline="", encoding="utf-8") as f:
        assert "params" in next(csv.reader(f))


def _matplotlib_png() -> bytes:
    from io import BytesIO

    from matplotlib.figure import Figure

    figure, out = Figure(), BytesIO()
    figure.add_subplot().plot([1, 2])
    figure.savefig(out, format="png")
    return out.getvalue()


def test_a_resumed_run_shows_the_settings_its_latest_resume_changed(tmp_path: Path) -> None:
    # A resume trains on with its own command line's settings: more steps (repeated settings
    # unchanged), or a learning rate left out (the default from then on). ckpt_path is how it was
    # resumed, not a setting; the resume folders are not runs of their own.
    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.1]}, extra=["trainer.max_steps=500"])
    resumes = {
        "0": [("20261203-101500", "- optimizer.lr=1e-3\n- seed=1\n- trainer.max_steps=2000\n"),
              ("20261203-091500", "- optimizer.lr=1e-3\n- seed=1\n- trainer.max_steps=1000\n")],
        "1": [("20261203-091500", "- seed=2\n- trainer.max_steps=500\n- +trainer.x=1\n")],
    }
    for run, launches in resumes.items():
        for stamp, resumed in launches:
            (sweep / run / ".hydra" / f"resume-{stamp}").mkdir()
            (sweep / run / ".hydra" / f"resume-{stamp}" / "overrides.yaml").write_text(
                f"{resumed}- ckpt_path='{sweep / run}'\n")
    rows = {row["run"]: row["overrides"] for row in (run_row(r, sweep) for r in find_runs(sweep))}
    assert rows == {
        "0": {"optimizer.lr": "1e-3", "seed": "1", "trainer.max_steps": "500→2000"},
        "1": {"optimizer.lr": "1e-3→default", "seed": "2", "trainer.max_steps": "500",
              "trainer.x": "default→1"},
    }


def test_a_resume_that_names_the_same_path_absolute_changes_no_setting(tmp_path: Path) -> None:
    # The command an interrupted run prints names its paths absolute (it may be run from anywhere):
    # resumed with it, the run read init_from 'exports/m 😀→/home/me/exports/m 😀', a change it never had.
    sweep = tmp_path / "sweep"
    loss_run(sweep, "0", ["init_from='exports/m 😀'", "data.path=a.txt", "seed=1"], 2.0)
    resume = sweep / "0" / ".hydra" / "resume-20261205-183132"
    resume.mkdir()
    (resume / "overrides.yaml").write_text("- init_from='/home/me/exports/m 😀'\n- data.path=/home/me/b.txt\n"
                                           f"- seed=1\n- ckpt_path='{sweep / '0'}'\n")
    for launch, cwd in ((sweep / "0" / ".hydra", "/home/me"), (resume, "/elsewhere")):
        (launch / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {cwd}\n")
    assert run_row(sweep / "0", sweep)["overrides"] == {
        "init_from": "exports/m 😀", "data.path": "a.txt→/home/me/b.txt", "seed": "1"}


def test_a_continued_sweep_names_each_file_one_way(tmp_path: Path, capsys, monkeypatch) -> None:
    # `-m 'data.path=choice(a.txt,my texts/b, c.txt)' seed=1,2` stopped after two jobs and continued
    # with its printed command, which names the files absolute: the report read `a.txt` in one row
    # and `/home/me/a.txt` in another, and put a file's two seeds in two settings.
    sweep = tmp_path / "sweep"
    jobs = [("a.txt", "1", "/home/me"), ("'my texts/b, c.txt'", "1", "/home/me"),
            ("/home/me/a.txt", "2", "/elsewhere"), ("'/home/me/my texts/b, c.txt'", "2", "/elsewhere")]
    for i, (path, seed, cwd) in enumerate(jobs):
        loss_run(sweep, str(i), [f"data.path={path}", f"seed={seed}"], 2.0 + i / 10)
        (sweep / str(i) / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {cwd}\n")

    monkeypatch.setenv("COLUMNS", "150")  # each path on one line, whatever runs the tests
    report(sweep)

    with (sweep / "report.csv").open() as f:
        assert {row["run"]: row["data.path"] for row in csv.DictReader(f)} == {
            "0": "/home/me/a.txt", "1": "/home/me/my texts/b, c.txt",
            "2": "/home/me/a.txt", "3": "/home/me/my texts/b, c.txt"}
    with (sweep / "report_groups.csv").open() as f:
        assert [row["runs"] for row in csv.DictReader(f)] == ["2", "2"]
    out = capsys.readouterr().out
    assert "…/my texts/b, c.txt" in out and "…/ in data.path: /home/me/" in out


def test_paths_typed_from_one_folder_stay_as_typed(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for i, path in enumerate(["a.txt", "'my texts/b, c.txt'"]):
        loss_run(sweep, str(i), [f"data.path={path}"], 2.0)
        (sweep / str(i) / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    cwd: /home/me\n")
    report(sweep)
    with (sweep / "report.csv").open() as f:
        assert [row["data.path"] for row in csv.DictReader(f)] == ["a.txt", "my texts/b, c.txt"]


def test_runs_group_whatever_the_order_and_spelling_of_their_settings(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    loss_run(sweep, "a", ["model=tiny", "optimizer.lr=1e-3", "seed=1"], 2.0)
    loss_run(sweep, "b", ["optimizer.lr=0.001", "model=tiny", "seed=2"], 2.2)  # as a sweep records it
    loss_run(sweep, "c", ["optimizer.lr=3e-3", "model=tiny", "seed=1"], 1.5)
    assert [g["runs"] for g in groups_of(sweep)] == [1, 2]


def test_a_run_launched_without_a_seed_shows_the_seed_it_trained_with(tmp_path: Path) -> None:
    # `chargpt-train -m optimizer.lr=...` (no seed=): each run took the config's seed, which its saved
    # config records; the groups name it instead of "-".
    sweep = tmp_path / "sweep"
    loss_run(sweep, "0", ["optimizer.lr=1e-3"], 2.0)
    loss_run(sweep, "1", ["optimizer.lr=3e-3"], 1.5)
    (sweep / "0" / ".hydra" / "config.yaml").write_text("seed: 1337\noptimizer:\n  lr: 0.001\n")
    assert [g["seeds"] for g in groups_of(sweep)] == ["-", "1337"]  # run 1 saved no config


class _ClosedPipe:
    """stdout whose reader stopped (`chargpt-report SWEEP | head`): every write fails."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor")


def test_a_closed_output_pipe_stops_the_printing_not_the_files(tmp_path: Path, monkeypatch) -> None:
    import chargpt.cli.report as report_cli

    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [2.0, 2.2], "optimizer.lr=3e-3": [1.5, 1.6]})
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert run_cli(report_cli.main, str(sweep)) == 141  # quiet, as `yes | head` for `yes` (not rich's 1)
    assert sorted(p.name for p in sweep.glob("report*")) == ["report.csv", "report_groups.csv"]  # (no curves)


def test_the_run_table_shows_the_seed_the_settings_table_counts(tmp_path: Path, capsys, monkeypatch) -> None:
    # A run launched without `seed=` had a blank seed in the run table and report.csv, while the
    # settings' table named the seed its saved config records.
    monkeypatch.setenv("COLUMNS", "150")  # every column on screen, whatever runs the tests
    sweep = tmp_path / "sweep"
    loss_run(sweep, "0", ["optimizer.lr=1e-3"], 2.0)
    loss_run(sweep, "1", ["optimizer.lr=3e-3", "seed=2"], 1.5)
    (sweep / "0" / ".hydra" / "config.yaml").write_text("seed: 1337\noptimizer:\n  lr: 0.001\n")
    rows = report(sweep)
    assert [(r["run"], r["seed"]) for r in rows] == [("1", "2"), ("0", "1337")]
    with (sweep / "report.csv").open() as f:
        assert [(r["run"], r["seed"]) for r in csv.DictReader(f)] == [("1", "2"), ("0", "1337")]
    with (sweep / "report_groups.csv").open() as f:
        groups = [(g["optimizer.lr"], g["seeds"]) for g in csv.DictReader(f)]
    assert groups == [("3e-3", "2"), ("1e-3", "1337")]
    run_table = capsys.readouterr().out.split("settings: mean")[0]
    assert [line.split("│")[1:4] for line in run_table.splitlines() if line.startswith("│")] == [
        [" 1   ", " 3e-3         ", " 2    "], [" 0   ", " 1e-3         ", " 1337 "]]

    # No run gave a seed: the column is there all the same, and the runs share it.
    same = tmp_path / "same"
    for name, lr in (("0", "1e-3"), ("1", "3e-3")):
        loss_run(same, name, [f"optimizer.lr={lr}"], 2.0)
        (same / name / ".hydra" / "config.yaml").write_text("seed: 1337\n")
    assert [r["seed"] for r in report(same)] == ["1337", "1337"]
    assert "shared: seed=1337" in capsys.readouterr().out


def test_a_report_on_a_console_that_cannot_write_its_symbols_escapes_them(tmp_path: Path, monkeypatch):
    # An ASCII console (PYTHONIOENCODING=ascii, a C locale): the report's ± and the table's lines
    # ended the command in a UnicodeEncodeError traceback. They are written as escapes.
    import io
    import sys

    from chargpt.cli import report as report_cli

    sweep = sweep_of(tmp_path, {"optimizer.lr=1e-3": [1.5, 1.6], "optimizer.lr=3e-3": [1.4, 1.45]})
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    assert run_cli(report_cli.main, str(sweep)) == 0
    ascii_out.flush()
    written = ascii_out.buffer.getvalue().decode("ascii")
    assert "1.5500 \\xb1 0.0707" in written and "written:" in written
    assert ascii_out.errors == "strict"  # the console is left as it was found


def test_settings_are_compared_only_with_the_best_on_the_same_text(tmp_path: Path, capsys) -> None:
    # A sweep of two texts (`-m 'data.path=choice(input.txt, 笔记 🚀.txt)'`): the easier text's setting
    # was `best` and Tiny Shakespeare's were `apart` from it, though losses on two texts do not compare.
    sweep = tmp_path / "sweep"
    runs = [("input.txt", "optimizer.lr=1e-3", [2.0, 2.2]), ("input.txt", "optimizer.lr=3e-3", [1.5, 1.6]),
            ("笔记 🚀.txt", "optimizer.lr=1e-3", [0.5, 0.6])]
    for i, (text, lr, losses) in enumerate(runs):
        for seed, loss in enumerate(losses, start=1):
            name = f"{i}-{seed}"
            loss_run(sweep, name, [f"data.path={text}", lr, f"seed={seed}"], loss)
            (sweep / name / ".hydra" / "config.yaml").write_text(
                yaml.safe_dump({"seed": seed, "data": {"path": text, "train_fraction": 0.9, "batch_size": 12,
                                                       "seed": seed}}, allow_unicode=True), encoding="utf-8")

    report(sweep)

    out = capsys.readouterr().out
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        rows = {(r["data.path"], r["optimizer.lr"]): r for r in csv.DictReader(f)}
    assert [(key, rows[key]["vs_best"]) for key in rows] == [
        (("笔记 🚀.txt", "1e-3"), ""), (("input.txt", "3e-3"), "best"), (("input.txt", "1e-3"), "apart")]
    assert float(rows["input.txt", "1e-3"]["delta"]) == pytest.approx(0.55)
    assert rows["笔记 🚀.txt", "1e-3"]["delta"] == ""
    assert "vs_best: against the best setting trained on the same text" in out


def text_run(sweep: Path, name: str, text: str, overrides: list[str], loss: float) -> None:
    """A run of `overrides` whose saved config says it validated on the file `text`."""
    loss_run(sweep, name, overrides, loss)
    (sweep / name / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"seed": 1, "data": {"path": text, "train_fraction": 0.9}}, allow_unicode=True),
        encoding="utf-8")


def test_runs_are_ranked_within_each_text_not_across_texts(tmp_path: Path, capsys, monkeypatch) -> None:
    # `-m 'data.path=choice(input.txt,文本 🚀.txt)' optimizer.lr=1e-3,3e-3`: the runs' table ranked the
    # four by loss across both texts, alternating them, as if one ranking.
    sweep = tmp_path / "sweep"
    for i, (text, lr, loss) in enumerate([("input.txt", "1e-3", 3.0), ("input.txt", "3e-3", 1.0),
                                          ("文本 🚀.txt", "1e-3", 4.0), ("文本 🚀.txt", "3e-3", 2.0)]):
        text_run(sweep, str(i), text, [f"data.path={text}", f"optimizer.lr={lr}"], loss)

    monkeypatch.setenv("COLUMNS", "200")
    report(sweep)

    out = capsys.readouterr().out
    with (sweep / "report.csv").open(encoding="utf-8") as f:  # each text's runs together, best first
        assert [r["run"] for r in csv.DictReader(f)] == ["1", "0", "3", "2"]
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:  # the settings too
        assert [(r["data.path"], r["optimizer.lr"]) for r in csv.DictReader(f)] == [
            ("input.txt", "3e-3"), ("input.txt", "1e-3"), ("文本 🚀.txt", "3e-3"), ("文本 🚀.txt", "1e-3")]
    table = out.split("settings:")[0]
    rows = [line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│")]
    assert rows == ["1", "0", "3", "2"]
    assert len([line for line in table.splitlines() if line.startswith("├")]) == 1  # a line between texts
    assert "ranked within each text" in out


def test_a_setting_run_on_two_texts_is_two_settings_each_told_by_its_text(
        tmp_path: Path, capsys, monkeypatch) -> None:
    # Two sweeps reported together, `-m optimizer.lr=3e-3 seed=1,2` each, one from a config naming
    # another file (--config-name): their four runs were one setting, `1×2,2×2`, losses of two texts
    # averaged, and nothing on screen said which text a row was.
    sweep = tmp_path / "sweeps"
    for launch, text, losses in [("a", "input.txt", [3.0, 3.2]), ("b", "文本 🚀.txt", [2.0, 2.2])]:
        for seed, loss in enumerate(losses, start=1):
            text_run(sweep, f"{launch}/{seed}", text, ["optimizer.lr=3e-3", f"seed={seed}"], loss)

    monkeypatch.setenv("COLUMNS", "200")
    report(sweep)

    out = capsys.readouterr().out
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        rows = [(r["text"], r["seeds"], r["n"], r["best_val_loss_mean"]) for r in csv.DictReader(f)]
    assert [(text, seeds, n, float(mean)) for text, seeds, n, mean in rows] == [
        ("data.path=文本 🚀.txt", "1,2", "2", pytest.approx(2.1)),
        ("data.path=input.txt", "1,2", "2", pytest.approx(3.1))]
    groups_table = out.split("mean ± std over seeds")[1]
    assert "data.path=文本 🚀.txt" in groups_table and "data.path=input.txt" in groups_table
    with (sweep / "report.csv").open(encoding="utf-8") as f:  # each run's text beside its settings
        texts = [r["text"] for r in csv.DictReader(f)]
    assert texts == ["data.path=文本 🚀.txt"] * 2 + ["data.path=input.txt"] * 2
    curves = curve_runs([run_row(run, sweep) for run in find_runs(sweep)])  # two colours, each labelled
    assert {run.label.split(": ")[1].split(",")[0]: run.setting for run in curves} == {
        "data.path=input.txt": 0, "data.path=U+6587 U+672C U+1F680.txt": 1}



def test_a_number_every_run_shares_is_shown_as_typed(tmp_path: Path, monkeypatch, capsys) -> None:
    # Two sweeps of `-m optimizer.lr=3e-3 seed=...` reported together said `shared: optimizer.lr=0.003`,
    # as Hydra records each job's value, where the tables show a swept 3e-3 as typed.
    monkeypatch.setenv("COLUMNS", "120")
    for name, seeds in (("a", (1, 2)), ("b", (3,))):
        sweep = tmp_path / "two" / name
        for seed in seeds:
            loss_run(sweep, str(seed), ["optimizer.lr=0.003", f"seed={seed}", "+data.weight=1000000000.0"],
                     1.5 + seed / 10)
        typed = ["optimizer.lr=3e-3", ",".join(map(str, seeds)).join(["seed=", ""]), "+data.weight=1e9"]
        (sweep / "multirun.yaml").write_text(yaml.safe_dump(
            {"hydra": {"overrides": {"hydra": [], "task": typed}}}))
    report(tmp_path / "two")
    out = capsys.readouterr().out
    assert "shared: optimizer.lr=3e-3 +data.weight=1e9" in out
    assert "0.003" not in out and "1000000000" not in out
    with (tmp_path / "two" / "report.csv").open() as f:
        assert {row["optimizer.lr"] for row in csv.DictReader(f)} == {"3e-3"}


def test_a_text_named_relative_and_absolute_is_one_text(tmp_path: Path, capsys, monkeypatch) -> None:
    # `-m optimizer.lr=1e-3,3e-3 seed=1,2 data.path='corpus é.txt'`, stopped and continued with the
    # command it printed, which names the file absolute: the jobs of the second launch were ranked
    # apart from the first's, "a line between texts", each setting "the only setting on its text".
    launched_in = tmp_path / "my runs é 🚀"
    (launched_in / "corpus é.txt").parent.mkdir(parents=True)
    sweep = launched_in / "sweep"
    for i, (lr, seed, text) in enumerate([("1e-3", 1, "corpus é.txt"), ("1e-3", 2, "corpus é.txt"),
                                          ("3e-3", 1, str(launched_in / "corpus é.txt")),
                                          ("3e-3", 2, str(launched_in / "corpus é.txt"))]):
        loss_run(sweep, str(i), [f"optimizer.lr={lr}", f"seed={seed}", f"data.path={text}"], 3.0 - i / 10)
        (sweep / str(i) / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"seed": seed, "data": {"path": text, "train_fraction": 0.9}}, allow_unicode=True),
            encoding="utf-8")
        (sweep / str(i) / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"cwd": str(launched_in)}}}, allow_unicode=True),
            encoding="utf-8")

    monkeypatch.setenv("COLUMNS", "200")
    report(sweep)

    out = capsys.readouterr().out
    assert "ranked within each text" not in out
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        assert [(r["optimizer.lr"], r["vs_best"]) for r in csv.DictReader(f)] == [("3e-3", "best"),
                                                                                  ("1e-3", "apart")]


def test_runs_of_two_data_folders_are_two_texts(tmp_path: Path, capsys, monkeypatch) -> None:
    # Tiny Shakespeare's data.path is `${paths.data_dir}/tinyshakespeare/input.txt`: runs launched
    # with two CHARGPT_DATA_DIRs read two files, and were one setting, `1×2,2×2`, their losses averaged.
    sweep = tmp_path / "my runs é 🚀"
    for folder, losses in (("a", (3.0, 3.2)), ("b é", (2.0, 2.2))):
        for seed, loss in enumerate(losses, start=1):
            name = f"{folder}{seed}"
            loss_run(sweep, name, [f"seed={seed}"], loss)
            (sweep / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
                "seed": seed, "paths": {"data_dir": f"/data/{folder}"},
                "data": {"path": "${paths.data_dir}/tinyshakespeare/input.txt", "train_fraction": 0.9},
            }, allow_unicode=True), encoding="utf-8")

    monkeypatch.setenv("COLUMNS", "200")
    report(sweep)

    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        rows = [(r["text"], r["seeds"], float(r["best_val_loss_mean"])) for r in csv.DictReader(f)]
    assert rows == [("data.path=/data/b é/tinyshakespeare/input.txt", "1,2", pytest.approx(2.1)),
                    ("data.path=/data/a/tinyshakespeare/input.txt", "1,2", pytest.approx(3.1))]
    assert "ranked within each text" in capsys.readouterr().out


def test_a_text_named_through_the_environment_is_the_one_its_checkpoint_read(
        tmp_path: Path, monkeypatch) -> None:
    # `path: ${oc.env:CORPUS}` in a config of one's own: the report's environment is not the runs',
    # so the text is the one each run's checkpoint records it read.
    sweep = tmp_path / "sweep"
    for name, read in (("0", "/corpora/a é.txt"), ("1", "/corpora/文本 🚀.txt"), ("2", None)):
        loss_run(sweep, name, ["seed=1"], 2.0)
        (sweep / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
            {"seed": 1, "data": {"path": "${oc.env:CORPUS}", "train_fraction": 0.9}}), encoding="utf-8")
        if read is not None:
            (sweep / name / "checkpoints").mkdir()
            torch.save({"global_step": 300, "callbacks": {"ResumeState": {
                "rng": {"seed": 1}, "corpus": {"path": read, "sha256": "0" * 64}}}},
                sweep / name / "checkpoints" / "last.ckpt")
    monkeypatch.setenv("CORPUS", "/elsewhere/the report's.txt")
    assert [validation_text(sweep / name)[0] for name in "012"] == [
        "/corpora/a é.txt", "/corpora/文本 🚀.txt", "${oc.env:CORPUS}"]  # none recorded: as written


def test_one_number_typed_two_ways_is_said_to_be_one_setting(tmp_path: Path, monkeypatch, capsys) -> None:
    # `-m optimizer.lr=1e-3,0.001,3e-3`: Hydra runs 0.001 twice, and both rows read `1e-3` with
    # nothing saying why two runs of the rates typed looked alike.
    monkeypatch.setenv("COLUMNS", "120")
    sweep = tmp_path / "my runs é 🚀"
    for name, lr, loss in (("0", "0.001", 2.0), ("1", "0.001", 2.0), ("2", "0.003", 1.5)):
        loss_run(sweep, name, [f"optimizer.lr={lr}", "seed=1"], loss)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"hydra": [], "task": ["optimizer.lr=1e-3,0.001,3e-3", "seed=1"]}}}))
    report(sweep)
    out = capsys.readouterr().out
    runs_table = out.split("mean ± std over seeds")[0]
    said = "optimizer.lr=1e-3 and 0.001 are one number, typed 2 ways: runs 0, 1 show it as 1e-3, one setting"
    assert said in " ".join(runs_table.split())
    with (sweep / "report_groups.csv").open(encoding="utf-8") as f:
        groups = [(r["optimizer.lr"], r["seeds"]) for r in csv.DictReader(f)]
    assert groups == [("3e-3", "1"), ("1e-3", "1×2")]


def test_a_data_folder_recorded_through_the_environment_is_not_read_from_the_reports(
        tmp_path: Path, monkeypatch) -> None:
    # Runs before 2026-12-05 saved `data_dir: ${oc.env:CHARGPT_DATA_DIR,data}`: resolved in the
    # report's environment, their text would be its folder's, not theirs.
    run = tmp_path / "sweep" / "0"
    loss_run(run.parent, run.name, ["seed=1"], 2.0)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
        "seed": 1, "paths": {"data_dir": "${oc.env:CHARGPT_DATA_DIR,data}"},
        "data": {"path": "${paths.data_dir}/tinyshakespeare/input.txt", "train_fraction": 0.9}}))
    monkeypatch.setenv("CHARGPT_DATA_DIR", "/the report's/data")
    assert validation_text(run)[0] == "${paths.data_dir}/tinyshakespeare/input.txt"
