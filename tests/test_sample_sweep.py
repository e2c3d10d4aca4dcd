"""chargpt-sample -m, chargpt-eval -m and chargpt-export -m: each job's output headed by the settings
the sweep gave it, nothing left where the command ran (Hydra's sweep folder is a temporary one),
however the sweep ends; chargpt-eval's sweep ends in a table comparing its jobs; chargpt-export's jobs
each write their own folder."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from chargpt.cli import eval as eval_cli
from chargpt.cli import export as export_cli
from chargpt.cli import sample as sample_cli
from chargpt.cli.held_output import held_outputs, print_held_output
from conftest import make_checkpoint, run_main


@pytest.fixture
def in_empty_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The current folder and the temporary one, both empty: whatever a command leaves shows."""
    here, scratch = tmp_path / "here", tmp_path / "scratch"
    here.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    return here, scratch


def _left(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*")]


def test_a_sampling_sweep_heads_each_job_and_leaves_no_folder(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "my models, é"
    folder.mkdir()
    ckpt = make_checkpoint(folder / "model.ckpt", chars="\n ,'\"abcdeé😀")
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "prompt='é, \"b😀",
                                                "max_new_tokens=3", "temperature=0,1"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [lines[0], lines[2]] == ["==> temperature=0 <==", "==> temperature=1 <=="]
    assert all(len(line) == 10 and line.startswith("'é, \"b😀") for line in (lines[1], lines[3])), out
    assert _left(*in_empty_folders) == []


def test_a_sampling_sweep_leaves_the_processs_loggers_on(in_empty_folders, tmp_path: Path, capsys) -> None:
    # A sweep configures Hydra's own logging, `disabled` for sampling, which switched off every logger
    # the process already had: a script or notebook that sampled with -m, then trained, heard nothing
    # more from chargpt (its warnings included).
    logger = logging.getLogger("chargpt.a_module_imported_before")
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "temperature=0,1"]
    code, _, err = run_main(sample_cli.main, argv, capsys)
    assert code == 0, err
    assert not logger.disabled


def test_a_sweep_job_refused_stops_the_sweep_under_its_heading_and_leaves_no_folder(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Weights that do not match their model's settings are found only as a job builds its model.
    good = make_checkpoint(tmp_path / "model.ckpt")
    bad = tmp_path / "bad, é.ckpt"
    ckpt = torch.load(good, weights_only=True)
    ckpt["hyper_parameters"]["model"]["n_embd"] = 64
    torch.save(ckpt, bad)
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path=choice({good}, '{bad}')",
                                                "max_new_tokens=3"], capsys)
    assert code == 2
    headings = [line for line in out.splitlines() if line.startswith("==> ")]
    assert headings == [f"==> ckpt_path={good} <==", f"==> ckpt_path={bad} <=="], out
    assert f"error: the weights in {bad} do not match" in err, err
    assert _left(*in_empty_folders) == []


