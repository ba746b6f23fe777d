"""Child process for the cleaner crash test: runs a cleaning (or just opens the log) and
SIGKILLs itself when the swap protocol reaches a given step.

``python -m tests.unit.storage.cleaner_crash_child DIR STEP clean|open NOW_MS`` prints each step name as it
completes, so the parent knows the step was reached.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from kafkacompat.storage import cleaner_swap
from kafkacompat.storage.cleaner import clean_log
from kafkacompat.storage.partition_log import PartitionLog

from .cleaner_helpers import compact_config


def main() -> None:
    directory, target, action, now_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def hook(name: str) -> None:
        sys.stdout.write(name + "\n")
        sys.stdout.flush()
        if name == target:
            os.kill(os.getpid(), signal.SIGKILL)

    cleaner_swap.STEP_HOOK = hook
    log = PartitionLog(Path(directory), compact_config())
    if action == "clean":
        clean_log(log, now_ms=now_ms)
    sys.stdout.write("finished\n")


if __name__ == "__main__":
    main()
