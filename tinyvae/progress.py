"""Progress of long loops: a bar redrawn in place on a terminal, a plain line every 10 s when piped.

    progress = Progress()                       # on sys.stdout
    tinyvae.train(..., on_batch=progress.on_batch)   # "epoch 3/10: step 120/938 (13%) loss 98.12 ETA 41s"
    progress.start("IWAE bound (k=5)", n_batches, unit="batch")
    for i, batch in enumerate(batches, 1):
        ...
        progress.update(i)
    progress.finish()

On a terminal the bar is redrawn at most every 0.2 s and erased by ``finish``; in a log
(stdout piped to a file or ``tee``) a line is printed every :data:`PIPED_EVERY_S` seconds,
so a long epoch never leaves the log silent.
"""

import sys
import time

PIPED_EVERY_S = 10.0  # seconds between lines when the stream is not a terminal
TERMINAL_EVERY_S = 0.2  # seconds between redraws of the bar on a terminal


class Progress:
    """One task at a time: ``start(label, total)``, ``update(done, note)``, ``finish()``."""

    def __init__(self, stream=None, width=30, clock=time.perf_counter):
        self.stream = sys.stdout if stream is None else stream
        self.width, self.clock = width, clock
        self.terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = None

    def start(self, label, total, unit="step"):
        """Begin a task of ``total`` units; the first line or redraw comes after one interval."""
        self.label, self.total, self.unit = label, total, unit
        self.started = self.shown = self.clock()
        self.drawn = False

    def update(self, done, note=""):
        """``done`` of ``total`` units are finished; show it if the interval has passed."""
        now = self.clock()
        every = TERMINAL_EVERY_S if self.terminal else PIPED_EVERY_S
        if now - self.shown < every:
            return
        self.shown = now
        fraction = done / self.total
        eta = (now - self.started) * (1 - fraction) / fraction if fraction > 0 else float("nan")
        text = f"{self.unit} {done}/{self.total} ({100 * fraction:.0f}%){' ' + note if note else ''}  ETA {eta:.0f}s"
        if self.terminal:
            filled = int(self.width * fraction)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {text} ")
            self.drawn = True
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    def finish(self):
        """End the task; on a terminal, erase the bar so the next line starts clean."""
        if self.terminal and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.label = None

    def on_batch(self, epoch, step, n_steps, terms, epochs=None):
        """``tinyvae.train``'s on_batch hook: one task per epoch, labelled "epoch E/T"."""
        if self.label is None:
            self.start(f"epoch {epoch}" + (f"/{epochs}" if epochs else ""), n_steps)
        self.update(step, f"loss {terms['loss']:.2f}")
        if step == n_steps:
            self.finish()
