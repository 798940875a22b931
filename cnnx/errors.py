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
