"""Clean exits: Ctrl-C is exit 130 with one line (also while a console script still imports its
command), a closed output pipe is quiet (141), a second Ctrl-C in training quits at once, and each
command has its own --help."""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
import torch

import chargpt.cli.eval as eval_cli
import chargpt.cli.export as export_cli
import chargpt.cli.sample as sample_cli
import chargpt.cli.serve as serve_cli
import chargpt.cli.train as train_cli
from chargpt import shell_words
from chargpt.cli import CONFIG_PATH, launch
from chargpt.cli.train import main as train_main
from chargpt.errors import OutOfMemory, naming_what_ran_out, needs_extra
from chargpt.stop_signals import STOP_SIGNALS, handling_stop_signals
from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt
from conftest import TINY_MODEL, bare_train_args, run_cli

ROOT = Path(__file__).resolve().parents[1]


# Where sample and eval read the model (eval through its library, chargpt.checkpoint_eval).
LOADERS = [(sample_cli, "chargpt.cli.sample.load_with_checkpoint"),
           (eval_cli, "chargpt.checkpoint_eval.load_with_checkpoint")]


def _raise(exc: type[BaseException]):
    def fail(*args, **kwargs):
        raise exc()

    return fail


@pytest.mark.parametrize(("cli", "target"), LOADERS)
def test_ctrl_c_in_sample_and_eval_is_exit_130_without_a_traceback(cli, target, monkeypatch, capsys) -> None:
    monkeypatch.setattr(target, _raise(KeyboardInterrupt))
    assert run_cli(cli.main, "ckpt_path=somewhere") == 130
    assert capsys.readouterr().err == "\ninterrupted\n"


@pytest.mark.parametrize(("cli", "target"), [*LOADERS, ("report", "chargpt.cli.report.report")])
def test_sigterm_in_sample_eval_and_report_is_one_line_and_exit_143(cli, target, monkeypatch, capsys) -> None:
    # It ended the process with no word (Ctrl-C said "interrupted").
    def terminate(*args: object, **kwargs: object) -> None:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the kill ends pytest too
        os.kill(os.getpid(), signal.SIGTERM)

    cli = importlib.import_module("chargpt.cli.report") if cli == "report" else cli
    monkeypatch.setattr(target, terminate)
    assert run_cli(cli.main, "." if target.endswith(".report") else "ckpt_path=somewhere") == 143
    assert capsys.readouterr().err == "\nterminated\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler before the command is back


@pytest.mark.parametrize(("cli", "target"), LOADERS)
def test_a_closed_output_pipe_is_quiet(cli, target, monkeypatch, capsys) -> None:
    monkeypatch.setattr(target, _raise(BrokenPipeError))
    assert run_cli(cli.main, "ckpt_path=somewhere") == 141
    assert capsys.readouterr().err == ""


NO_ROOM = "error: a write failed (No space left on device); free some space there, or write elsewhere\n"


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(("cli", "target"), LOADERS)
def test_a_full_disk_is_one_error_line(cli, target, monkeypatch, capsys) -> None:
    # Output redirected to a file on a full disk: Hydra printed the OSError as a failure, traceback too.
    monkeypatch.setattr(target, _full_disk)
    assert run_cli(cli.main, "ckpt_path=somewhere") == 2
    assert capsys.readouterr().err == NO_ROOM


def _no_gpu_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total "
                                 "capacity of 79.19 GiB of which 3.06 GiB is free.")


@pytest.mark.parametrize(("cli", "target"), LOADERS)
@pytest.mark.parametrize(("raised", "said"), [
    (_raise(MemoryError), "out of CPU memory; "),
    (_no_gpu_memory, "out of GPU memory (could not allocate 20.00 GiB); "),
])
def test_running_out_of_memory_in_sample_and_eval_is_one_error_line(cli, target, raised, said, monkeypatch,
                                                                    capsys) -> None:
    # A MemoryError or torch's OutOfMemoryError was Hydra's failure: a traceback and exit 1.
    monkeypatch.setattr(target, raised)
    assert run_cli(cli.main, "ckpt_path=somewhere") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}") and err.count("\n") == 1
    # The setting that sizes what it holds, and a smaller value of it.
    fix = "e.g. max_new_tokens=250," if cli is sample_cli else "e.g. batch_size=32"
    assert fix in err


@pytest.mark.parametrize(("cli", "target"), LOADERS)
@pytest.mark.parametrize("setting", ["", "1"])
def test_the_fix_for_memory_run_out_in_sample_and_eval_ends_alike(cli, target, setting, monkeypatch,
                                                                    capsys) -> None:
    # Each command ended its advice its own way: chargpt-eval named device= as a cause but not the other
    # device as a fix, and a setting of 1 was advised as itself ("ask for less, e.g. batch_size=1").
    monkeypatch.setattr(target, _no_gpu_memory)
    sampling = cli is sample_cli
    name, verb, default = ("max_new_tokens", "sample", 500) if sampling else ("batch_size", "evaluate", 64)
    args = ["ckpt_path=somewhere", *([f"{name}={setting}"] if setting else [])]
    assert run_cli(cli.main, *args) == 2
    value = int(setting or default)
    fix = f"with less, e.g. {name}={value // 2}, or on another device" if value > 1 else "on another device"
    assert capsys.readouterr().err == (
        f"error: out of GPU memory (could not allocate 20.00 GiB); {name}={value} is too large for the "
        f"memory of the device the model is on (device=auto); {verb} {fix}\n")


def test_the_fix_for_memory_run_out_is_worked_out_with_the_failed_blocks_memory_freed() -> None:
    # A model half built as memory ran out was held by the traceback's frames while the fix was worked
    # out (counting the model's parameters): that ran out in turn, and the command's own fix was said
    # instead ("max_new_tokens=5 is too large ...; ask for less, e.g. max_new_tokens=2"), false.
    class Layer:
        pass

    built: list[weakref.ref] = []

    def build() -> None:
        layer = Layer()
        built.append(weakref.ref(layer))
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 196608 bytes")

    def freed() -> str:  # the advice, saying whether the layer built is gone by then
        return "freed" if built[0]() is None else "still held"

    with pytest.raises(OutOfMemory) as raised, naming_what_ran_out(freed):
        build()
    assert str(raised.value) == "out of CPU memory (could not allocate 192.00 KiB); freed"


def _a_model(checkpoint: Path, export: bool) -> Path:
    """A minimal checkpoint at `checkpoint`, or (`export`) a safetensors export of it beside it."""
    from conftest import make_checkpoint

    model = make_checkpoint(checkpoint)
    if not export:
        return model
    exported = checkpoint.parent / "exported"
    assert run_cli(export_cli.main, f"ckpt_path={model}", f"out={exported}") == 0
    return exported


