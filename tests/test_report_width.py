"""chargpt-report fits the terminal: the run, its status and every metric are always shown whole;
swept settings wrap or are left out first. A single run directory is named by its directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.cells import cell_len

from chargpt.overrides import hydra_quoted
from chargpt.runs.report import report
from chargpt.runs.run_rows import METRIC_COLUMNS
from fake_runs import fake_run


def wide_run(run: Path, overrides: list[str], best: float) -> None:
    """A finished run with wide figures, each different in every run (the same in all: said once)."""
    apart = round((best - 1.5) * 10)
    fake_run(run.parent, run.name, overrides, {
        "best_val_loss": best, "val_loss": best + 0.01, "step": 12000 + apart,
        "tokens_per_second": 123456.7 + apart, "train_seconds": 4321.5 + apart,
    }, {"status": "finished"})


@pytest.mark.parametrize("columns", [100, 120])
def test_the_table_fits_the_terminal_and_keeps_every_metric(columns, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    for i in range(4):
        wide_run(sweep / str(i), [
            f"optimizer.lr={i}e-3", f"model=tiny{i}", f"model.n_embd={64 * (i + 1)}",
            f"model.n_layer={i + 2}",
            f"model.dropout=0.{i}", f"data.batch_size={8 * (i + 1)}", f"scheduler.warmup_steps={100 * i}",
            f"data.path='corpus number {i}, long name.txt'",
        ], best=1.5 + i / 10)
    report(sweep)
    out = capsys.readouterr().out
    lines = out.splitlines()
    # The tables and their notes fit; the CSV paths printed after them are as long as they are.
    assert max(len(line) for line in lines if not line.startswith("written: ")) <= columns
    header = "\n".join(lines[:6])
    for column in ["run", "status", *METRIC_COLUMNS]:
        assert column in header
    for value in ["1.5000", "1.5100", "12000", "123,457", "4,321.5"]:
        assert value in out  # metric values whole, never cropped
    assert "optimizer.lr" in header  # the first swept setting still fits
    assert "not shown (see the CSV): " in out and "data.path" in out  # the settings left out are named


@pytest.mark.parametrize("columns", [60, 80])
def test_a_narrow_terminal_leaves_metrics_out_whole_and_keeps_the_ranking_one(
    columns, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    for i in range(4):
        wide_run(sweep / str(i), [f"optimizer.lr={i}e-3", f"seed={i % 2}", f"model.n_embd={64 * (i + 1)}"],
                 best=1.5 + i / 10)
    report(sweep)
    out = capsys.readouterr().out
    runs_table = out.split("settings: each ran once")[0]  # (each setting ran once: no table of them)
    assert max(len(line) for line in runs_table.splitlines()) <= columns
    header = next(line for line in runs_table.splitlines() if line.startswith("┃ run "))
    for column in ("status", "best_val_loss", "optimizer.lr"):  # the first setting stays
        assert column in header
    caption = " ".join(runs_table.split("not shown (see the CSV): ")[1].split())
    whole = {"last_val_loss": "1.5100", "steps": "12000", "tokens_per_sec": "123,457", "wall_s": "4,321.5"}
    for column, value in whole.items():  # each metric shown whole, or named as left out: never cropped
        assert (column in header and value in runs_table) != (column in caption), column
    assert "wall_s" in caption  # the least telling go first
    # A narrow setting left out before a wide metric went is shown again where it now fits.
    assert ("seed" in header) == (columns == 80) and ("seed" in caption) == (columns == 60)


def test_a_single_run_is_named_by_its_directory(tmp_path, capsys) -> None:
    run = tmp_path / "23-10-05"
    wide_run(run, ["data.path='a, b.txt'"], best=1.5)
    rows = report(run)
    assert rows[0]["run"] == "23-10-05"
    assert rows[0]["data.path"] == "a, b.txt"  # as typed, not as quoted for Hydra


def test_a_narrow_table_keeps_its_title_and_notes_on_whole_lines(tmp_path, monkeypatch, capsys) -> None:
    # A run stopped before its first validation: the settings table has three narrow columns
    # (seeds, n, vs_best), and rich would fold its title and footnote into a column of words.
    monkeypatch.setenv("COLUMNS", "120")
    for seed in (1, 2):  # two seeds: a setting's table (one run alone would only repeat the runs')
        run = tmp_path / "runs" / str(seed)
        wide_run(run, ["model=tiny", f"seed={seed}"], best=1.5)
        (run / "metrics.json").unlink()
        (run / "status.json").write_text(json.dumps({"status": "interrupted"}))
    report(tmp_path / "runs")
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "1 setting: mean ± std over seeds, sorted by best_val_loss" in lines
    assert "≈: best_val_loss not told apart from the best's (|Δ mean| < sum of stds, or n=1)" in lines
    assert "shared: model=tiny" in lines


def test_brackets_in_names_and_settings_are_printed_as_typed(tmp_path, monkeypatch, capsys) -> None:
    # rich reads "[bold]" as a style and "[/]" as a closing tag with nothing to close (an error).
    monkeypatch.setenv("COLUMNS", "150")
    wide_run(tmp_path / "runs" / "a[/]b", ["data.path='x[/]y [bold]z[/bold].txt'"], best=1.5)
    wide_run(tmp_path / "runs" / "[red]c", ["data.path=plain.txt"], best=1.6)
    report(tmp_path / "runs")
    out = capsys.readouterr().out
    assert "a[/]b" in out and "[red]c" in out and "x[/]y [bold]z[/bold].txt" in out


def test_a_title_of_wide_characters_is_measured_in_cells(tmp_path, monkeypatch, capsys) -> None:
    # Each of these characters takes two columns: counted as one, the title would be thought to
    # fit the table (~88 columns wide) and be folded into it.
    monkeypatch.setenv("COLUMNS", "150")
    monkeypatch.chdir(tmp_path)
    run = Path("日本語の実験フォルダ" * 4) / "run"  # 77 characters in the title, 117 columns
    wide_run(run, ["model=tiny"], best=1.5)
    report(run)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip() == f"{run} (1 run, sorted by best_val_loss)" for line in lines)


def test_a_searchs_long_draw_is_shown_short_and_kept_whole_in_the_csv(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    sweep = tmp_path / "sweep"
    draws = ["0.0004385317893614137", "0.0021887411239562893"]
    for i, lr in enumerate(draws):
        wide_run(sweep / str(i), [f"optimizer.lr={lr}", "seed=123456789012345678"], best=1.5 + i / 10)
    report(sweep)
    out = capsys.readouterr().out
    assert "│ 0.000438532 " in out and "│ 0.00218874 " in out  # one line each, not wrapped in two
    assert "123456789012345678" in out  # a long whole number is not rounded
    assert all(lr in (sweep / "report.csv").read_text() for lr in draws)


def test_a_figure_the_same_in_every_run_goes_first_and_is_said_once(tmp_path, monkeypatch, capsys) -> None:
    # An Optuna search at 80 columns left out three of its four settings and kept `steps`, the same
    # in every run (and so telling none apart).
    monkeypatch.setenv("COLUMNS", "110")
    sweep = tmp_path / "search"
    for i in range(3):
        wide_run(sweep / str(i), [f"optimizer.lr=0.00{i + 1}", f"model.n_embd={64 * (i + 1)}",
                                  f"model.n_layer={i + 2}"], best=1.5 + i / 10)
        metrics = json.loads((sweep / str(i) / "metrics.json").read_text())
        (sweep / str(i) / "metrics.json").write_text(json.dumps({**metrics, "step": 300}))
    report(sweep)
    runs_table = capsys.readouterr().out.split(" settings: mean ± std over seeds")[0]
    header = next(line for line in runs_table.splitlines() if line.startswith("┃ run "))
    assert "steps" not in header and "model.n_embd" in header
    assert "the same in every row: steps=300" in runs_table


@pytest.mark.parametrize("columns", [80, 100])
def test_a_settings_name_is_not_folded_while_a_column_can_go_instead(
    columns, tmp_path, monkeypatch, capsys
) -> None:
    # At 80 columns the settings' table folded `budget_seconds` into `budget_second` over `s`, a
    # column short of fitting, where the secondary figures could be left out instead.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    for i, budget in enumerate((20, 45, 100, 20)):  # 20 s twice: a setting's table, not the runs again
        wide_run(sweep / str(i), [f"budget_seconds={budget}", "model=auto"], best=1.5 + i / 10)
    report(sweep)
    lines = capsys.readouterr().out.splitlines()
    headers = [line for line in lines if line.startswith("┃")]
    assert len(headers) == 2  # one header line in each table: nothing folded
    assert all("budget_seconds" in line for line in headers)
    assert max(len(line) for line in lines if not line.startswith("written: ")) <= columns


@pytest.mark.parametrize("columns", [0, 20])
def test_a_terminal_too_narrow_for_a_table_gets_whole_lines(columns, tmp_path, monkeypatch, capsys) -> None:
    # COLUMNS=0 printed no table at all; 20 a run column of no width and no loss.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    for i in range(2):
        wide_run(sweep / str(i), [f"optimizer.lr={i + 1}e-3", f"seed={i}"], best=1.5 + i / 10)
    report(sweep)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("┃ run "))
    for column in ["run", "optimizer.lr", "status", *METRIC_COLUMNS]:
        assert f" {column} " in header
    assert "1.5000" in out and "1.6000" in out


def test_paths_in_one_folder_are_shown_from_there_and_the_folder_once(tmp_path, monkeypatch, capsys) -> None:
    # At 80 columns each run's data.path wrapped over seven lines, the first five of them the
    # folder every run shares, in both tables.
    monkeypatch.setenv("COLUMNS", "80")
    folder = "/home/me/corpora/Mes chansons d'été 🎵/"
    names = ["première partie — très longue 🎶.txt", "deuxième partie, plus longue 🎸.txt"]
    for i, name in enumerate([*names, names[0]]):  # the first run twice: a setting's table too
        wide_run(tmp_path / "runs" / str(i), [f"data.path={hydra_quoted(folder + name)}"], best=1.5 + i / 10)
    report(tmp_path / "runs")
    out = capsys.readouterr().out
    assert "/home/me" not in out.partition("└")[0]  # not in the first table's rows (its caption names it)
    body = [line for line in out.splitlines() if line.startswith("│ ")]
    assert sum("…/première" in line for line in body) == 3  # its two runs and their setting
    assert len(body) <= (3 + 2) * 3  # 3 lines or fewer a row, in each table
    assert "data.path: /home/me/corpora/Mes chansons d'été 🎵/" in " ".join(out.split())
    assert all(folder + name in (tmp_path / "runs" / "report.csv").read_text() for name in names)


def test_a_setting_that_names_no_file_keeps_its_slashes(tmp_path, monkeypatch, capsys) -> None:
    # Prompts that share `and/` were shown as `…/or the king`, the note calling `and/` a folder.
    monkeypatch.setenv("COLUMNS", "120")
    prompts = ["Tell me, and/or the king", "Tell me, and/or the queen"]
    for i, prompt in enumerate(prompts):
        wide_run(tmp_path / "runs" / str(i), [f"sample.prompt={hydra_quoted(prompt)}"], best=1.5 + i / 10)
    report(tmp_path / "runs")
    out = " ".join(capsys.readouterr().out.split())
    assert "…/" not in out
    assert all(prompt in out for prompt in prompts)


def test_each_note_under_a_table_starts_its_own_line(tmp_path, monkeypatch, capsys) -> None:
    # The notes ran together (`shared: ...; not shown (see the CSV): ...`) into one wrapped
    # paragraph, the columns left out named from the middle of a line.
    monkeypatch.setenv("COLUMNS", "80")
    for i in range(3):  # the first run twice: a table of settings under the runs'
        overrides = [f"optimizer.lr={i % 2 + 1}e-3", "model=tiny", f"seed={i % 2}", "trainer.max_steps=20000",
                     "data.batch_size=64"]
        wide_run(tmp_path / "sweep" / str(i), overrides, best=1.5 + i / 10)
    report(tmp_path / "sweep")
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines.count("not shown (see the CSV): tokens_per_sec, wall_s") == 1  # under the run table
    assert sum(line.startswith("shared: model=tiny ") for line in lines) == 1
    assert sum(line.startswith("≈: best_val_loss not told apart") for line in lines) == 1


@pytest.mark.parametrize("columns", [80, 200])
def test_a_failed_runs_error_is_shown_whole(columns, tmp_path, monkeypatch, capsys) -> None:
    # The error column was cut at 50 characters, before the part that names the fix, even at 200
    # columns; too narrow for the column, the error was only in the CSV.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    wide_run(sweep / "0", ["model.n_head=2"], best=1.5)
    error = ("model.n_embd=32 is not divisible by model.n_head=3; pick a width that is a multiple of the "
             "number of heads")
    for i in range(1, 9):  # more failed runs than are said under a narrow table
        wide_run(sweep / str(i), [f"model.n_head={i + 2}"], best=1.6)
        (sweep / str(i) / "metrics.json").unlink()
        failed = {"status": "failed", "error": error if i == 1 else f"boom {i}"}
        (sweep / str(i) / "status.json").write_text(json.dumps(failed))
    report(sweep)
    lines = capsys.readouterr().out.splitlines()
    assert error in " ".join(line.strip("│ ") for line in lines)  # wrapped, not cut
    assert max(len(line) for line in lines if not line.startswith(("written: ", "8 of 9"))) <= columns
    if columns == 80:
        out = "\n".join(lines)
        assert "\nrun 1 failed: model.n_embd=32" in out and "boom 5" in out and "boom 6" not in out
        assert "\n3 more runs failed (see the CSV)" in out


def test_runs_that_failed_alike_are_named_together_under_a_narrow_table(
    tmp_path, monkeypatch, capsys
) -> None:
    # Each failed run's error was said under the table, the same line for every job of a missing
    # file: five of them filled the lines said, and the other error was left to the CSV.
    monkeypatch.setenv("COLUMNS", "80")
    sweep = tmp_path / "sweep"
    wide_run(sweep / "0", ["model.n_head=2"], best=1.5)
    missing = "data file not found: /home/me/nope é.txt; pass an existing text file, directory or glob"
    for i in range(1, 8):
        wide_run(sweep / str(i), [f"model.n_head={i + 2}"], best=1.6)
        (sweep / str(i) / "metrics.json").unlink()
        error = "the validation loss is nan at step 5" if i == 4 else missing
        (sweep / str(i) / "status.json").write_text(json.dumps({"status": "failed", "error": error}))
    report(sweep)
    out = " ".join(capsys.readouterr().out.split())  # (wrapped at 80 columns)
    assert f"runs 1, 2, 3, 5, 6, 7 failed: {missing}" in out
    assert "run 4 failed: the validation loss is nan at step 5" in out
    assert out.count("failed: ") == 2 and "failed (see the CSV)" not in out


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_a_table_whose_settings_wrap_fits_whole_with_its_right_edge(
    columns, tmp_path, monkeypatch, capsys
) -> None:
    # A setting with a long name and short values (sample.max_new_tokens) beside wide ones that
    # wrap: rich narrowed all three alike, below the long name's width, which then took its room
    # back, so the settings' table came out wider than the terminal, its last column cut off.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    i = 0
    for prompt, tokens in (('Café, «naïve» 🎉 "hi"', 20), ("O, Romeo", 50)):
        for lr in ("1e-3", "3e-3"):
            for seed in (1, 2):
                wide_run(sweep / str(i), [f"sample.prompt={prompt}", f"sample.max_new_tokens={tokens}",
                                          f"data.path=/home/me/{prompt[:3]} long folder/input.txt",
                                          f"optimizer.lr={lr}", f"seed={seed}"], best=1.5 + i / 10)
                i += 1
    report(sweep)
    tables = [line for line in capsys.readouterr().out.splitlines() if line[:1] in "┏┃┡│└"]
    assert sum(line.startswith("┏") for line in tables) == 2  # the runs' table and the settings'
    for line in tables:
        assert cell_len(line) <= columns and line[-1] in "┓┃┩│┘", line


def test_a_seed_goes_before_a_swept_setting_that_tells_settings_apart(tmp_path, monkeypatch, capsys) -> None:
    # `-m seed=1,2 'optimizer.lr=1e-3,3e-3'` at 80 columns left out optimizer.lr and kept seed: runs
    # of two settings looked alike but for their seed, a replicate the settings' table groups over.
    monkeypatch.setenv("COLUMNS", "80")
    sweep = tmp_path / "sweep"
    for i, (seed, lr) in enumerate([(1, "1e-3"), (1, "3e-3"), (2, "1e-3"), (2, "3e-3")]):
        wide_run(sweep / str(i), [f"seed={seed}", f"optimizer.lr={lr}"], best=1.5 + i / 10)
    report(sweep)
    runs_table = capsys.readouterr().out.split(" settings: mean ± std over seeds")[0]
    header = next(line for line in runs_table.splitlines() if line.startswith("┃ run "))
    caption = " ".join(runs_table.split("not shown (see the CSV): ")[1].split())
    assert "optimizer.lr" in header and "optimizer.lr" not in caption
    # The seed was left out first; it is shown again only where a metric left room for it.
    assert ("seed" in header) != ("seed" in caption)


def _settings_shown(table: str, settings: list[str]) -> list[str]:
    """The settings in the runs' table's header; each row's cells under them, its lines joined."""
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("┃ run "))
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows: list[list[str]] = []
    for line in (line for line in lines if line.startswith("│")):
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if cells[0]:  # a row's first line: its run; the lines after it continue its cells
            rows.append(cells)
        else:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    shown = [names.index(s) for s in settings if s in names]
    return [" | ".join(row[i] for i in shown) for row in rows]


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_a_setting_that_tells_runs_apart_goes_after_the_measures(
    columns, tmp_path, monkeypatch, capsys
) -> None:
    # The README's `-m optimizer.lr=1e-3,3e-3 model=bigram,tiny` at 80 columns left out `model` and
    # kept tokens_per_sec: the runs `1e-3 tiny` and `1e-3 bigram` read alike.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    for i, (lr, model) in enumerate([(lr, m) for lr in ("1e-3", "3e-3") for m in ("bigram", "tiny")]):
        wide_run(sweep / str(i), [f"optimizer.lr={lr}", f"model={model}"], best=1.5 + i / 10)
    report(sweep)
    runs_table = capsys.readouterr().out.split("settings: each ran once")[0]
    assert max(cell_len(line) for line in runs_table.splitlines()) <= columns
    rows = _settings_shown(runs_table, ["optimizer.lr", "model"])
    assert sorted(rows) == ["1e-3 | bigram", "1e-3 | tiny", "3e-3 | bigram", "3e-3 | tiny"]


