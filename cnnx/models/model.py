"""``Model``: a Sequential that knows its name, constructor arguments and input shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnx.nn.module import Module, Sequential


class Model(Sequential):
    """A named network built by a registered constructor.

    Attributes:
        name: registry name, e.g. ``"simple_cnn"``.
        config: the constructor's keyword arguments (seed included), so the same
            network can be rebuilt, e.g. when a checkpoint is loaded.
        input_shape: one sample's shape ``(C, H, W)``.
        num_classes: number of output logits.
    """

    def __init__(
        self,
        *modules: Module,
        name: str,
        config: dict[str, Any],
        input_shape: tuple[int, ...],
        num_classes: int,
    ):
        super().__init__(*modules)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "config", dict(config))
        object.__setattr__(self, "input_shape", tuple(input_shape))
        object.__setattr__(self, "num_classes", int(num_classes))

    def save(self, path: Any, optimizer: Any = None, **meta: Any) -> None:
        """Save this model, and optionally an optimizer, as a checkpoint (see cnnx.checkpoint)."""
        from cnnx.checkpoint import save_checkpoint

        save_checkpoint(path, self, optimizer, **meta)

    @classmethod
    def load(cls, path: Any) -> Model:
        """Rebuild a registered model from a checkpoint written by :meth:`save`."""
        from cnnx.checkpoint import load_checkpoint

        model = load_checkpoint(path).build_model()
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def summary(self) -> str:
        """A table of each layer, its output shape and parameter count, and the total."""
        return summarize(self, self.input_shape, title=f"{self.name} {_fmt(self.input_shape)}")


def _fmt(shape: tuple[int, ...]) -> str:
    return str(tuple(int(s) for s in shape))


def summarize(model: Sequential, input_shape: tuple[int, ...], title: str = "") -> str:
    """Run one zero sample through ``model`` (eval mode, restored after) and tabulate layers.

    Args:
        model: a Sequential (top-level children are listed).
        input_shape: one sample's shape, without the batch axis.
        title: first line of the table.

    Returns:
        The table as text; the parameter counts come from the parameters
        themselves, not from a formula.
    """
    was_training = model.training
    model.eval()
    try:
        dev = model.device
        x = dev.asarray(np.zeros((1, *input_shape), dtype=np.float32))
        rows = []
        with dev:  # the model's device, whatever device is current
            for index, layer in enumerate(model):
                x = layer(x)
                count = sum(p.size for p in layer.parameters())
                rows.append(
                    (str(index), repr(layer).replace("\n", " "), _fmt(tuple(x.shape[1:])), count)
                )
    finally:
        model.train(was_training)
    headers = ("#", "layer", "output shape", "params")
    widths = [max(len(headers[i]), *(len(str(r[i])) for r in rows)) for i in range(4)]
    line = "  ".join(
        f"{h:<{w}}" if i < 3 else f"{h:>{w}}"
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [title] if title else []
    out += [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(
                f"{v!s:<{w}}" if i < 3 else f"{v:>{w},}"
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    total = sum(r[3] for r in rows)
    out += ["-" * len(line), f"total parameters: {total:,}"]
    return "\n".join(out)