def _refused_in_one_line(cli, args: list[str], said: str, capsys) -> None:
    """The command exits 2 with one line: `error: ` and what the pattern `said` matches."""
    assert run_cli(cli.main, *args) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: {said}\n", err), err


@pytest.mark.parametrize(("cli", "args"), [(sample_cli, ["max_new_tokens=5"]), (eval_cli, []),
                                           (export_cli, ["out={tmp}/export"])])
@pytest.mark.parametrize("export", [False, True], ids=["checkpoint", "export"])
def test_a_model_too_large_to_build_is_named_not_the_commands_settings(cli, args, export, tmp_path,
                                                                      monkeypatch, capsys) -> None:
    # A model whose weights alone cannot be built: chargpt-sample advised a smaller max_new_tokens,
    # chargpt-eval a smaller batch_size (neither makes the model smaller), chargpt-export printed
    # torch's RuntimeError and exit 1, chargpt.load raised it.
    import chargpt
    import chargpt.inference as inference
    from chargpt.errors import OutOfMemory

    model = _a_model(tmp_path / "model.ckpt", export)

    def no_room(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 13194139533312 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(inference, "build_model", no_room)
    said = (r"out of CPU memory \(could not allocate 12.00 TiB\); the model itself \([\d,]+ parameters, "
            r"0.0 GiB of weights\) does not fit in memory for device=cpu, and no setting makes it smaller; "
            r"load it on a machine or device with more memory")
    _refused_in_one_line(cli, [f"ckpt_path={model}", *(a.format(tmp=tmp_path) for a in args)], said, capsys)
    with pytest.raises(OutOfMemory, match=rf"^{said}$"):
        chargpt.load(model)


@pytest.mark.parametrize(("cli", "args"), [(sample_cli, ["max_new_tokens=5"]), (eval_cli, []),
                                           (export_cli, ["out={tmp}/again"])])
@pytest.mark.parametrize("export", [False, True], ids=["checkpoint", "export"])
def test_a_model_larger_than_the_machines_memory_is_refused_before_it_is_built(cli, args, export, tmp_path,
                                                                             monkeypatch, capsys) -> None:
    # A checkpoint of `model.n_layer=100000` was built layer by layer until the machine had no memory
    # left: the kernel's out-of-memory killer ended the command without a word (or, under a memory
    # limit, a traceback and exit 1). The machine's memory is faked, smaller than the file's bytes
    # (a model's parameters are counted only where its file could hold too many): nothing is built.
    import chargpt
    import chargpt.inference as inference
    import chargpt.model.size as model_size
    from chargpt.errors import OutOfMemory

    model = _a_model(tmp_path / "model ü 🙂.ckpt", export)
    if export:  # its config.json saying the same
        config = json.loads((model / "config.json").read_text())
        config["model"]["n_layer"] = 100_000
        (model / "config.json").write_text(json.dumps(config))
    else:
        ckpt = torch.load(model, weights_only=True)
        ckpt["hyper_parameters"]["model"]["n_layer"] = 100_000
        torch.save(ckpt, model)

    def never(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(inference, "build_model", never)
    monkeypatch.setattr(model_size, "physical_memory", lambda: 2**10)
    monkeypatch.setattr(model_size, "swap_memory", lambda: 0)
    said = (rf"the model of {re.escape(str(model))} is too large for this machine: "
            r"model.n_layer=100000 makes [\d,]+ parameters, [\d,]+ GiB of weights alone where this machine "
            r"has 0 GiB of memory \(swap included\); load it on a machine with more memory")
    _refused_in_one_line(cli, [f"ckpt_path={model}", *(a.format(tmp=tmp_path) for a in args)], said, capsys)
    assert not (tmp_path / "again").exists()
    with pytest.raises(OutOfMemory, match=rf"^{said}$"):
        chargpt.load(model)


def test_a_batch_too_large_for_memory_is_one_error_line_before_training(tmp_path, corpus, capsys) -> None:
    # numpy refuses a batch this large at once: its _ArrayMemoryError was a traceback and exit 1.
    run_dir = tmp_path / "run"
    args = bare_train_args(corpus, run_dir, "data.batch_size=100000000000000000000", "trainer.max_steps=2")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    line = ("error: out of CPU memory; data.batch_size=100000000000000000000, model.block_size=16 or the "
            "model's size (model.n_layer, model.n_embd) is too large for this machine; run again with "
            "less, e.g. data.batch_size=50000000000000000000\n")
    assert err.endswith(line) and "Traceback" not in err


def test_torch_refusing_a_cpu_tensor_is_out_of_cpu_memory(tmp_path, corpus, monkeypatch, capsys) -> None:
    # torch's CPU allocator raises a RuntimeError, not its OutOfMemoryError: `model.n_embd=1048576` on
    # a CPU was its traceback and exit 1 ("DefaultCPUAllocator: can't allocate memory").
    import chargpt.training.module as module

    def no_room(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 13194139533312 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(module, "build_model", no_room)
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    assert err.endswith("error: out of CPU memory (could not allocate 12.00 TiB); data.batch_size=4, "
                        "model.block_size=16 or the model's size (model.n_layer, model.n_embd) is too large "
                        "for this machine; run again with less, e.g. data.batch_size=2\n"), err
    assert "Traceback" not in err


@pytest.mark.parametrize(("settings", "held"), [
    ([], "16 bytes each: weights, gradients, AdamW's moments"),
    # Muon holds one momentum, not two; weights of bf16-true are 2 bytes: 16 bytes overstated them.
    (["optimizer=muon"], "12 bytes each: weights, gradients, Muon's momentum"),
    (["trainer.precision=bf16-true"], "8 bytes each: weights, gradients, AdamW's moments"),
    (["trainer.precision=bf16-mixed"], "16 bytes each: weights, gradients, AdamW's moments"),
])
def test_a_model_too_large_for_the_machine_is_named_before_the_batch(settings, held, tmp_path, corpus,
                                                                     monkeypatch, capsys) -> None:
    # `model.n_embd=1048576` was advised a smaller data.batch_size first, which no batch size fixes.
    import chargpt.training.module as module

    def no_room(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 13194139533312 "
                           "bytes.")

    import chargpt.model.size as model_size

    monkeypatch.setattr(module, "build_model", no_room)
    # A machine where the weights alone fit (in its swap), as they did where this ran out.
    monkeypatch.setattr(model_size, "physical_memory", lambda: 2**40)
    monkeypatch.setattr(model_size, "swap_memory", lambda: 2**60)
    # A GPU of 8 GiB the run does not train on (trainer.accelerator=cpu): its memory was compared.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    eight_gib = SimpleNamespace(total_memory=2**33)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: eight_gib)
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2", "model.n_embd=1048576",
                           "trainer.accelerator=cpu", *settings)
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    # (The width alone makes it so large: the usual model.n_layer it has is not named.)
    line = (r"error: out of CPU memory \(could not allocate 12.00 TiB\); the model alone is too large for "
            r"this machine: model.n_embd=1048576 makes [\d,]+ parameters, [\d,]+ GiB to "
            rf"train \({re.escape(held)}\) where it has 1,024 GiB; run "
            r"again with less, e.g. a smaller model.n_embd\n$")
    assert re.search(line, err), err
    assert "Traceback" not in err


def test_a_model_whose_weights_alone_exceed_the_machines_memory_is_refused_before_it_is_built(
        tmp_path, corpus, monkeypatch, capsys) -> None:
    # `model.n_layer=100000` took the memory layer by layer until the machine had none left. (The
    # machine's memory is faked: the test never builds, or tries to build, such a model.)
    import chargpt.model.size as model_size
    import chargpt.training.module as module

    def never(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(model_size, "physical_memory", lambda: 2 * 2**30)
    monkeypatch.setattr(model_size, "swap_memory", lambda: 2**30)
    monkeypatch.setattr(module, "build_model", never)
    args = bare_train_args(corpus, tmp_path / "run", "trainer.max_steps=2", "model.n_layer=100000")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: model.n_layer=100000 makes [\d,]+ parameters, "
                        r"[\d,]+ GiB of weights alone where this machine has 3 GiB of memory \(swap "
                        r"included\); use a smaller model.n_layer\n", err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("sizes", "said", "fix"), [
    ({"mlp_ratio": 10_000_000}, "model.mlp_ratio=10000000 makes", "model.mlp_ratio"),
    ({"block_size": 10_000_000_000}, "model.block_size=10000000000 makes", "model.block_size"),
    ({"n_layer": 100_000, "n_embd": 4096}, "model.n_layer=100000 and model.n_embd=4096 make",
     "model.n_layer or model.n_embd"),
    ({"n_layer": 100_000_000}, "model.n_layer=100000000 makes", "model.n_layer"),
])
def test_a_model_too_large_to_build_is_refused_naming_the_settings_that_make_it_so(sizes, said, fix,
                                                                                   monkeypatch) -> None:
    # `model.mlp_ratio=10000000` of a 4-layer model was said to be "model.n_layer=4 and
    # model.n_embd=128", with the advice to make those smaller, which no value of theirs fixes.
    import chargpt.model.size as model_size
    import chargpt.training.model_memory as model_memory
    from chargpt.model import ModelConfig

    monkeypatch.setattr(model_size, "physical_memory", lambda: 2**30)
    monkeypatch.setattr(model_size, "swap_memory", lambda: 0)
    with pytest.raises(model_memory.ConfigError) as refused:
        model_memory.check_model_fits(ModelConfig(**sizes), vocab_size=1)
    message = str(refused.value)
    assert message.startswith(f"{said} "), message
    assert message.endswith(f"; use a smaller {fix}"), message


def test_a_model_whose_weights_fit_is_not_refused_for_its_size(monkeypatch) -> None:
    # The refusal is for a model that cannot be built at all; one whose float32 weights just fit is
    # left to train (and to the advice where its batch or optimizer then runs out).
    import chargpt.model.size as model_size
    import chargpt.training.model_memory as model_memory
    from chargpt.model import ModelConfig, build_model

    config = ModelConfig(n_layer=3, n_head=2, n_embd=32, block_size=16)
    weights = build_model(config, vocab_size=1).num_params() * 4
    monkeypatch.setattr(model_size, "swap_memory", lambda: 0)
    monkeypatch.setattr(model_size, "physical_memory", lambda: weights)
    model_memory.check_model_fits(config, vocab_size=1)
    monkeypatch.setattr(model_size, "physical_memory", lambda: weights - 1)
    with pytest.raises(model_memory.ConfigError, match=r"^model\.n_layer=3 and model\.n_embd=32 make"):
        model_memory.check_model_fits(config, vocab_size=1)


def test_gpu_memory_running_out_in_training_records_the_run_failed_and_says_how_to_continue(
        tmp_path, corpus, monkeypatch, capsys) -> None:
    from chargpt.training.module import CharLM

    trained = CharLM.training_step

    def out_at_step_3(self, batch, batch_idx):
        if self.global_step == 3:
            _no_gpu_memory()
        return trained(self, batch, batch_idx)

    monkeypatch.setattr(CharLM, "training_step", out_at_step_3)
    run_dir = tmp_path / "run"
    args = bare_train_args(corpus, run_dir, "trainer.max_steps=4", "trainer.val_check_interval=2")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    lead = ("error: out of GPU memory (could not allocate 20.00 GiB); data.batch_size=4, model.block_size=16 "
            "or the model's size (model.n_layer, model.n_embd) is too large for this machine; continue from "
            "its last checkpoint with less, e.g. ")
    line = err.splitlines()[-1] + "\n"
    assert line.startswith(lead) and "Traceback" not in err
    # The run's own command, its smaller batch in place of its own: `ckpt_path` alone would take
    # the defaults for the rest (another model, refused; 3000 steps).
    words = [w for w in shlex.split(line.removeprefix(lead)) if not re.match(r"[A-Z_]+=", w)]
    smaller = ["data.batch_size=2" if a == "data.batch_size=4" else a
               for a in args if not a.startswith("hydra.")]
    assert words == ["chargpt-train", *smaller, f"ckpt_path={run_dir}"]
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["status"], status["error"]) == ("failed", line.removeprefix("error: ").strip())
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # step 2's, kept


def test_a_full_disk_met_writing_metrics_json_names_the_file(tmp_path, corpus, monkeypatch, capsys) -> None:
    # It said "a write failed (No space left on device); free some space there": no file, no folder.
    written = Path.write_text

    def full_for_metrics(self, text, *args, **kwargs):
        if ".metrics.json." in self.name:  # atomic_path's temporary file beside metrics.json
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_for_metrics)
    run_dir = tmp_path / "my run, é"
    args = bare_train_args(corpus, run_dir, "trainer.max_steps=2", "trainer.val_check_interval=2")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"error: cannot write {run_dir / 'metrics.json'} (No space left on device); "
                        "free some space there, or write elsewhere\n") and "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads a descriptor's path from Linux's /proc")
