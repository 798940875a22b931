"""The --param search-space language of cnnx tune, and the random sampler's seeding."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from cnnx.tune.space import Param, SearchSpace, SpaceError, apply, parse_param  # noqa: E402
from cnnx.tune.study import best_trial, trial_seed  # noqa: E402


def test_parse_kinds():
    assert parse_param("lr=loguniform:1e-4:1e-1") == Param("lr", "loguniform", 1e-4, 1e-1)
    assert parse_param("beta1=uniform:0.5:0.99") == Param("beta1", "uniform", 0.5, 0.99)
    assert parse_param("hidden=int:32:256:32") == Param("hidden", "int", 32, 256, 32)
    assert parse_param("batch-size=logint:16:256") == Param("batch_size", "logint", 16, 256)
    choice = parse_param("optimizer=choice:adam,rmsprop,sgd")
    assert choice.choices == ("adam", "rmsprop", "sgd")
    assert parse_param("batch_size=choice:32,64,full").choices == (32, 64, None)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr", "expected NAME=KIND:ARGS"),
        ("lr=normal:0:1", "unknown kind 'normal'"),
        ("lr=loguniform:0:1", "log scale needs LOW > 0"),
        ("lr=uniform:0.2:0.1", "LOW must be smaller than HIGH"),
        ("lr=uniform:a:1", "'a' is not a number"),
        ("epochs=uniform:1:5", "epochs is an integer"),
        ("hidden=int:1.5:8", "integer bounds"),
        ("hidden=int:1:8:0", "step must be a positive integer"),
        ("optimizer=choice:adam,lion", "unknown optimizer 'lion'"),
        ("optimizer=uniform:0:1", "choice:NAME"),
        ("x=choice:a,a", "appears twice"),
    ],
)
def test_bad_params_name_the_flag(text, fragment):
    with pytest.raises(SpaceError) as info:
        parse_param(text)
    assert fragment in str(info.value)
    assert text.split("=")[0].split(":")[0] in str(info.value)


def test_space_checks():
    with pytest.raises(SpaceError, match="empty"):
        SearchSpace(())
    with pytest.raises(SpaceError, match="given twice"):
        SearchSpace.parse(["lr=uniform:0:1", "lr=uniform:0:2"])
    with pytest.raises(SpaceError, match="takes rho"):
        SearchSpace.parse(["rho=uniform:0.5:0.9"]).check("adam")
    SearchSpace.parse(["rho=uniform:0.5:0.9", "optimizer=choice:adam,rmsprop"]).check("adam")


def test_conditional_hyperparameters_follow_the_optimizer():
    space = SearchSpace.parse(
        ["beta1=uniform:0.5:0.99", "optimizer=choice:adam,sgd", "lr=uniform:0.1:0.2"]
    )
    assert space.names[0] == "optimizer"  # suggested first, the others depend on it
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(20):
        values = space.suggest(study.ask(), "adam")
        seen.add(values["optimizer"])
        assert ("beta1" in values) == (values["optimizer"] == "adam")
        assert 0.1 <= values["lr"] <= 0.2
    assert seen == {"adam", "sgd"}


def test_apply_routes_names_and_drops_hyperparameters_of_another_optimizer():
    base = {
        "optimizer": "adam", "hyperparameters": {"lr": 0.01, "beta1": 0.7}, "model_options": {},
        "epochs": 3,
    }  # fmt: skip
    fields = apply(base, {"optimizer": "sgd", "lr": 0.5, "hidden": 64, "epochs": 7})
    assert fields["optimizer"] == "sgd"
    assert fields["hyperparameters"] == {"lr": 0.5}
    assert fields["model_options"] == {"hidden": 64}
    assert fields["epochs"] == 7
    assert base["hyperparameters"] == {"lr": 0.01, "beta1": 0.7}  # not modified


def test_trial_seeds_differ_per_trial_and_repeat_per_seed():
    assert trial_seed(0, 1) == trial_seed(0, 1)
    assert len({trial_seed(0, k) for k in range(100)}) == 100
    assert trial_seed(0, 5) != trial_seed(1, 5)


def test_best_trial_breaks_exact_ties_on_validation_loss():
    study = optuna.create_study(direction="maximize")
    for value, loss in [(0.9, 0.30), (0.95, 0.40), (0.95, 0.20), (0.95, 0.20)]:
        trial = study.ask()
        trial.set_user_attr("val_loss", loss)
        study.tell(trial, value)
    best = best_trial(study.get_trials())
    assert (best.number, best.value, best.user_attrs["val_loss"]) == (2, 0.95, 0.20)
