"""Commands that train nothing start without Lightning: importing it takes seconds (half of a
command's start-up on a 2-core CPU), which sampling, serving, evaluation set-up, export, the report
and `import chargpt` need not pay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import make_checkpoint

CHECK = """
import sys
import chargpt
from chargpt.cli import eval, export, report, sample, serve
[text] = chargpt.load(sys.argv[1]).generate("ab", max_new_tokens=5, seed=1)
assert len(text) == 5, text
print(sorted(name for name in sys.modules if name.split(".")[0] == "lightning"))
"""


def test_sampling_from_a_checkpoint_never_imports_lightning(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "model.ckpt")
    result = subprocess.run([sys.executable, "-c", CHECK, str(ckpt)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