@pytest.mark.parametrize("default_folder", [False, True])
def test_a_full_disk_before_training_is_one_line_naming_the_run_folder(
    tmp_path, corpus, monkeypatch, capsys, default_folder
) -> None:
    # Every write into the run's folder fails, as on a full disk. The lock file's pid was the first:
    # its OSError, raised in a Hydra callback, became Hydra's warning, and the start went on; then
    # Hydra's own write of .hydra/config.yaml was a traceback `OSError: [Errno 28] No space left on
    # device`, exit 1, naming no file.
    import hydra.core.utils

    outputs = tmp_path / "full disk, é 🚀"
    run_dir = outputs / "run" if not default_folder else None
    written = os.write

    def full_disk_write(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(outputs)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(fd, data)

    def full_disk_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "w" in mode and str(file).startswith(str(outputs)):
            raise OSError(errno.ENOSPC, "No space left on device")  # as its write-out on closing
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "write", full_disk_write)
    monkeypatch.setattr(hydra.core.utils, "open", full_disk_open, raising=False)
    outputs.mkdir()
    args = [*bare_train_args(corpus, run_dir, "trainer.max_steps=2"), f"paths.output_root={outputs}"]
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()
    assert line.startswith(f"error: cannot write to the output directory {outputs}"), err
    assert line.endswith(" (No space left on device); free some space there, or set "
                         "hydra.run.dir (or paths.output_root) to a folder on a disk with room"), err
    assert list(outputs.iterdir()) == []  # the folder the start made is gone again


