"""The error every reader raises for a file it cannot use: it names the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Union


class DataError(ValueError):
    def __init__(self, path: Union[str, Path], problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # picklable, so a worker process's error reaches the parent intact
        return DataError, (self.path, self.problem)


class DataWarning(UserWarning):
    """A file was usable after a repair the user should know of (the message names the file)."""
