"""Timed `rasa` training runs: the full retraining (`train_s`) and the helper that runs them."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from tqdm import tqdm

from bot import paths
from bot.stack import server_environment

RASA = Path(sys.executable).parent / "rasa"


def run_with_progress(command: List[str], cwd: Path, log: Path, description: str) -> float:
    """Run a command (output to `log`) with an elapsed-time progress bar; its wall time in s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as output, tqdm(desc=description, unit="s", bar_format="{desc}: {elapsed} elapsed") as bar:
        process = subprocess.Popen(command, cwd=cwd, env=server_environment(), stdout=output, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                time.sleep(1)
                bar.update(1)
        except BaseException:
            process.terminate()
            process.wait()
            raise
    elapsed = time.monotonic() - start
    if process.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({process.returncode}); see {log}")
    return elapsed


def full_train_seconds() -> float:
    """Wall time of `rasa train --force` from the repository root into a temporary --out."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        command = [str(RASA), "train", "--force", "--out", out, "--fixed-model-name", "bench"]
        return run_with_progress(command, paths.ROOT, paths.REPORTS_DIR / "train.log", "rasa train --force")