def test_a_full_disk_met_writing_a_checkpoint_names_it(tmp_path, corpus, monkeypatch, capsys) -> None:
    # torch.save meets a full disk as an OSError, then ends in a RuntimeError of its zip writer
    # ("unexpected pos"): the checkpoint's own error was not said, and the file torch still held open
    # kept the disk full, so the line named status.json, written next.
    import chargpt.checkpoints as checkpoints

    def full_disk_save(obj, f, *args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:  # as torch's writer closing the file: the OSError is only its context
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 121728 vs 117524")  # noqa: B904

    monkeypatch.setattr(checkpoints.torch, "save", full_disk_save)
    run_dir = tmp_path / "my run, é 🚀"
    args = bare_train_args(corpus, run_dir, "trainer.max_steps=2", "trainer.val_check_interval=2")
    assert run_cli(train_main, *args) == 2
    err = capsys.readouterr().err
    # Its first checkpoint: there is none to resume from ('then resume from the last checkpoint').
    assert err.endswith(f"error: cannot write checkpoint {run_dir / 'checkpoints' / 'best-000002.ckpt'} (No "
                        "space left on device); free disk space or point hydra.run.dir at a writable folder, "
                        "then run it again (it wrote no checkpoint to resume from)\n"), err
    assert "Traceback" not in err
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def test_a_full_disk_met_by_a_sweeps_job_names_the_sweeps_fix(tmp_path, corpus, monkeypatch, capsys) -> None:
    # A sweep's job was told to "point hydra.run.dir at a writable folder", which a sweep does not
    # read (its jobs' folders are in hydra.sweep.dir), "then run it again".
    import chargpt.checkpoints as checkpoints

    def full_disk_save(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk_save)
    sweep = tmp_path / "my sweep, é 🚀"
    args = bare_train_args(corpus, None, "trainer.max_steps=2", "trainer.val_check_interval=2")
    assert run_cli(train_main, "-m", *args, f"hydra.sweep.dir={sweep}") == 1
    said = json.loads((sweep / "0" / "status.json").read_text())["error"]
    checkpoint = sweep / "0" / "checkpoints" / "best-000002.ckpt"
    assert said == (f"cannot write checkpoint {checkpoint} (No space left on device); free disk space, then "
                    "continue the sweep, which trains this job again (chargpt-report "
                    f"{shell_words.quote(str(sweep))} prints its command)")


def test_output_that_finds_no_room_when_flushed_is_one_error_line(tmp_path, monkeypatch, capsys) -> None:
    import chargpt.cli.report as report_cli

    class FullDisk:  # what stdout redirected to /dev/full does: the write fails when flushed
        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_cli, "report", lambda *args: print("a table"))
    monkeypatch.setattr(sys, "stdout", FullDisk())
    assert run_cli(report_cli.main, str(tmp_path)) == 2
    assert capsys.readouterr().err == NO_ROOM


def test_a_full_disk_met_in_a_background_thread_is_left_to_the_commands_one_line(monkeypatch, capsys) -> None:
    # TensorBoard's event writer meets a full disk in its own thread and raises the same error again
    # in the main thread at the next write: the thread printed its traceback after the error line.
    passed_on: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: passed_on.append(args.exc_type))

    def load(*args: object, **kwargs: object) -> None:
        for fails in (_full_disk, _raise(ValueError)):
            writer = threading.Thread(target=fails)
            writer.start()
            writer.join()
        _full_disk()

    monkeypatch.setattr(LOADERS[0][1], load)
    assert run_cli(sample_cli.main, "ckpt_path=somewhere") == 2
    assert capsys.readouterr().err == NO_ROOM
    assert passed_on == [ValueError]  # any other error in a thread is printed as before


@pytest.mark.parametrize(
    ("cli", "name", "absent"),
    [(sample_cli, "chargpt-sample", "trainer:"), (eval_cli, "chargpt-eval", "optimizer:"),
     (export_cli, "chargpt-export", "temperature:"), (serve_cli, "chargpt-serve", "trainer:"),
     pytest.param(train_cli, "chargpt-train", "ckpt_path: null", marks=pytest.mark.slow)],
)
def test_each_command_has_its_own_help(cli, name, absent, capsys) -> None:
    assert run_cli(cli.main, "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{name}: ")
    assert "powered by Hydra" not in out and absent not in out
    examples = out.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    assert examples.count(f"{name} ") == 2


def test_train_help_lists_each_groups_options_as_its_config_folder_holds_them(capsys) -> None:
    # "model=tiny|small|bigram" left model=auto out: every list of a config group's options in the
    # help is the group's folder, in its order.
    assert run_cli(train_cli.main, "--help") == 0
    common = capsys.readouterr().out.split("== Configuration groups", 1)[0]
    listed = dict(re.findall(r"\b(\w+)=(\w+(?:\|\w+)+)", common))
    groups = {g: v for g, v in listed.items() if (Path(CONFIG_PATH) / g).is_dir()}
    assert "model" in groups
    for group, options in groups.items():
        assert options.split("|") == sorted(p.stem for p in (Path(CONFIG_PATH) / group).glob("*.yaml"))


def test_export_help_installs_its_extra_as_the_missing_extras_error_does(capsys) -> None:
    # It said `pip install 'chargpt[export]'`: chargpt is installed from its folder, not an index.
    assert run_cli(export_cli.main, "--help") == 0
    out = " ".join(capsys.readouterr().out.split())
    install = needs_extra("chargpt-export", "safetensors", "export").rsplit(": ", 1)[1]
    assert install in out and "chargpt[export]" not in out


def _trainer(step: int, max_steps: int) -> SimpleNamespace:
    strategy = SimpleNamespace(root_device="cpu", all_gather=lambda own: own)  # one process
    return SimpleNamespace(global_step=step, max_steps=max_steps, strategy=strategy, callbacks=[],
                           validating=False, world_size=1)


