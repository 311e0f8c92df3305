"""The few exception types the CLI turns into one line and an exit code."""

from __future__ import annotations


class ImgclfError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class ParamsError(ImgclfError):
    """params.yaml is missing, malformed or out of bounds."""

    exit_code = 2


class DataValidationError(ImgclfError):
    """The image folder failed its expectation suite."""


class StageInputError(ImgclfError):
    """A stage's input is missing, stale or was produced by a failed run."""


class DemoDataError(ImgclfError):
    """The demo data set could not be exported without touching user files."""


class DownloadUnavailable(ImgclfError):
    """A file Keras downloads into its cache (ImageNet weights, a keras.datasets archive) is
    not there and could not be fetched. Exit 2, as for params.yaml: a retry cannot fix it."""

    exit_code = 2


class TrackingUnavailable(ImgclfError):
    """The tracking server did not answer: a transient fault, worth retrying later."""

    exit_code = 75  # EX_TEMPFAIL (sysexits.h): the flow retries this stage, unlike exit 1 or 2


class Stopped(ImgclfError):
    """SIGTERM or SIGINT asked a command to stop: it stopped cleanly (the flow run under way
    ended Cancelled, DVC's locks released). Exit 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.exit_code = signum, 128 + signum


class LineageError(ImgclfError):
    """A registered version's record cannot be followed: an unknown version or alias, its
    commit not in this repository, its data in neither DVC's cache nor the remote, a dirty
    tree's diff never logged. Exit 2, as for params.yaml: rerunning cannot fix it."""

    exit_code = 2
