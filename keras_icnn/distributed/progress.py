"""The client's progress over the targets of a Dask run: a bar redrawn in place on a
terminal (one line per finished batch otherwise), with the workers' messages above it."""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress over ``total`` targets; ``quiet``: the workers' messages only, no bar."""

    def __init__(self, total, quiet=False, stream=None, width=30):
        self.total, self.quiet, self.width = total, quiet, width
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def _clear(self):
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False

    def note(self, text):
        """Print the lines of ``text`` (above the bar)."""
        text = text.rstrip("\n")
        if not text:
            return
        self._clear()
        print(text, flush=True)
        self._draw()

    def line(self):
        n = self.done + self.failed
        filled = self.width * n // max(1, self.total)
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {n}/{self.total} target(s)"
                f"{failed}, {time.monotonic() - self.start:.0f} s")

    def _draw(self):
        if self.quiet or not self.tty:
            return
        self.stream.write("\r" + self.line())
        self.stream.flush()
        self._drawn = True

    def advance(self, done=0, failed=0):
        """``done`` more targets written, ``failed`` more failed."""
        self.done, self.failed = self.done + done, self.failed + failed
        if self.quiet:
            return
        if self.tty:
            self._clear()
            self._draw()
        else:
            print(self.line(), file=self.stream, flush=True)

    def close(self):
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