def test_a_signal_during_the_final_validation_says_the_run_is_finishing(tmp_path: Path, capsys) -> None:
    guard = GracefulInterrupt(str(tmp_path))
    previous = signal.getsignal(signal.SIGINT)
    try:
        guard.on_train_batch_end(_trainer(10, 10))  # the last step: validation and saving follow
        guard._handle(signal.SIGINT, None)
        err = capsys.readouterr().err
        assert "SIGINT received: the last step is done and the run is finishing" in err
        assert "stopping after this step" not in err
        # A second Ctrl-C gets the default action: the process ends at once (no Lightning shutdown).
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_handlers_from_before_fit_are_back_after_it(tmp_path: Path) -> None:
    """Lightning's SIGTERM handler (installed after setup) only sets a flag: left in place after
    fit, a SIGTERM during the closing sample would be ignored."""
    guard = GracefulInterrupt(str(tmp_path))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    lightning_handler = lambda signum, frame: None  # noqa: E731
    try:
        guard.setup(None, None, "fit")
        signal.signal(signal.SIGTERM, lightning_handler)
        guard.on_train_start(_trainer(0, 10), None)
        assert signal.getsignal(signal.SIGTERM) == guard._handle
        guard.teardown(None, None, "fit")
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_a_blocks_stop_signal_handler_is_set_in_the_main_thread_only_and_undone_after_it() -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    handler = lambda signum, frame: None  # noqa: E731
    with handling_stop_signals(handler):
        assert all(signal.getsignal(s) is handler for s in STOP_SIGNALS)
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before

    seen: list[dict] = []

    def elsewhere() -> None:  # Python lets only the main thread set handlers: none is changed
        with handling_stop_signals(handler):
            seen.append({s: signal.getsignal(s) for s in STOP_SIGNALS})

    thread = threading.Thread(target=elsewhere)
    thread.start(), thread.join()
    assert seen == [before]


