"""What a training run raises when it stops without finishing: each message says what to do next."""

from __future__ import annotations


class RunDirError(ValueError):
    """The run directory and the request disagree (resume without a checkpoint, changed settings, ...)."""


class RunDirExistsError(RunDirError, FileExistsError):
    """A new run was asked for in a directory that already holds one (pass resume or overwrite)."""


class DivergedError(FloatingPointError):
    """The weights or the training loss became non-finite; nothing non-finite was written."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; the run saved a checkpoint at ``step`` (when it has a run directory).

    signum: the signal's number (the command exits with 128 + signum, as a shell does).
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        import signal

        name = signal.Signals(signum).name
        saved = f"checkpoint saved to {checkpoint}; continue with --resume" if checkpoint else "nothing saved"
        super().__init__(f"interrupted by {name} after step {step}: {saved}")