@pytest.mark.parametrize("columns", [80, 120])
def test_three_settings_of_long_values_each_telling_runs_apart_are_all_shown(
    columns, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "sweep"
    paths = ("/home/me/my corpora/Café crème.txt", "/home/me/my corpora/文本 🚀.txt")
    settings = [(p, lr, m) for p in paths for lr in ("1e-3", "3e-3") for m in ("bigram", "tiny")]
    for i, (path, lr, model) in enumerate(settings):
        wide_run(sweep / str(i), [f"data.path={hydra_quoted(path)}", f"optimizer.lr={lr}", f"model={model}"],
                 best=1.5 + i / 10)
    report(sweep)
    runs_table = capsys.readouterr().out.split("settings: each ran once")[0]
    assert max(cell_len(line) for line in runs_table.splitlines()) <= columns
    rows = _settings_shown(runs_table, ["data.path", "optimizer.lr", "model"])
    assert len(rows) == 8 and len(set(rows)) == 8, rows  # no two runs read alike
    assert "…/文本 🚀.txt | 3e-3 | tiny" in rows


@pytest.mark.parametrize(("columns", "shortened"), [
    (60, "path = data.path, lr = optimizer.lr"), (66, "lr = optimizer.lr"),  # data.path whole where it fits
])
def test_settings_telling_runs_apart_narrow_below_their_names_before_one_is_left_out(
    columns, shortened, tmp_path, monkeypatch, capsys
) -> None:
    # At 60 columns the three settings needed 73 cells at 12 each: optimizer.lr was left out, and
    # runs 0 and 2 (`…/Café crème.txt`, `bigram`) read alike.
    monkeypatch.setenv("COLUMNS", str(columns))
    sweep = tmp_path / "my runs é 🚀"
    paths = ("/home/me/my corpora/Café crème.txt", "/home/me/my corpora/文本 🚀.txt")
    settings = [(p, lr, m) for p in paths for lr in ("1e-3", "3e-3") for m in ("bigram", "tiny")]
    for i, (path, lr, model) in enumerate(settings):
        wide_run(sweep / str(i), [f"data.path={hydra_quoted(path)}", f"optimizer.lr={lr}", f"model={model}"],
                 best=1.5 + i / 10)
    report(sweep)
    runs_table = capsys.readouterr().out.split("settings: each ran once")[0]
    assert max(cell_len(line) for line in runs_table.splitlines()) <= columns
    caption = " ".join(runs_table.split("┘")[1].split())
    assert f"shortened: {shortened} not shown" in caption
    assert "not shown (see the CSV): last_val_loss" in caption  # no setting among them
    rows = _settings_shown(runs_table, ["path", "data.path", "lr", "model"])
    assert len(rows) == 8 and len(set(rows)) == 8, rows  # no two runs read alike
    assert "…/文本 🚀.txt | 3e-3 | tiny" in rows