@pytest.mark.parametrize("given", ["prompt=Zoë 🚀,ok", "prompt_file=../my prompt, é.txt"])
def test_a_sampling_sweeps_prompt_outside_the_vocabulary_is_refused_before_its_first_job(
    in_empty_folders, tmp_path: Path, capsys, given: str
) -> None:
    # Refused by the first job, once its heading was printed: the vocabulary is the checkpoint's.
    (tmp_path / "my prompt, é.txt").write_text("Zoë 🚀", encoding="utf-8")
    (tmp_path / "my runs" / "r 1 é" / "checkpoints").mkdir(parents=True)
    make_checkpoint(tmp_path / "my runs" / "r 1 é" / "checkpoints" / "last.ckpt")
    args = ["-m", f"ckpt_path='{tmp_path / 'my runs' / 'r 1 é'}'", given, "seed=1,2", "max_new_tokens=3"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    setting, comma = ("prompt", "',', ") if given.startswith("prompt=") else (given, "")  # (one prompt)
    assert err.splitlines() == [f"error: {setting} has characters not in the model's vocabulary: {comma}'Z', "
                                "'o', 'ë', '🚀'; remove them from it, or use a model trained on text that "
                                "has them"]
    assert _left(*in_empty_folders) == []


def test_a_sweep_of_checkpoints_and_prompts_checks_each_prompt_with_each_checkpoint(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Of the four jobs, only the last (model b, prompt é) is refused: b's vocabulary has no é.
    a, b = make_checkpoint(tmp_path / "a.ckpt", chars="\n abcé"), make_checkpoint(tmp_path / "b.ckpt")
    args = ["-m", f"ckpt_path=choice({a},{b})", "prompt=choice(ab, é)", "max_new_tokens=3"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    assert err.splitlines() == [f"error: ckpt_path={b}: prompt=é has characters not in the model's "
                                "vocabulary: 'é'; remove them from it, or use a model trained on text that "
                                "has them"]
    # Of several prompts, the one refused is named: the line said `prompt has characters ...`.
    args = ["-m", f"ckpt_path={b}", "prompt=choice(ab, 'Zoë, 🚀', bad)", "max_new_tokens=3"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    assert err.splitlines() == ["error: prompt=Zoë, 🚀 has characters not in the model's vocabulary: "
                                "',', 'Z', 'o', 'ë', '🚀'; remove them from it, or use a model trained on "
                                "text that has them"]


@pytest.mark.parametrize("swept", ["temperature=0.5,-1", "ckpt_path=choice(RUN, 'my runs/nope, é')"])
def test_a_sampling_sweeps_bad_value_or_missing_checkpoint_is_refused_before_its_first_job(
    in_empty_folders, tmp_path: Path, capsys, swept: str
) -> None:
    # Job 0 sampled (or said its checkpoint was not found), and job 1 said the value was bad.
    (tmp_path / "my runs" / "r 1 é").mkdir(parents=True)
    ckpt = make_checkpoint(tmp_path / "my runs" / "r 1 é" / "model.ckpt")
    swept = swept.replace("RUN", f"'{ckpt}'")
    fixed = [] if swept.startswith("ckpt_path") else [f"ckpt_path='{ckpt}'"]
    args = ["-m", *fixed, swept, "max_new_tokens=3"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1
    assert err.startswith("error: temperature=-1 " if "temperature" in swept else
                          "error: checkpoint not found: my runs/nope, é;"), err
    assert _left(*in_empty_folders) == []


def test_an_evaluation_sweeps_bad_value_is_refused_before_its_first_job(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    code, out, err = _evaluate(tmp_path, capsys, "-m", "batch_size=8,0")
    assert (code, out) == (2, ""), err
    assert err.splitlines() == ["error: batch_size=0 must be a whole number >= 1"]
    assert _left(*in_empty_folders) == []


def test_a_sampling_sweep_of_prompts_takes_each_as_typed(in_empty_folders, tmp_path: Path, capsys) -> None:
    # prompt=choice(...) was one prompt, the text "choice(...)": refused for its brackets, or sampled.
    ckpt = make_checkpoint(tmp_path / "model.ckpt", chars="\n abcdeéirstu',${}")
    prompts = ["it's a", "a, b", "true", "${e}", "é"]
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "max_new_tokens=0",
                                                "prompt=choice(it's a, 'a, b', true, ${e},é)"], capsys)
    assert code == 0, err
    assert out.splitlines()[1::2] == prompts
    assert out.splitlines()[0::2] == [f"==> prompt={prompt} <==" for prompt in prompts]
    # Without -m, and a bare list, a prompt is text as typed.
    args = [f"ckpt_path={ckpt}", "max_new_tokens=0", "prompt=a,b"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (0, "a,b\n"), err
    assert _left(*in_empty_folders) == []


def test_a_swept_prompt_with_a_doubled_quote_is_refused_naming_the_escape_hydra_reads(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # `-m "prompt=choice(x, 'it''s')"` sampled the prompt it''s, doubled quote and all: Hydra does
    # not read a doubled quote as one quote (it refuses 'it''s'), but its backslash, 'it\'s'.
    ckpt = make_checkpoint(tmp_path / "model.ckpt", chars="\n itsx'\"")
    for typed in ("'it''s'", '"it""s"'):
        args = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=0", f"prompt=choice(x, {typed})"]
        code, out, err = run_main(sample_cli.main, args, capsys)
        assert (code, out) == (2, ""), err
        quote, other = typed[0], "'\"".replace(typed[0], "")
        assert err.splitlines() == [
            f"error: prompt=choice(x, {typed}): {typed} doubles its quote, which Hydra does not read as one "
            f"quote; write the quote with a backslash, {quote}it\\{quote}s{quote}, or the text in the other "
            f"quotes, {other}it{quote}s{other}"]
    fixes = "'it\\'s', \"it's\", \"it\\\"s\", 'it\"s'"  # (what the two refusals say)
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "max_new_tokens=0",
                                                f"prompt=choice(x, {fixes})"], capsys)
    assert code == 0, err
    assert out.splitlines()[1::2] == ["x", "it's", "it's", 'it"s', 'it"s']
    assert _left(*in_empty_folders) == []


def test_a_swept_prompt_with_a_line_break_is_named_on_one_line(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # `-m $'prompt=choice(a\nb, c)'`: its job's heading, and the refusal of such a prompt, were split
    # over two lines at the prompt's line break. Written as bash reads it back, $'a\nb', on one line.
    ckpt = make_checkpoint(tmp_path / "model.ckpt", chars="\n abc\t")
    args = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=0", "prompt=choice(a\nb, 'c\td', c)"]
    code, out, err = run_main(sample_cli.main, [*args[:3], "prompt=choice(a\nb, c)"], capsys)
    assert code == 0, err
    assert out.splitlines() == ["==> prompt=$'a\\nb' <==", "a", "b", "==> prompt=c <==", "c"]
    code, out, err = run_main(sample_cli.main, args, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: prompt=$'c\\td' has characters not in the model's vocabulary: 'd'; "
                                "remove them from it, or use a model trained on text that has them"]


def test_a_sweep_folder_given_is_kept(in_empty_folders, tmp_path: Path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    sweep = tmp_path / "kept"
    code, _, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "seed=1,2",
                                              f"hydra.sweep.dir={sweep}"], capsys)
    assert code == 0, err
    assert (sweep / "multirun.yaml").is_file()


def test_an_evaluation_sweep_heads_each_job_and_ends_in_a_table(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    code, out, err = _evaluate(tmp_path, capsys, "-m", "stride=16,3")
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]  # stdout: one JSON line a job
    assert [r["stride"] for r in results] == [16, 3]
    lines = err.splitlines()
    assert "==> stride=16 <==" in lines and "==> stride=3 <==" in lines
    table = lines[-4:]
    assert table[0].split() == ["settings", "loss", "bpc", "tokens", "step"]
    best = min(results, key=lambda r: r["loss"])["stride"]
    rows = {row.split()[0]: row for row in table[1:3]}
    assert rows[f"stride={best}"].split()[1] == "*" and table[-1] == "* lowest loss"
    assert f"{results[0]['loss']:.5f}" in rows["stride=16"]
    assert _left(*in_empty_folders) == []


def test_an_evaluation_sweeps_table_lines_up_names_of_wide_characters(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # A path with an emoji or CJK letters, each two columns wide on a terminal, was padded by its
    # characters: its row's figures stood to the right of the others'.
    from rich.cells import cell_len

    text = _eval_text(tmp_path)
    plain, wide = make_checkpoint(tmp_path / "a.ckpt"), make_checkpoint(tmp_path / "模型 🚀.ckpt")
    args = ["-m", f"ckpt_path=choice({plain}, '{wide}')", f"data.path={text}"]
    code, _, err = run_main(eval_cli.main, args, capsys)
    assert code == 0, err
    table = err.splitlines()[-4:-1]
    assert table[2].startswith(f"ckpt_path={wide} "), table
    # Each line ends with the right-aligned step column: as wide on a terminal as the others.
    assert len({cell_len(line) for line in table}) == 1, table


def test_an_evaluation_sweep_marks_no_lowest_loss_between_different_texts(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Each job scored another text (another file, another split), whose losses do not compare: the
    # table marked the lowest of them "* lowest loss" all the same, as if it were the better model.
    ckpt, first = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path)
    (tmp_path / "mes notes é 🎉").mkdir()
    second = tmp_path / "mes notes é 🎉" / "notes, été.txt"
    second.write_text("abc\n" * 60, encoding="utf-8")  # another text: easier, a lower loss
    args = ["-m", f"ckpt_path={ckpt}", f"data.path=choice({first}, '{second}')"]
    code, out, err = run_main(eval_cli.main, args, capsys)
    assert code == 0, err
    assert [json.loads(line)["data"] for line in out.splitlines()] == [str(first), str(second)]
    table = err.splitlines()[-4:]
    assert table[0].split() == ["settings", "loss", "bpc", "tokens", "step", "text"]
    assert "*" not in "".join(table[1:3]), table
    assert table[1].endswith(f"val of {first}") and table[2].endswith(f"val of {second}"), table
    assert table[-1] == ("no lowest loss marked: each job scored another text (the text column), "
                         "and losses on different texts do not compare")

    # The same text's two splits are two texts too; its strides, one text.
    code, out, err = run_main(eval_cli.main, ["-m", f"ckpt_path={ckpt}", f"data.path={first}",
                                              "split=val,train", "stride=16,3"], capsys)
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    table = err.splitlines()[-6:]
    assert table[0].split()[-1] == "text"
    assert table[-1] == "* lowest loss of the jobs that scored the same text"
    marked = [row.split()[:2] for row in table[1:5] if row.split()[2] == "*"]
    lowest = [[f"split={split}", f"stride={min(jobs, key=lambda r: r['loss'])['stride']}"]
              for split in ("val", "train") for jobs in [[r for r in results if r["split"] == split]]]
    assert marked == lowest, table
    assert _left(*in_empty_folders) == []


@pytest.mark.parametrize("strides", ["16,0", "16,-1", "16,1.5", "16,17"])
def test_an_evaluation_sweep_refuses_a_bad_stride_before_its_first_job(
    in_empty_folders, tmp_path: Path, capsys, strides: str
) -> None:
    # The stride was checked once a job had read its checkpoint: `-m stride=16,0` scored the whole
    # split at stride=16 first (a minute on Tiny Shakespeare), then refused stride=0 under its heading.
    code, out, err = _evaluate(tmp_path, capsys, "-m", f"stride={strides}")
    bad = strides.split(",")[1]
    assert (code, out) == (2, ""), err
    assert err.splitlines() == [f"error: stride={bad} must be a whole number from 1 to the model's context "
                                "length 16: e.g. stride=8 gives every character after the first 16 at least "
                                "9 characters before it; leave stride unset for non-overlapping windows"]
    assert _left(*in_empty_folders) == []


def test_checkpoints_listed_with_commas_are_refused_with_the_sweep_to_paste(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # `-m ckpt_path=A,B`, as `stride=64,32` is typed, said only "checkpoint not found: A,B; pass an
    # existing .ckpt file or run directory": not that a path's commas are its own, nor how to sweep.
    text = _eval_text(tmp_path)
    (tmp_path / "ré sults 🎉").mkdir()
    first, second = make_checkpoint(tmp_path / "a.ckpt"), make_checkpoint(tmp_path / "ré sults 🎉" / "b.ckpt")
    args = ["-m", f"ckpt_path={first},{second}", f"data.path={text}"]
    code, out, err = run_main(eval_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    [line] = err.splitlines()
    assert line.startswith(f"error: checkpoint not found: {first},{second}; a path's commas are part of it, "
                           "not a list: give one checkpoint, or, to sample, evaluate or export each, "
                           "sweep over them: -m "), line
    [pasted] = shlex.split(line.split(" -m ", 1)[1])  # as a shell reads it
    code, out, err = run_main(eval_cli.main, ["-m", pasted, f"data.path={text}"], capsys)
    assert [json.loads(row)["checkpoint"] for row in out.splitlines()] == [str(first), str(second)], err


def test_checkpoints_with_commas_of_their_own_listed_with_commas_get_the_sweep_to_paste(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Folders named by their settings (hydra.sweep.subdir=${hydra.job.override_dirname}) hold commas:
    # listing two such checkpoints got only "pass an existing .ckpt file or run directory".
    text = _eval_text(tmp_path)
    folders = [tmp_path / f"seed={seed},lr=0.1 é" for seed in (1, 2)]
    for folder in folders:
        folder.mkdir()
    first, second = (make_checkpoint(folder / "last.ckpt") for folder in folders)
    args = ["-m", f"ckpt_path={first},{second}", f"data.path={text}"]
    code, out, err = run_main(eval_cli.main, args, capsys)
    assert (code, out) == (2, ""), err
    [line] = err.splitlines()
    assert " sweep over them: -m " in line, line
    [pasted] = shlex.split(line.split(" -m ", 1)[1])
    code, out, err = run_main(eval_cli.main, ["-m", pasted, f"data.path={text}"], capsys)
    assert [json.loads(row)["checkpoint"] for row in out.splitlines()] == [str(first), str(second)], err


def test_checkpoints_listed_with_commas_to_export_are_told_the_export_sweep(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # chargpt-export sweeps checkpoints (its --help: ckpt_path=choice(A,B)), but its refusal of
    # `ckpt_path=A,B` offered the sweep only "to sample or evaluate each".
    (tmp_path / "ré sults 🎉").mkdir()
    first, second = make_checkpoint(tmp_path / "a.ckpt"), make_checkpoint(tmp_path / "ré sults 🎉" / "b.ckpt")
    out = tmp_path / "exports é"
    code, printed, err = run_main(export_cli.main, [f"ckpt_path={first},{second}", f"out={out}"], capsys)
    assert (code, printed) == (2, ""), err
    [line] = err.splitlines()
    assert "to sample, evaluate or export each, sweep over them: -m " in line, line
    assert not out.exists()
    [pasted] = shlex.split(line.split(" -m ", 1)[1])  # as a shell reads it
    code, _, err = run_main(export_cli.main, ["-m", pasted, f"out={out}"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["0", "1"]


def test_an_evaluation_sweeps_checkpoints_named_with_spaces_commas_and_accents(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # ckpt_path=choice(...) was taken as one path named "choice(...)": checkpoint not found.
    text = _eval_text(tmp_path)
    first = make_checkpoint(tmp_path / "a.ckpt")
    (tmp_path / "ré sults, b").mkdir()
    second = make_checkpoint(tmp_path / "ré sults, b" / "model.ckpt")
    code, out, err = run_main(eval_cli.main, ["-m", f"ckpt_path=choice({first}, '{second}')",
                                              f"data.path={text}"], capsys)
    assert code == 0, err
    assert [json.loads(line)["checkpoint"] for line in out.splitlines()] == [str(first), str(second)]
    assert f"==> ckpt_path={second} <==" in err.splitlines()
    assert _left(*in_empty_folders) == []


def test_a_sweep_stopped_by_ctrl_c_leaves_no_folder(
    in_empty_folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    ckpt = make_checkpoint(tmp_path / "model.ckpt")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_cli, "new_generator", interrupted)
    args = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=3", "seed=1,2"]
    code, out, _ = run_main(sample_cli.main, args, capsys)
    assert code == 130
    assert out.splitlines() == ["==> seed=1 <=="]
    assert _left(*in_empty_folders) == []


def test_an_evaluation_after_a_failed_sweep_prints_no_table_of_that_sweep(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    ckpt, text = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path)
    args = [f"ckpt_path={ckpt}", f"data.path={text}"]
    code, _, err = run_main(eval_cli.main, ["-m", *args, "split=val,train,nope"], capsys)
    assert code == 2 and "lowest loss" not in err
    code, _, err = run_main(eval_cli.main, args, capsys)
    assert code == 0 and "lowest loss" not in err, err


def test_an_export_sweep_writes_each_job_in_its_own_folder_and_overwrites_none(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # One out for every job: the second job refused (the first's export there), or with overwrite=true
    # replaced it; and Hydra's multirun/DATE/TIME/ folder was left where the command ran.
    first = make_checkpoint(tmp_path / "a.ckpt")
    (tmp_path / "ré sults, b").mkdir()
    second = make_checkpoint(tmp_path / "ré sults, b" / "model.ckpt")
    out = tmp_path / "my exports"
    args = ["-m", f"ckpt_path=choice({first}, '{second}')", f"out={out}"]
    code, printed, err = run_main(export_cli.main, args, capsys)
    assert code == 0, err
    assert printed.splitlines()[0] == f"==> ckpt_path={first} <=="
    assert f"==> ckpt_path={second} <==" in printed.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["0", "1"]
    weights = {job: (out / job / "model.safetensors").read_bytes() for job in ("0", "1")}
    assert weights["0"] != weights["1"]
    assert _left(*in_empty_folders) == []
    # Again: each job's folder holds an export, which only overwrite=true replaces.
    code, _, err = run_main(export_cli.main, args, capsys)
    assert code == 2 and err.splitlines()[-1].startswith(f"error: out={out / '0'} already holds an export")
    assert {job: (out / job / "model.safetensors").read_bytes() for job in ("0", "1")} == weights
    assert _left(*in_empty_folders) == []


@pytest.mark.slow  # a parallel launcher's workers start and import torch
def test_a_parallel_sweep_prints_each_job_whole_and_an_evaluation_sweep_its_table(
    in_empty_folders, tmp_path: Path
) -> None:
    # The jobs' samples interleaved character by character, each headed by all its settings, and
    # chargpt-eval printed no table: the jobs ran in other processes.
    ckpt, text = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path)
    parallel = ["hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2"]
    env = {**os.environ, "TMPDIR": str(in_empty_folders[1])}

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", f"chargpt.cli.{command}", "-m", f"ckpt_path={ckpt}", *args, *parallel]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)

    sampled = run("sample", "prompt=abc", "max_new_tokens=200", "temperature=0,1")
    assert sampled.returncode == 0, sampled.stderr
    _, *parts = re.split(r"^==> (.*) <==\n", sampled.stdout, flags=re.MULTILINE)
    assert sorted(parts[0::2]) == ["temperature=0", "temperature=1"], sampled.stdout
    # Each sample whole under its heading: the prompt, 200 characters (newlines among them), a newline.
    assert [(len(sample), sample[:3]) for sample in parts[1::2]] == [(204, "abc")] * 2, sampled.stdout
    evaluated = run("eval", f"data.path={text}", "split=val,train")
    assert evaluated.returncode == 0, evaluated.stderr
    results = [json.loads(line) for line in evaluated.stdout.splitlines()]
    rows = {line.split()[0]: line for line in evaluated.stderr.splitlines() if line.startswith("split=")}
    assert list(rows) == ["split=val", "split=train"]  # the jobs' order
    assert all(f"{r['loss']:.5f}" in rows[f"split={r['split']}"] for r in results)
    assert _left(*in_empty_folders) == []


@pytest.mark.slow  # a parallel launcher's workers start and import torch
def test_a_parallel_sweep_to_one_place_keeps_each_heading_above_its_output_and_no_lock_file(
    in_empty_folders, tmp_path: Path
) -> None:
    # With `2>&1` each job's heading (stderr) came below its JSON line (stdout), reading as the next
    # job's; a sweep folder given on the command line kept an empty `.output.lock`.
    ckpt, text, sweep = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path), tmp_path / "sw"
    argv = [sys.executable, "-m", "chargpt.cli.eval", "-m", f"ckpt_path={ckpt}", f"data.path={text}",
            "split=val,train", f"hydra.sweep.dir={sweep}", "hydra/launcher=local_parallel"]
    env = {**os.environ, "TMPDIR": str(in_empty_folders[1])}
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    jobs = [(line, json.loads(lines[i + 1])["split"]) for i, line in enumerate(lines)
            if line.startswith("==>")]
    assert sorted(jobs) == [("==> split=train <==", "train"), ("==> split=val <==", "val")], done.stdout
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]


@pytest.mark.slow  # submitit's jobs start and import torch
def test_a_submitit_sweep_prints_each_job_under_its_heading_in_order_and_an_evaluation_sweep_its_table(
    in_empty_folders, tmp_path: Path
) -> None:
    # The jobs' output went to submitit's log files in the sweep's folder, removed as the sweep
    # ended: a sweep printed nothing and exited 0.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    ckpt, text = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path)
    env = {**os.environ, "TMPDIR": str(in_empty_folders[1])}

    def run(command: str, *args: str, **streams: Any) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", f"chargpt.cli.{command}", "-m", "hydra/launcher=submitit_local",
                f"ckpt_path={ckpt}", *args]
        return subprocess.run(argv, text=True, env=env, timeout=300, **streams)

    sampled = run("sample", "prompt=abc", "max_new_tokens=20", "temperature=0,1", capture_output=True)
    assert sampled.returncode == 0, sampled.stderr
    _, *parts = re.split(r"^==> (.*) <==\n", sampled.stdout, flags=re.MULTILINE)
    assert parts[0::2] == ["temperature=0", "temperature=1"], sampled.stdout  # the jobs' order
    assert [(len(sample), sample[:3]) for sample in parts[1::2]] == [(24, "abc")] * 2, sampled.stdout
    assert sampled.stderr.count("sampling from ") == 2, sampled.stderr
    # To one place (a terminal, `2>&1`): each heading (stderr) above its job's JSON line (stdout).
    evaluated = run("eval", f"data.path={text}", "split=val,train", stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
    assert evaluated.returncode == 0, evaluated.stdout
    lines = evaluated.stdout.splitlines()
    jobs = [(line, json.loads(lines[i + 1])["split"]) for i, line in enumerate(lines)
            if line.startswith("==>")]
    assert jobs == [("==> split=val <==", "val"), ("==> split=train <==", "train")], evaluated.stdout
    rows = [line.split()[0] for line in lines if line.startswith("split=")]
    assert rows == ["split=val", "split=train"], evaluated.stdout
    assert lines[-1].startswith("no lowest loss marked"), evaluated.stdout  # two texts: not compared
    assert _left(*in_empty_folders) == []


@pytest.mark.slow  # submitit's jobs start and import torch
def test_a_submitit_sweep_job_refused_ends_the_sweep_with_its_error_line_and_exit_2(
    in_empty_folders, tmp_path: Path
) -> None:
    # The job's exit handed submitit no result: the sweep ended in its traceback, with exit code 1.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    # Weights that do not match their model's settings are found only as a job builds its model.
    good = make_checkpoint(tmp_path / "model.ckpt")
    bad = tmp_path / "bad, é.ckpt"
    ckpt = torch.load(good, weights_only=True)
    ckpt["hyper_parameters"]["model"]["n_embd"] = 64
    torch.save(ckpt, bad)
    argv = [sys.executable, "-m", "chargpt.cli.sample", "-m", "hydra/launcher=submitit_local",
            f"ckpt_path=choice('{bad}', {good})", "max_new_tokens=3"]
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(in_empty_folders[1])})
    assert done.returncode == 2, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == f"==> ckpt_path={bad} <==", done.stdout
    assert lines[1].startswith(f"error: the weights in {bad} do not match"), done.stdout
    assert "Traceback" not in done.stdout and lines[2] == f"==> ckpt_path={good} <==", done.stdout
    assert _left(*in_empty_folders) == []


@pytest.mark.slow  # a parallel launcher's workers start and import torch
def test_parallel_jobs_ended_with_their_sweep_keep_what_they_wrote(in_empty_folders, tmp_path: Path) -> None:
    # A `kill` of the sweep's process (as a job that fails, or Ctrl-C) ends the jobs beside it (joblib
    # kills their workers): what they held was lost, where it had streamed out before jobs were held.
    ckpt, sweep = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "sw"
    argv = [sys.executable, "-m", "chargpt.cli.sample", "-m", f"ckpt_path={ckpt}", "prompt=abc",
            "temperature=0,1", "max_new_tokens=100000000", f"hydra.sweep.dir={sweep}",
            "hydra/launcher=local_parallel"]
    env = {**os.environ, "TMPDIR": str(in_empty_folders[1])}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as sweeping:
        held = [sweep / ".job-0.out", sweep / ".job-1.out"]
        for _ in range(1200):  # until both jobs are sampling (at most 2 minutes)
            if all(path.is_file() and b"abc" in path.read_bytes() for path in held):
                break
            time.sleep(0.1)
        sweeping.terminate()
        out, err = sweeping.communicate(timeout=120)
    assert sweeping.returncode == 143, err
    _, *parts = re.split(r"^==> (.*) <==\n", out, flags=re.MULTILINE)
    assert sorted(parts[0::2]) == ["temperature=0", "temperature=1"], out
    assert all(sample.startswith("abc") for sample in parts[1::2]), out
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]


def test_a_job_that_crashes_while_its_output_is_held_leaves_it_to_the_sweep(tmp_path: Path, capfd) -> None:
    # A job that died in the held block (a segfault, os._exit, the out-of-memory killer) lost its
    # output with it, a crash's report included. What it left ends its line: the next heading starts one.
    script = ("import os, sys; from pathlib import Path\n"
              "from chargpt.cli.held_output import output_held_whole\n"
              "with output_held_whole(Path(sys.argv[1]), 3):\n"
              "    print('==> prompt=abc <==', flush=True)\n"
              "    print('cut sho', end='', file=sys.stderr, flush=True)\n"
              "    os._exit(139)")
    argv = [sys.executable, "-c", script, str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (139, "", "")
    print_held_output(tmp_path)
    assert capfd.readouterr() == ("==> prompt=abc <==\n", "cut sho\n")  # its line ended
    assert list(tmp_path.iterdir()) == []


class BrokenProcessPool(RuntimeError):
    """Named as joblib's (loky's) report of a worker that died."""


class TerminatedWorkerError(BrokenProcessPool):
    pass


def test_a_parallel_sweeps_dead_worker_ends_it_with_one_line_after_its_jobs_output(tmp_path: Path,
                                                                                   capfd) -> None:
    # A worker killed outright (the out-of-memory killer, `kill -9` of its pid) ended a reading sweep
    # with joblib's TerminatedWorkerError traceback, and nothing said what to do.
    from omegaconf import OmegaConf

    from chargpt.cli.sweep_jobs import launch_reading_sweep

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})

    def launch() -> list:  # both jobs ended mid-way, their output held
        (tmp_path / ".job-0.out").write_text("==> temperature=0 <==\nab")
        (tmp_path / ".job-1.out").write_text("==> temperature=1 <==\nabc\n")
        raise TerminatedWorkerError("A worker process ... The exit codes of the workers are {SIGKILL(-9)}")

    with pytest.raises(SystemExit) as ended:
        launch_reading_sweep(config, launch)
    assert ended.value.code == 128 + 9
    out, err = capfd.readouterr()
    assert out == "==> temperature=0 <==\nab\n==> temperature=1 <==\nabc\n"
    assert err.startswith("error: a worker process of the sweep was ended by SIGKILL"), err
    assert err.count("\n") == 1 and "2 jobs did not finish" in err and "hydra.launcher.n_jobs=1" in err
    assert list(tmp_path.iterdir()) == []

    def own_bug() -> list:
        raise RuntimeError("a job's own bug")  # not a dead worker: raised as it is

    with pytest.raises(RuntimeError, match="own bug"):
        launch_reading_sweep(config, own_bug)


def test_a_dead_workers_sweep_prints_and_counts_only_its_own_jobs_held_output(tmp_path: Path, capfd) -> None:
    # A folder named with hydra.sweep.dir, on a file system without locks, held what a sweep killed
    # outright had left: a dead worker's sweep printed it as its own job's output, and counted it.
    from omegaconf import OmegaConf

    from chargpt.cli.sweep_jobs import launch_reading_sweep

    (tmp_path / ".job-7.out").write_text("stale from an old sweep\n")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})

    def launch() -> list:
        (tmp_path / ".job-0.out").write_text("==> temperature=0 <==\nab\n")
        raise TerminatedWorkerError("A worker process ... The exit codes of the workers are {SIGKILL(-9)}")

    with pytest.raises(SystemExit):
        launch_reading_sweep(config, launch)
    out, err = capfd.readouterr()
    assert out == "==> temperature=0 <==\nab\n"
    assert "1 job did not finish, its output so far is above" in err, err
    assert [p.name for p in tmp_path.iterdir()] == [".job-7.out"]


def test_held_output_a_sweep_did_not_make_is_left_alone(tmp_path: Path, capfd, monkeypatch) -> None:
    # A folder named with hydra.sweep.dir may hold what an earlier sweep killed outright left, or
    # files of the user's own: the next sweep printed and deleted the first as its own output, and
    # failed on the second (int('notes')). Only the held output of this sweep's jobs is printed, also
    # where the file system takes no lock on a folder (flock refused on NFS).
    fcntl = pytest.importorskip("fcntl")
    (tmp_path / ".job-7.out").write_text("stale from an old sweep\n")
    (tmp_path / ".job-notes.out").write_text("mine\n")
    earlier = held_outputs(tmp_path)
    (tmp_path / ".job-0.out").write_text("==> prompt=abc <==\nabc\n")

    def no_lock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_lock)
    print_held_output(tmp_path, earlier)
    assert capfd.readouterr() == ("==> prompt=abc <==\nabc\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".job-7.out", ".job-notes.out"]


def _evaluate(tmp_path: Path, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """chargpt-eval ARGS on a test checkpoint and a text it covers: (exit code, stdout, stderr)."""
    ckpt, text = make_checkpoint(tmp_path / "model.ckpt"), _eval_text(tmp_path)
    return run_main(eval_cli.main, [*args, f"ckpt_path={ckpt}", f"data.path={text}"], capsys)


def _eval_text(folder: Path) -> Path:
    """A text the test checkpoints' vocabulary covers, long enough for a validation split."""
    text = folder / "text.txt"
    text.write_text("abc def ghij\n" * 20, encoding="utf-8")
    return text


@pytest.mark.parametrize(("launcher", "here"), [([], False), (["hydra/launcher=local_parallel"], False),
                                                (["hydra/launcher=slurm"], True)])
def test_a_sweep_whose_jobs_run_on_other_machines_gets_its_folder_where_they_can_read_it(
    launcher: list[str], here: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slurm's jobs read their job files in the sweep's folder: one in this machine's /tmp is not theirs.
    from chargpt.cli.sweep_jobs import sweep_folder_removed

    monkeypatch.chdir(tmp_path)
    with sweep_folder_removed() as prepare:
        argv = prepare(["-m", "ckpt_path=run", "temperature=0.5,1", *launcher])
        folder = Path(argv[-1].removeprefix("hydra.sweep.dir=").strip("'"))
        assert folder.is_dir() and (folder.parent == tmp_path) == here
    assert not folder.exists()


@pytest.mark.parametrize("launcher", ["basic", "slurm"])
def test_a_sweep_removes_or_names_the_temporary_folder_a_sweep_killed_outright_left(
    launcher: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # `kill -9` of a sampling sweep left its temporary folder (multirun.yaml, the jobs' folders) for
    # good, in this machine's temporary folder or, under slurm, hidden in the current one.
    pytest.importorskip("fcntl")  # (Windows: no lock tells a live sweep's folder from a dead one's)
    from chargpt.cli.sweep_jobs import sweep_folder_removed

    here = launcher == "slurm"
    for name in ("cwd", "tmp"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    parent, prefix = (tmp_path / "cwd", ".chargpt-sweep-") if here else (tmp_path / "tmp", "chargpt-sweep-")
    argv = ["-m", "ckpt_path=run", "temperature=0.5,1", f"hydra/launcher={launcher}"]
    with sweep_folder_removed() as prepare:  # a sweep running, another killed outright
        live = Path(prepare(argv)[-1].removeprefix("hydra.sweep.dir=").strip("'"))
        dead = parent / f"{prefix}killed"
        dead.mkdir()
        (dead / "multirun.yaml").write_text("{}\n")
        (dead / ".in-use").touch()
        starting = parent / f"{prefix}starting"  # made a moment ago, its lock not yet taken
        starting.mkdir()
        with sweep_folder_removed() as prepare_next:
            folder = Path(prepare_next(argv)[-1].removeprefix("hydra.sweep.dir=").strip("'"))
            assert folder.parent == parent and folder.is_dir()
        assert live.is_dir() and starting.is_dir() and not folder.exists()
        assert dead.exists() == here
        err = capsys.readouterr().err
        assert (f"note: {prefix}killed here was left by a sweep killed outright" in err) == here
        assert f"{prefix}starting" not in err and live.name not in err
    assert not live.exists()


@pytest.mark.parametrize(("launcher", "why"), [
    ("slurm", "runs the sweep's jobs on other machines, which cannot read this machine's temporary folder"),
    # Its jobs run here, and can read it: said to run on other machines, it was refused for what it
    # does not do.
    ("submitit_local", "runs the sweep's jobs in processes of their own, which may still run after this "
                       "one is killed outright"),
])
def test_a_launcher_chosen_in_a_config_file_that_cannot_read_the_temporary_folder_is_refused(
    launcher: str, why: str, in_empty_folders, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `hydra/launcher: slurm` in a --config-dir config is not on the command line, where the sweep's
    # folder is placed: its jobs, on other machines, were handed one in this machine's /tmp.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cluster = tmp_path / "bin"  # a SLURM cluster's node: an srun on the PATH
    cluster.mkdir()
    (cluster / "srun").write_text("#!/bin/sh\n")
    (cluster / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{cluster}{os.pathsep}{os.environ.get('PATH', '')}")
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "cluster.yaml").write_text(
        f"defaults:\n  - sample\n  - override hydra/launcher: {launcher}\n  - _self_\n", encoding="utf-8")
    argv = ["-m", "--config-dir", str(configs), "--config-name", "cluster", f"ckpt_path={ckpt}",
            "temperature=0.5,1"]
    code, _, err = run_main(sample_cli.main, argv, capsys)
    assert code == 2
    assert err.startswith(f"error: hydra/launcher={launcher} (chosen in the config) {why}") and \
        err.count("\n") == 1, err
    assert f"add hydra/launcher={launcher} to the command line" in err
    assert _left(*in_empty_folders) == []


def test_a_named_sweep_folder_takes_one_sweep_at_a_time_and_drops_what_a_killed_one_held(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Two sweeps at once in one hydra.sweep.dir: the second rewrote the multirun.yaml the first's jobs
    # read their headings from (its jobs came out with none), and their jobs' held output
    # (.job-N.out) met. The held output a sweep killed outright left there stayed for good.
    fcntl = pytest.importorskip("fcntl")
    ckpt, sweep = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "my sweep"
    sweep.mkdir()
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "seed=1,2", f"hydra.sweep.dir={sweep}"]
    running = os.open(sweep / "multirun.yaml", os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(running, fcntl.LOCK_SH)  # another sweep's process, still running there
        code, out, err = run_main(sample_cli.main, argv, capsys)
    finally:
        os.close(running)
    assert (code, out) == (2, "")
    assert err == (f"error: {shlex.quote(f'hydra.sweep.dir={sweep}')} is in use by another sweep that is "
                   "still running; wait for it to end, or name another folder\n")
    for name in (".job-3.out", ".job-3.err", ".job-notes.out"):  # a killed sweep's, and the user's own
        (sweep / name).write_text("left\n")
    for _ in range(2):  # the folder free again once each sweep has ended
        code, out, err = run_main(sample_cli.main, argv, capsys)
        assert code == 0, err
        assert re.findall(r"^==> .* <==$", out, flags=re.MULTILINE) == ["==> seed=1 <==", "==> seed=2 <=="]
        assert "left" not in out + err
    assert sorted(p.name for p in sweep.iterdir()) == [".job-notes.out", "0", "1", "multirun.yaml"]


@pytest.mark.parametrize("denied", [errno.EROFS, errno.EACCES])
def test_a_sweep_folder_it_cannot_write_is_one_error_line(
    denied: int, in_empty_folders, tmp_path: Path, capsys, monkeypatch
) -> None:
    # hydra.sweep.dir on a read-only file system: opening its record raised EROFS, which only a
    # PermissionError was expected to be (a UserWarning line, then Hydra's traceback writing it).
    pytest.importorskip("fcntl")
    ckpt, sweep = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "read-only"
    sweep.mkdir()
    opened = os.open

    def not_writable(path, flags, *args, **kwargs):
        if Path(path).parent == sweep and flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(denied, os.strerror(denied), str(path))
        return opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", not_writable)
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "seed=1,2", f"hydra.sweep.dir={sweep}"]
    code, out, err = run_main(sample_cli.main, argv, capsys)
    assert (code, out) == (2, "")
    record = sweep / "multirun.yaml"
    assert err == (f"error: cannot write the sweep's record {record} ({os.strerror(denied)}); "
                   "name a writable hydra.sweep.dir, or leave it out for a temporary one\n")
    assert list(sweep.iterdir()) == []


@pytest.mark.parametrize("inside", [True, False], ids=["a-sweeps-folder", "a-runs-folder"])
def test_a_sweep_into_a_training_sweeps_folder_is_refused_and_leaves_its_record(
    inside: bool, in_empty_folders, tmp_path: Path, capsys
) -> None:
    # `chargpt-sample -m ... hydra.sweep.dir=SWEEP` with a training sweep's folder rewrote its
    # multirun.yaml: that sweep could no longer be continued ("already holds runs of an earlier sweep
    # with other settings").
    ckpt, trained = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "lr sweep"
    run = trained / "0" if inside else trained
    (run / ".hydra").mkdir(parents=True)
    (trained / "multirun.yaml").write_text("the training sweep's record\n")
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "seed=1,2", f"hydra.sweep.dir={trained}"]
    code, out, err = run_main(sample_cli.main, argv, capsys)
    assert (code, out) == (2, "")
    held = "holds training runs (0)" if inside else "is a training run's folder"
    assert err == (f"error: hydra.sweep.dir={trained} {held}, whose records this sweep would overwrite; name "
                   "another folder, or leave hydra.sweep.dir out for a temporary one\n")
    assert (trained / "multirun.yaml").read_text() == "the training sweep's record\n"


@pytest.mark.slow
def test_a_sweep_folder_holding_another_users_folder_is_swept_by_its_own_process(
    in_empty_folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # hydra.sweep.dir=a shared folder holding another user's, which this user may not look into:
    # checking it for training runs raised PermissionError, which Hydra turned into a warning, and
    # the sweep's own process went on without its swept settings, holding its jobs' output as a
    # worker of a parallel launcher does. (Simulated: root may look into any folder.)
    import warnings

    from chargpt.cli import sweep_jobs

    ckpt, shared = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "shared"
    (shared / "alice").mkdir(parents=True)
    stat = Path.stat

    def refused_in_alices(self: Path, *args, **kwargs):
        if self.parent.name == "alice":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refused_in_alices)
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "seed=1,2", f"hydra.sweep.dir={shared}"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Callback .* raised")  # Hydra's, for a callback's error
        code, out, err = run_main(sample_cli.main, argv, capsys)
    assert code == 0, err
    assert sweep_jobs._swept == ["seed"]
    assert re.findall(r"^==> .* <==$", out, flags=re.MULTILINE) == ["==> seed=1 <==", "==> seed=2 <=="]


@pytest.fixture
def nfs_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """flock as NFS emulates it, with byte-range locks: an exclusive one needs a file open for writing."""
    fcntl = pytest.importorskip("fcntl")
    flock = fcntl.flock

    def byte_range_flock(fd: int, operation: int) -> None:
        read_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        if operation & fcntl.LOCK_EX and read_only:
            raise OSError(errno.EBADF, "Bad file descriptor")
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", byte_range_flock)


def test_a_named_sweep_folder_in_use_is_refused_on_nfs(
    nfs_locks, in_empty_folders, tmp_path: Path, capsys
) -> None:
    # The lock on multirun.yaml was taken on a file opened read-only: NFS refused it (EBADF), taken
    # for a file system without locks, so two sweeps at once in one folder were never told apart there.
    import fcntl

    ckpt, sweep = make_checkpoint(tmp_path / "model.ckpt"), tmp_path / "my sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("an earlier sweep's record\n")
    running = os.open(sweep / "multirun.yaml", os.O_RDONLY)
    try:
        fcntl.flock(running, fcntl.LOCK_SH)  # another sweep's process, still running there
        code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1",
                                                    "seed=1,2", f"hydra.sweep.dir={sweep}"], capsys)
    finally:
        os.close(running)
    assert (code, out) == (2, ""), err
    assert "is in use by another sweep that is still running" in err
    assert (sweep / "multirun.yaml").read_text() == "an earlier sweep's record\n"  # not truncated


def test_only_this_machines_left_behind_sweep_folders_are_removed_also_on_nfs(
    nfs_locks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # On NFS the left-behind folders' lock (taken on a file opened read-only) was refused, so none was
    # ever removed. Where each machine's locks are its own (a shared TMPDIR mounted with local locks),
    # a live sweep's folder of another machine looks unlocked here: it must not be removed.
    import socket

    from chargpt.cli.sweep_jobs import sweep_folder_removed

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead, elsewhere, older = (tmp_path / f"chargpt-sweep-{name}" for name in ("dead", "elsewhere", "older"))
    for folder, host in ((dead, socket.gethostname()), (elsewhere, "another-node"), (older, "")):
        folder.mkdir()
        (folder / ".in-use").write_text(host)  # (an older chargpt wrote no machine)
    with sweep_folder_removed() as prepare:
        made = Path(prepare(["-m", "ckpt_path=run", "temperature=0.5,1"])[-1].split("=", 1)[1].strip("'"))
        assert (made / ".in-use").read_text() == socket.gethostname()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chargpt-sweep-elsewhere"]
    # Named, not left unseen: a folder a renamed machine left was kept for ever without a word.
    assert capsys.readouterr().err == (
        f"note: {elsewhere} was made by a sweep on the machine named 'another-node' (this one is "
        f"{socket.gethostname()!r}); remove it if no sweep runs there (or the machine was renamed)\n")


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_a_slurm_sweeps_jobs_are_not_refused_for_what_this_machine_lacks(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Submitted from a login node without a GPU, `chargpt-sample -m hydra/launcher=slurm device=cuda
    # seed=1,2` was refused ("device=cuda but no CUDA GPU is available"): its jobs run on the cluster's
    # GPU nodes, whose devices their own checks read, as a training sweep's do.
    import torch
    from hydra import compose, initialize_config_dir

    from chargpt.cli import CONFIG_PATH
    from chargpt.cli.sweep_jobs import check_each_job
    from chargpt.errors import ConfigError

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "my runs é").mkdir()
    ckpt = make_checkpoint(tmp_path / "my runs é" / "model.ckpt")
    check = sample_cli.check_settings if command == "sample" else eval_cli.check_settings
    overrides = [f"ckpt_path='{ckpt}'", "device=cuda"]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        slurm = compose(command, overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)
        here = compose(command, overrides=overrides, return_hydra_config=True)
        check_each_job(slurm, check)
        with pytest.raises(ConfigError, match=r"^device=cuda but no CUDA GPU is available; use device=cpu$"):
            check_each_job(here, check)  # jobs that run on this machine: refused before the first starts


def test_a_sampling_sweep_refused_before_its_first_job_makes_no_folder_it_names(
    in_empty_folders, tmp_path: Path, capsys
) -> None:
    # Refused for its bad value, it left the folder hydra.sweep.dir named, holding an empty
    # multirun.yaml (the sweep's lock), where a training sweep refused so makes none.
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    sweep = in_empty_folders[0] / "my sweep, é 🚀"
    argv = ["-m", f"ckpt_path={ckpt}", "max_new_tokens=1", "temperature=0.5,-1", f"hydra.sweep.dir={sweep}"]
    code, out, err = run_main(sample_cli.main, argv, capsys)
    assert (code, out) == (2, "") and err.startswith("error: temperature=-1 "), err
    assert _left(*in_empty_folders) == []


@pytest.mark.parametrize("swept", ["prompt_file=choice(a.txt, b é.txt)", "prompt_file=a.txt,b é.txt",
                                   "prompt_file=choice(-, a.txt)"])
def test_a_sweep_of_prompt_files_is_refused_with_the_loop_that_runs_each(
    in_empty_folders, tmp_path: Path, capsys, monkeypatch, swept: str
) -> None:
    # Each file was read as one file name: `prompt_file=choice(a.txt, b é.txt): cannot read it (No
    # such file or directory)`, though both files are there.
    here, _ = in_empty_folders
    (here / "a.txt").write_text("ROMEO:", encoding="utf-8")
    (here / "b é.txt").write_text("JULIET, 'O", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("never read"))
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", swept, "seed=1,2"], capsys)
    files = "- a.txt" if "-" in swept.split("(")[-1] else "a.txt 'b é.txt'"
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {swept}: a sweep cannot take several prompt files (a prompt file is read into prompt "
        f"before the sweep starts); run once per file: for f in {files}; do chargpt -m ckpt_path={ckpt} "
        "seed=1,2 prompt_file=\"$f\"; done (or sweep prompts typed out: -m 'prompt=choice(ROMEO:,JULIET:)')"]
    assert sys.stdin.read() == "never read"
    assert sorted(_left(*in_empty_folders)) == [here / "a.txt", here / "b é.txt"]
    # A file whose name has a comma is one file, swept or not.
    (here / "a,b.txt").write_text("a bed", encoding="utf-8")
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", "prompt_file=a,b.txt", "seed=1,2",
                                                "max_new_tokens=0"], capsys)
    assert (code, out.splitlines()) == (0, ["==> seed=1 <==", "a bed", "==> seed=2 <==", "a bed"]), err


@pytest.mark.parametrize(("named", "file"), [("a\\,b.txt", "a,b.txt"), ("'a,b é.txt'", "a,b é.txt"),
                                           ("a\\,b é.txt", "a,b é.txt")])
def test_a_prompt_file_whose_comma_is_escaped_or_quoted_is_one_file_in_a_sweep(
    in_empty_folders, tmp_path: Path, capsys, named: str, file: str
) -> None:
    # `-m prompt_file=a\,b.txt` (Hydra's escaped comma: one value) was refused as a sweep of the
    # files `a\` and `b.txt`; a quoted name of a file not there was refused so too. An escaped comma
    # in a name with an accent (which Hydra refuses unquoted) was read as typed, backslash and all.
    here, _ = in_empty_folders
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    argv = ["-m", f"ckpt_path={ckpt}", f"prompt_file={named}", "seed=1,2", "max_new_tokens=0"]
    code, out, err = run_main(sample_cli.main, argv, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: prompt_file={named}: cannot read it (No such file or directory); "
                                "give a readable UTF-8 text file, or - for standard input"]
    (here / file).write_text("a bed", encoding="utf-8")
    code, out, err = run_main(sample_cli.main, argv, capsys)
    assert (code, out.splitlines()) == (0, ["==> seed=1 <==", "a bed", "==> seed=2 <==", "a bed"]), err
    alone = [f"ckpt_path={ckpt}", f"prompt_file={named}", "max_new_tokens=0"]  # not a sweep: read so too
    code, out, err = run_main(sample_cli.main, alone, capsys)
    assert (code, out) == (0, "a bed\n"), err


def test_a_training_sweep_of_prompt_files_is_refused_with_the_loop_that_samples_each(
    in_empty_folders, capsys
) -> None:
    from chargpt.cli.train import main as train_main

    here, _ = in_empty_folders
    (here / "a.txt").write_text("ROMEO:", encoding="utf-8")
    code, out, err = run_main(train_main, ["-m", "sample.prompt_file=choice(a.txt, b é.txt)"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: sample.prompt_file=choice(a.txt, b é.txt): a sweep cannot take several prompt files "
        "(a prompt file is read into sample.prompt before the sweep starts); train once, then sample the run "
        "with each: for f in a.txt 'b é.txt'; do chargpt-sample ckpt_path=RUN prompt_file=\"$f\"; done"]
    assert _left(*in_empty_folders) == [here / "a.txt"]


@pytest.mark.parametrize(("prompts", "which"), [("choice(ab,)", "2nd"), ("choice(ab, ,ba)", "2nd"),
                                                ("choice('', ab)", "1st")])
def test_a_sampling_sweeps_empty_prompt_is_named_as_the_sweeps(
    in_empty_folders, tmp_path: Path, capsys, prompts: str, which: str
) -> None:
    # A trailing comma was told `prompt is empty; ... or leave it unset for the default`, of a prompt typed.
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    code, out, err = run_main(sample_cli.main, ["-m", f"ckpt_path={ckpt}", f"prompt={prompts}"], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: prompt={prompts}: the sweep's {which} prompt is empty (nothing "
                                "between its commas, or after the last); give each prompt at least one "
                                "character, or drop the empty one"]
    assert _left(*in_empty_folders) == []