def test_the_first_signal_is_recorded_before_a_second_can_end_the_process(tmp_path: Path, capsys) -> None:
    guard = GracefulInterrupt(str(tmp_path))
    calls = []
    guard.on_signal = lambda line: calls.append((signal.getsignal(signal.SIGTERM), line))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        guard._handle(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert "SIGTERM received: stopping after this step" in err
    # Handed the console's line, for the run's log: the last thing the log can say if a second ends it.
    assert calls == [(signal.SIG_DFL, err.strip())]


@pytest.mark.parametrize("kept", ["/runs/my run/checkpoints/last.ckpt", ""])
def test_the_first_signal_says_what_a_second_would_keep(kept, tmp_path, monkeypatch, capsys) -> None:
    # The second ends the process by the signal's default action, with no chance to say it then.
    import chargpt.training.callbacks.graceful_interrupt as graceful_interrupt

    guard = GracefulInterrupt(str(tmp_path))
    guard._trainer = SimpleNamespace(validating=False)
    monkeypatch.setattr(graceful_interrupt, "latest_checkpoint_kept", lambda trainer: kept)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        guard._handle(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    line = capsys.readouterr().err.strip()
    assert line.startswith("SIGTERM received: stopping after this step and writing a checkpoint (send it "
                           "again to quit at once without one: ")
    assert line.endswith(f"its last checkpoint, {kept}, stays)" if kept else "it has no checkpoint yet)")


def test_a_resumed_run_s_first_signal_names_the_checkpoint_it_resumed_from(tmp_path, capsys) -> None:
    # Interrupted before any validation, then resumed: its last.ckpt (written by the interruption,
    # outside the checkpoint callbacks) stays on disk, yet the first signal said "it has no
    # checkpoint yet", as if a second one would lose every step trained so far.
    resumed_from = tmp_path / "checkpoints" / "last.ckpt"
    resumed_from.parent.mkdir()
    resumed_from.write_bytes(b"checkpoint")
    guard = GracefulInterrupt(str(tmp_path))
    guard._trainer = SimpleNamespace(checkpoint_callbacks=[], validating=False, ckpt_path=str(resumed_from))
    previous = signal.getsignal(signal.SIGINT)
    try:
        guard._handle(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err.strip().endswith(f"its last checkpoint, {resumed_from}, stays)")


@pytest.mark.slow  # a real run: seconds
def test_a_signal_while_the_first_last_ckpt_is_written_names_a_checkpoint_on_disk(
    tmp_path, monkeypatch, capsys
) -> None:
    # Lightning names a checkpoint as its callback's before the (atomic) write ends: a SIGTERM during
    # the first last.ckpt's write said "its last checkpoint, .../last.ckpt, stays" of a file a second
    # signal would leave unwritten. The best checkpoint, written just before it, is on disk.
    import chargpt.training.checkpoint_io as checkpoint_io

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefgh ijk\n" * 200)
    save_atomic = checkpoint_io.save_atomic

    def signalled_while_written(checkpoint, path):
        if Path(path).name == "last.ckpt" and not Path(path).exists():
            os.kill(os.getpid(), signal.SIGTERM)  # handled at once, in this thread: the write has not ended
        save_atomic(checkpoint, path)

    monkeypatch.setattr(checkpoint_io, "save_atomic", signalled_while_written)
    run = tmp_path / "my run"
    args = bare_train_args(corpus, run, "trainer.max_steps=4", "trainer.val_check_interval=2")
    code = run_cli(train_main, *args)
    err = capsys.readouterr().err
    assert code == 143, err
    said = next(line for line in err.splitlines() if line.startswith("SIGTERM received"))
    assert said.endswith(f"its last checkpoint, {run / 'checkpoints' / 'best-000002.ckpt'}, stays)"), said


def test_a_checkpoint_still_being_written_is_not_said_to_stay(tmp_path, capsys) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    last = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="last")
    last.best_model_path = str(tmp_path / "checkpoints" / "last.ckpt")  # as Lightning sets it before writing
    guard = GracefulInterrupt(str(tmp_path))
    guard._trainer = SimpleNamespace(checkpoint_callbacks=[last], validating=False, ckpt_path=None)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        guard._handle(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.strip().endswith("it has no checkpoint yet)")


def test_the_first_signal_in_a_sweep_says_how_to_continue_it_after_a_second(tmp_path, capsys) -> None:
    # A second Ctrl-C ended a sequential sweep with no word of its continue command.
    guard = GracefulInterrupt(str(tmp_path))
    guard.after_quitting = "continue the sweep (its finished jobs are kept) with: chargpt-train -m seed=1,2"
    previous = signal.getsignal(signal.SIGINT)
    try:
        guard._handle(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err.strip().endswith(
        "it has no checkpoint yet; then continue the sweep (its finished jobs are kept) with: "
        "chargpt-train -m seed=1,2)")


@pytest.mark.parametrize("rank", [0, 1])
def test_only_the_first_process_of_a_run_says_it_got_the_signal(rank, tmp_path, monkeypatch, capsys) -> None:
    # Ctrl-C reaches every process of a multi-process run (trainer=ddp_cpu): one line, not one each.
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", rank)
    guard = GracefulInterrupt(str(tmp_path))
    previous = signal.getsignal(signal.SIGINT)
    try:
        guard._handle(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert guard.received == signal.SIGINT  # every rank stops, at the same step
    err = capsys.readouterr().err
    assert ("SIGINT received: stopping after this step" in err) == (rank == 0)


# (what rank 0 received, what rank 1 received) -> the signal the run stops on, on both ranks
SIGNALS_BY_RANK = [
    ((None, signal.SIGINT), signal.SIGINT),  # Ctrl-C sent to one rank alone was "stopped by SIGTERM"
    ((None, signal.SIGTERM), signal.SIGTERM),
    ((signal.SIGINT, None), signal.SIGINT),
    ((signal.SIGINT, signal.SIGTERM), signal.SIGINT),  # both at once: rank 0's, whose line says it
    ((signal.SIGTERM, signal.SIGINT), signal.SIGTERM),
]


@pytest.mark.parametrize(("received", "expected"), SIGNALS_BY_RANK)
@pytest.mark.parametrize("validating", [False, True], ids=["step", "validation"])
@pytest.mark.parametrize("rank", [0, 1])
def test_every_rank_stops_on_the_signal_a_rank_received(received, expected, validating, rank, tmp_path,
                                                        monkeypatch) -> None:
    import torch

    import chargpt.training.callbacks.graceful_interrupt as graceful
    from chargpt.training.callbacks.graceful_interrupt import TrainingInterrupted

    def gather(own: torch.Tensor) -> torch.Tensor:  # the all-gather of two processes, seen from `rank`
        by_rank = [torch.tensor(int(s or 0)) for s in received]
        assert int(own) == int(by_rank[rank])
        return torch.stack(by_rank)

    saved: list[Path] = []
    strategy = SimpleNamespace(root_device="cpu", all_gather=gather, broadcast=lambda value: value,
                               reduce_boolean_decision=lambda decision, all: any(received))
    trainer = SimpleNamespace(global_step=7, sanity_checking=False, validating=False, strategy=strategy,
                              world_size=2, save_checkpoint=lambda path, weights_only: saved.append(path))
    monkeypatch.setattr(graceful, "is_last_step", lambda trainer: False)
    monkeypatch.setattr(graceful, "validates_after_this_batch", lambda trainer: validating)
    monkeypatch.setattr(graceful, "is_accumulating", lambda trainer: False)  # at a step's end
    monkeypatch.setattr(graceful, "log_step_values", lambda trainer: None)
    monkeypatch.setattr(graceful, "last_checkpoint_path", lambda trainer, output_dir: tmp_path / "last.ckpt")
    guard = GracefulInterrupt(str(tmp_path))
    guard._trainer = trainer  # type: ignore[assignment]  # as on_train_start leaves it
    guard.received = received[rank]
    with pytest.raises(TrainingInterrupted) as stop:
        guard.on_train_batch_end(trainer)  # type: ignore[arg-type]
        assert validating  # the step's validation runs first; the stop comes at its end
        trainer.validating = True  # Lightning's stage while it validates
        guard.on_validation_start(trainer, None)  # type: ignore[arg-type]
        guard.on_validation_end(trainer, None)  # type: ignore[arg-type]
    assert (stop.value.signum, stop.value.exit_code, stop.value.step) == (expected, 128 + expected, 7)
    assert guard.received == expected  # what the command says and records after fit, on every rank
    assert saved == [tmp_path / "last.ckpt"]


@pytest.mark.parametrize("received", [None, signal.SIGINT])
def test_one_process_agrees_on_its_signal_without_a_collective(received, tmp_path: Path) -> None:
    """One process needs no agreement: a tensor made and read back at every step would wait on a
    GPU for the step's work, where steps that neither log nor validate synchronise nothing."""
    def no_collective(*args):  # type: ignore[no-untyped-def]
        raise AssertionError("a collective on one process")

    strategy = SimpleNamespace(root_device="cpu", all_gather=no_collective, broadcast=no_collective)
    guard = GracefulInterrupt(str(tmp_path))
    guard.received = received
    assert guard._agreed_signal(SimpleNamespace(world_size=1, strategy=strategy)) == received  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_second_ctrl_c_quits_training_at_once(tmp_path: Path, corpus: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CHARGPT_CACHE_DIR": str(tmp_path / "cache")}
    # Steps of a second or so: both signals arrive within one step.
    args = ["data=text", f"data.path={corpus}", f"hydra.run.dir={tmp_path / 'run'}", "model=tiny",
            "model.n_embd=256", "model.n_layer=4", "model.block_size=256", "data.batch_size=32",
            "trainer.max_steps=100000", "trainer.val_check_interval=100000", "callbacks.progress_bar=null"]
    err_file = tmp_path / "err.txt"
    with err_file.open("w") as err_out:
        proc = subprocess.Popen([sys.executable, "-m", "chargpt.cli.train", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=err_out)
        deadline = time.monotonic() + 300
        # The logger writes its hparams as fit starts; a few seconds later the loop is running.
        hparams = tmp_path / "run" / "tensorboard" / "hparams.yaml"
        while not hparams.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        while "SIGINT received" not in err_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    err = err_file.read_text()
    assert "SIGINT received: stopping after this step" in err
    assert "(send it again to quit at once without one: it has no checkpoint yet)" in err
    assert proc.returncode == -signal.SIGINT, err  # ended by the signal itself: a shell shows 130
    assert "Detected KeyboardInterrupt" not in err and "Traceback" not in err
    # Recorded at the first signal: the report says interrupted, not killed, and the run's log ends
    # with what the console said then.
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "interrupted"
    last_line = (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert last_line.endswith("SIGINT received: stopping after this step and writing a checkpoint (send "
                              "it again to quit at once without one: it has no checkpoint yet)")


@pytest.mark.parametrize(("finishing", "said"), [
    (True, "SIGINT received: the last step is done and the run is finishing (final validation and "
           "checkpoint) (send it again to quit at once without them: it has no checkpoint yet)"),
    (False, "SIGINT received: stopping after this step and writing a checkpoint (send it again to quit at "
            "once without one: it has no checkpoint yet)"),
])
def test_the_first_signal_says_what_a_second_would_quit_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finishing: bool, said: str
) -> None:
    from chargpt.training.callbacks.graceful_interrupt import GracefulInterrupt

    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # this process keeps its handlers
    interrupt = GracefulInterrupt(str(tmp_path))
    interrupt._finishing = finishing
    lines: list[str] = []
    interrupt.on_signal = lines.append
    interrupt._handle(signal.SIGINT, None)
    assert lines == [said]


def test_ctrl_c_before_training_is_exit_130(tmp_path: Path, corpus: Path, monkeypatch, capsys) -> None:
    from chargpt.training import build as training_build

    monkeypatch.setattr(training_build, "build_run", _raise(KeyboardInterrupt))
    args = ["data=text", f"data.path={corpus}", f"paths.output_root={tmp_path}", *TINY_MODEL]
    assert run_cli(train_main, *args) == 130
    assert capsys.readouterr().err.endswith("interrupted\n")
    assert list(tmp_path.iterdir()) == []  # an interrupted start leaves nothing


def test_sigterm_while_the_run_is_built_is_exit_143(tmp_path: Path, corpus, monkeypatch, capsys) -> None:
    # Its default action ended the process where it stood: no word, the run's folder left behind.
    from chargpt.training import build as training_build

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(training_build, "build_run", terminated)
    args = ["data=text", f"data.path={corpus}", f"paths.output_root={tmp_path}", *TINY_MODEL]
    assert run_cli(train_main, *args) == 143
    assert capsys.readouterr().err.endswith("\nterminated\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("exc", "code", "err"), [(KeyboardInterrupt, 130, "\ninterrupted\n"), (BrokenPipeError, 141, "")]
)
def test_the_report_exits_cleanly_too(exc, code, err, tmp_path, monkeypatch, capsys) -> None:
    import chargpt.cli.report as report_cli

    monkeypatch.setattr(report_cli, "report", _raise(exc))
    assert run_cli(report_cli.main, str(tmp_path)) == code
    assert capsys.readouterr().err == err


@pytest.mark.parametrize("args", [["--sort", "bogus", "."], [], ["--csv"]])
def test_the_reports_argument_errors_are_one_line(args: list[str], capsys) -> None:
    import chargpt.cli.report as report_cli

    assert run_cli(report_cli.main, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.endswith("; see chargpt-report --help\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("args", [["--info"], ["--cfg", "job"], [".", "--shell-completion"], ["-m", "."]])
def test_a_hydra_commands_flag_given_to_the_report_is_named(args: list[str], capsys) -> None:
    # They were read as a missing folder ("the following arguments are required: sweep_dir") or an
    # unknown argument, with no word that chargpt-report is no Hydra app.
    import chargpt.cli.report as report_cli

    assert run_cli(report_cli.main, *args) == 2
    flag = next(arg for arg in args if arg.startswith("-"))
    assert capsys.readouterr().err == (
        f"error: {flag} is a flag of chargpt's Hydra commands (chargpt-train, -sample, -eval, -export, "
        "-serve), not of chargpt-report, which takes a sweep's folder, --csv and --sort; see chargpt-report "
        "--help\n")


PYPROJECT = ROOT / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_runs_its_command(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, function = SCRIPTS[script].split(":")
    assert module_name == "chargpt.cli.launch"
    command = script.removeprefix("chargpt-")
    real = importlib.import_module(f"chargpt.cli.{command}")
    assert callable(real.main)
    ran: list[str] = []
    monkeypatch.setattr(importlib, "import_module",
                        lambda name: SimpleNamespace(main=lambda: ran.append(name)))
    getattr(launch, function)()
    assert ran == [f"chargpt.cli.{command}"]


INTERRUPTED_IMPORT = """
import importlib, signal, sys
# A shell starts a command with Ctrl-C's default handling (a test runner's worker may ignore it),
# and --help, should the signal not land, ends the command at once.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
sys.argv = ["chargpt-train", "--help"]
real = importlib.import_module
def interrupted(name, package=None):  # the signal arrives while the command's code is being imported
    if name.startswith("chargpt.cli."):
        signal.raise_signal(signal.SIGNUM)  # to this thread, so Python raises it here
    return real(name, package)
importlib.import_module = interrupted
from chargpt.cli.launch import train
train()
"""


@pytest.mark.parametrize(("signum", "code", "line"),
                         [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_while_a_command_imports_its_code_is_one_line(signum: str, code: int, line: str) -> None:
    # SIGTERM ended the process there without a word.
    script = INTERRUPTED_IMPORT.replace("SIGNUM", signum)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == code, done.stderr[-2000:]
    assert done.stderr.strip() == line
    assert done.stdout == ""


INTERRUPTED_MODULE_RUN = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell starts a command
signal.signal(signal.SIGTERM, signal.SIG_DFL)

class Interrupting:  # the signal arrives as the command's module imports its code
    def find_spec(self, name, path=None, target=None):
        if name == "chargpt.runs.report":
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGNUM)
        return None

sys.meta_path.insert(0, Interrupting())
sys.argv = ["report", "--help"]  # (should the signal not land, it ends the command at once)
runpy.run_module("chargpt.cli.report", run_name="__main__", alter_sys=True)  # python -m chargpt.cli.report
"""


@pytest.mark.parametrize(("signum", "code", "line"),
                         [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_while_a_command_run_as_a_module_imports_its_code_is_one_line(signum, code, line) -> None:
    # `python -m chargpt.cli.report` (or .train) ran the module's imports before any handling: a
    # Ctrl-C was a KeyboardInterrupt traceback and a SIGTERM ended it without a word.
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_MODULE_RUN.replace("SIGNUM", signum)],
                          capture_output=True, text=True)
    assert (done.returncode, done.stderr.strip(), done.stdout) == (code, line, ""), done.stderr[-2000:]


SIGNAL_WHILE_EXITING = """
import atexit, importlib, signal, time, types
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell starts a command
signal.signal(signal.SIGTERM, signal.SIG_DFL)

def main():  # a command that has done its work, and prints so, as `chargpt-export` does
    print("exported", flush=True)
    def finalizer():  # torch's, which take ~0.4 s of the exit: the signal comes then
        signal.raise_signal(signal.SIGNUM)
        time.sleep(0.05)
    atexit.register(finalizer)

importlib.import_module = lambda name, package=None: types.SimpleNamespace(main=main)
from chargpt.cli.launch import export
export()
"""


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_once_a_command_has_ended_leaves_its_exit_as_it_was(signum: str) -> None:
    # After `chargpt-export` had printed `exported ...` (its files whole), a Ctrl-C was a
    # KeyboardInterrupt traceback from an atexit callback, or a silent exit 130; a SIGTERM a silent 143.
    script = SIGNAL_WHILE_EXITING.replace("SIGNUM", signum)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "exported\n", "")


def test_an_interrupted_search_trial_resumes_as_one_run() -> None:
    # hparams_search=optuna launches a whole new search; the trial's own values continue it.
    trial = ["optimizer.lr=0.0031", "model.n_layer=3", "hparams_search=optuna", "+trainer.x=1"]
    assert train_cli.resume_command("/runs/opt/0", trial) == (
        "chargpt-train optimizer.lr=0.0031 model.n_layer=3 +trainer.x=1 ckpt_path=/runs/opt/0")


@pytest.mark.parametrize(("signum", "code", "line"), [(signal.SIGINT, 130, "interrupted"),
                                                        (signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_lightning_sets_the_run_up_is_one_line(signum, code, line, tmp_path: Path, corpus,
                                                              monkeypatch, capsys) -> None:
    # Inside trainer.fit but before the training loop: Lightning ended a KeyboardInterrupt there
    # with "Detected KeyboardInterrupt" and exit code 1, and a SIGTERM ended the process silently.
    from chargpt.training import CharLM

    configure = CharLM.configure_optimizers

    def signalled(module):
        os.kill(os.getpid(), signum)
        return configure(module)

    monkeypatch.setattr(CharLM, "configure_optimizers", signalled)
    run = tmp_path / "run"
    args = ["data=text", f"data.path={corpus}", f"hydra.run.dir={run}", *TINY_MODEL, "logger=none",
            "trainer.max_steps=5", "~callbacks.progress_bar"]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert run_cli(train_main, *args) == code
    err = capsys.readouterr().err
    assert err.endswith(f"\n{line}\n") and "Detected KeyboardInterrupt" not in err and "Traceback" not in err
    assert not run.exists()  # an interrupted start leaves nothing, as before fit
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # this process's own are back


def test_a_process_forked_while_lightning_sets_up_reacts_as_it_did_before() -> None:
    # Data-loader workers are forked inside trainer.fit before the training loop: a signal there
    # must stay the KeyboardInterrupt torch's worker loop expects, not the run's own stop.
    from chargpt.cli.exits import nothing_to_save_until_training

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a shell starts a command
    try:
        with nothing_to_save_until_training():
            pid = os.fork()
            if pid == 0:  # the worker
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                    os._exit(3)
                except KeyboardInterrupt:
                    os._exit(7)
                except BaseException:
                    os._exit(9)
            _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGINT, before)
    assert os.waitstatus_to_exitcode(status) == 7


def test_logging_made_before_the_console_guard_outlives_a_closed_pipe(monkeypatch, capsys) -> None:
    # A parallel sweep's worker logs its job through handlers Hydra made before the job's code ran:
    # each line into the closed pipe printed a logging traceback, and the job failed.
    import logging

    from chargpt.cli.exits import console_outliving_its_reader

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone
    console = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", console)
    log = logging.getLogger("chargpt.test.worker")
    handler = logging.StreamHandler(console)
    log.addHandler(handler)
    try:
        with console_outliving_its_reader("warning: reader gone"):
            log.warning("a line of the job's log")
            print("and a print", flush=True)
            assert handler.stream is sys.stdout  # the guard, for the block
    finally:
        log.removeHandler(handler)
    assert handler.stream is console and sys.stdout is console
    err = capsys.readouterr().err
    assert err == "warning: reader gone\n", err  # once; no "--- Logging error ---"
    console.close()


@pytest.mark.parametrize(("folder", "tokens", "advice", "not_advised"), [
    # It was the training error, exit 2 and the run recorded failed, advising data.batch_size (a resume
    # with less): the run had finished and was saved; the sample's own settings asked for the memory.
    ("run", 300, "draw it with less, e.g. chargpt-sample ckpt_path={run_dir} max_new_tokens=150",
     "data.batch_size"),
    # One token is the least: it advised "with less, e.g. ... max_new_tokens=1", the setting that ran out.
    ("r 1 é 🚀", 1, "draw it apart from the training, which holds its optimizer's memory: "
     "chargpt-sample 'ckpt_path={run_dir}' max_new_tokens=1", "with less"),
], ids=["less", "one token"])
def test_memory_running_out_in_the_closing_sample_is_a_warning_naming_the_samples_settings(
        tmp_path, corpus, monkeypatch, capsys, folder, tokens, advice, not_advised) -> None:
    from chargpt.inference import TrainedModel

    def no_room_to_sample(self, *args, **kwargs):
        _no_gpu_memory()
        yield ""

    monkeypatch.setattr(TrainedModel, "stream", no_room_to_sample)
    run_dir = tmp_path / folder
    args = bare_train_args(corpus, run_dir, "trainer.max_steps=2", f"sample.max_new_tokens={tokens}")
    assert run_cli(train_main, *args) == 0
    err = capsys.readouterr().err
    line = ("warning: no sample (out of GPU memory (could not allocate 20.00 GiB); "
            f"sample.max_new_tokens={tokens} is too large for this machine; "
            f"{advice.format(run_dir=run_dir)}); the run itself finished\n")
    assert err.endswith(line) and not_advised not in err, err
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def test_a_model_whose_file_could_not_fill_the_memory_is_loaded_without_counting_it(tmp_path,
                                                                                    monkeypatch) -> None:
    # Counting a model's parameters builds it on torch's meta device, which imports torch's compiler:
    # every chargpt-sample took seconds more and left a torchinductor folder in the temporary one.
    import chargpt
    import chargpt.inference as inference
    import chargpt.model.size as model_size
    from conftest import make_checkpoint

    model = make_checkpoint(tmp_path / "model.ckpt")

    def never(*args, **kwargs):
        raise AssertionError("the model's parameters were counted")

    monkeypatch.setattr(inference, "too_large_to_build", never)
    monkeypatch.setattr(model_size, "swap_memory", lambda: 0)
    monkeypatch.setattr(model_size, "physical_memory", lambda: model.stat().st_size * 4)
    assert chargpt.load(model).generate("a", max_new_tokens=3, seed=0)
    monkeypatch.setattr(model_size, "physical_memory", lambda: model.stat().st_size * 4 - 1)
    with pytest.raises(AssertionError, match="counted"):
        chargpt.load(model)


@pytest.mark.parametrize("model_alone", [True, False], ids=["model alone", "batch of one"])
def test_memory_advice_that_needs_a_smaller_model_starts_a_run_anew(
    model_alone: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a checkpoint in the run's folder it advised "continue from its last checkpoint with less,
    # e.g. ckpt_path=RUN a smaller model.n_embd": a resume refuses another model's shape. A smaller
    # batch size is still continued from it.
    from omegaconf import OmegaConf

    from chargpt.training import model_memory

    run = tmp_path / "my run, é 🚀"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    too_large = ("model.n_embd=1048576 makes N parameters", "a smaller model.n_embd") if model_alone else None
    monkeypatch.setattr(model_memory, "model_too_large", lambda cfg: too_large)
    cfg = OmegaConf.create({"data": {"batch_size": 8 if model_alone else 1}, "model": {"block_size": 64}})
    said = train_cli._smaller_settings(cfg, str(run))
    smaller = "a smaller model.n_embd" if model_alone else "a smaller model"
    assert said.endswith(f"; run again with less, e.g. {smaller}"), said
    cfg.data.batch_size = 8
    monkeypatch.setattr(model_memory, "model_too_large", lambda cfg: None)
    said = train_cli._smaller_settings(cfg, str(run))
    assert "; continue from its last checkpoint with less, e.g. chargpt-train " in said, said
    assert said.endswith(f"data.batch_size=4 'ckpt_path={run}'"), said
