"""The README's Python API example runs as written (on a freshly trained run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chargpt.cli import train
from conftest import run_cli, train_args

README = Path(__file__).parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make train", "make test"]


def test_python_api_example_runs(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    assert run_cli(train.main, *train_args(corpus, run_dir, "sample.max_new_tokens=0")) == 0
    capsys.readouterr()
    code = re.sub(r'chargpt\.load\("[^"]+"\)', f'chargpt.load("{run_dir}")', python_example())
    code = code.replace('"ROMEO:"', '"The"').replace('"JULIET:"', '"A"')  # the test corpus's letters
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert len(out) >= 300  # 200 + 100 generated characters and a newline
