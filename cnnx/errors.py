"""Exception types that cnnx raises on purpose.

Every error a user can cause by a bad flag, file or array is one of these (or a
``ValueError``/``TypeError`` naming the argument), with a message that says what
was wrong and what was expected. The CLI prints the message on one line.
"""


class CnnxError(Exception):
    """Base class of all cnnx-specific errors."""


class DeviceError(CnnxError):
    """A requested device cannot be used (no CuPy, no GPU, bad index, broken install)."""


class DatasetError(CnnxError):
    """A data file is missing, malformed, or cannot be obtained."""


class TrainingDiverged(CnnxError):
    """The training loss became NaN or infinite.

    Attributes:
        epoch: 1-based epoch in which the non-finite loss appeared.
        last_finite_loss: the last finite mean loss seen before it, or None.
    """

    def __init__(self, message: str, epoch: int, last_finite_loss: float | None):
        super().__init__(message)
        self.epoch = epoch
        self.last_finite_loss = last_finite_loss


class OutputExistsError(CnnxError):
    """An output directory already holds results, and neither overwriting nor resuming was asked."""


class CheckpointError(CnnxError):
    """A checkpoint file is not a valid cnnx checkpoint or does not fit the model."""


class ConfigError(CnnxError, ValueError):
    """A run definition (a ``config.json``, a ``--config`` file, a dict) is malformed.

    The one-line message names the source (a file, or ``configuration 'name'``) and the
    field, e.g. ``runs/a/config.json: epochs must be a positive integer, got 'ten'``.
    It is also a ``ValueError``, as bad arguments to cnnx's functions are.

    Attributes:
        field: the field at fault (``"epochs"``, ``"hyperparameters.lr"``), when one is.
        detail: the message without its source and field, so a caller can name the
            field its own way (the CLI names the flag: ``--val-fraction 0.001 ...``).
    """

    def __init__(self, message: str, *, field: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.field = field
        self.detail = detail if detail is not None else message


class RunLockedError(CnnxError):
    """A run or experiment directory is in use by another process (its PID is named)."""
