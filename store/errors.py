"""One exception type for bad user input, so every entry point prints the same one-line error."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: names the file, the record and the field, in one line.

    The CLI prints ``str(error)`` and exits with code 2; nothing in the project has changed.
    """

    def __init__(self, file: str, message: str, record: str | None = None, field: str | None = None):
        self.file = str(file)
        self.record = record
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.file]
        if self.record:
            parts.append(self.record)
        if self.field:
            parts.append(f"field '{self.field}'")
        text = ": ".join(parts) + f": {self.message}"
        return " ".join(text.split())  # always one line, whatever the message held


class ProjectBusyError(Exception):
    """Another process is writing to this project (one writer at a time)."""
