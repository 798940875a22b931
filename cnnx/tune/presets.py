"""Named searches: ``cnnx tune PRESET``.

``textbook-mnist`` reruns the random search of notes 004 (§4.3, after the
textbook's chapter 6.5): ``weight_decay = 10 ** uniform(-8, -4)`` and
``lr = 10 ** uniform(-6, -2)``, i.e. both log-uniform, for plain SGD on the
textbook's two-layer MLP on a small slice of MNIST, judged on validation accuracy.
The textbook trains on 500 MNIST images (20 % of them held out for validation),
50 epochs of minibatches of 100, 100 trials; the preset does the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnx.tune.space import SearchSpace


@dataclass(frozen=True)
class TunePreset:
    """A search: base run fields (over the dataset's defaults), space, trials, seeds."""

    name: str
    description: str
    base: dict[str, Any]
    params: tuple[str, ...]
    trials: int
    seeds: tuple[int, ...] = (0,)
    sampler: str = "random"

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.parse(self.params)


def _textbook_mnist() -> TunePreset:
    return TunePreset(
        name="textbook-mnist",
        description=(
            "notes 004 §4.3: random search of lr = 10^U(-6,-2) and weight decay = "
            "10^U(-8,-4) for SGD on the textbook MLP (784-100-10), the first 500 MNIST test "
            "images (400 train / 100 validation, stratified), 50 epochs of batch 100, 100 trials"
        ),
        base={
            "dataset": "mnist",
            # The first 500 of the 10,000 test images: the MNIST files every machine of
            # ours has (the textbook takes its 500 from the training images).
            "dataset_options": {"split": "test", "limit": 500},
            "model": "mlp",
            "model_options": {},
            "optimizer": "sgd",
            "hyperparameters": {"lr": 0.01},
            "epochs": 50,
            "batch_size": 100,
            "val_fraction": 0.2,
        },
        params=("lr=loguniform:1e-6:1e-2", "weight_decay=loguniform:1e-8:1e-4"),
        trials=100,
    )


PRESETS: dict[str, Callable[[], TunePreset]] = {"textbook-mnist": _textbook_mnist}


def preset(name: str) -> TunePreset:
    """The search registered as ``name``.

    Raises:
        ValueError: no such preset (the message lists them).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown tune preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]()
