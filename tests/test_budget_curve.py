"""scripts/budget_curve.py: the grid's commands and its table, from made-up run records (no runs)."""

from __future__ import annotations

from pathlib import Path

from conftest import load_script


def test_commands_cover_the_grid_and_each_run_has_its_own_directory(tmp_path: Path, capsys) -> None:
    curve = load_script("budget_curve")
    curve.main(["--out", str(tmp_path), "--budgets", "30", "100", "--texts", "shakespeare",
                "--seeds", "1", "2", "--configs", "auto", "r0", "--dry-run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 * 2 * 2
    assert sum("model=auto budget_seconds=100" in line for line in lines) == 2
    assert all("optimizer=adamw" in line for line in lines if "model.block_size=64" in line)
    assert len({line.split("hydra.run.dir=")[1] for line in lines}) == len(lines)


def test_extra_overrides_reach_every_command_before_the_seed(tmp_path: Path, capsys) -> None:
    curve = load_script("budget_curve")
    curve.main(["--out", str(tmp_path), "--budgets", "30", "--texts", "shakespeare", "--seeds", "1",
                "--configs", "auto", "cpu_100s", "--extra", "model.zero_init_residual=false", "threads=1",
                "--dry-run"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all(" model.zero_init_residual=false threads=1 seed=1 " in line for line in lines)


def test_table_gives_mean_and_std_per_cell() -> None:
    curve = load_script("budget_curve")
    records = [
        {"budget": 30, "text": "shakespeare", "config": "auto", "seed": s, "val_loss": loss, "steps": 600,
         "wall_seconds": 29.5, "shape": "2x96 h3 ctx128 b8", "dropout": 0.0}
        for s, loss in ((1, 1.90), (2, 1.94))
    ] + [{"budget": 30, "text": "shakespeare", "config": "r0", "seed": 1, "val_loss": None, "steps": None,
          "wall_seconds": 31.0, "shape": None, "dropout": None}]
    rows = curve.summarise(records)
    assert [r["config"] for r in rows] == ["auto", "r0"]
    assert rows[0]["val_loss"] == "1.9200 ± 0.0283" and rows[0]["shapes"] == ["2x96 h3 ctx128 b8 d0"]
    assert rows[1]["failed"] == 1
    row = "| 30 | shakespeare | auto | 2 | 1.9200 ± 0.0283 | 600 | 29.5 / 29.5 | 2x96 h3 ctx128 b8 d0 |"
    assert row in curve.table(rows)
