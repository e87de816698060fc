"""Contract checks for policies and acquisition functions, calkit's own and third parties'.

A plugin's test suite calls these on its class; calkit's tests call them on every built-in::

    from calkit.testing import check_acquisition, check_policy

    def test_my_policy_keeps_the_contract():
        check_policy(MyPolicy)

Each check raises AssertionError naming the broken rule. They use small synthetic data and a
tiny MLP, and take a few seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from calkit.acquisition import Acquisition, ModelScoringContext, Selection
from calkit.config import RunConfig
from calkit.data import Dataset
from calkit.errors import AcquisitionError
from calkit.models import build_model
from calkit.policies import Policy, RoundContext, RoundData, Step
from calkit.tensors import DeviceData
from calkit.train import OptimizerConfig

PolicyArg = type[Policy] | Callable[[], Policy]


def blobs(n_pool: int = 240, n_classes: int = 3, seed: int = 0) -> Dataset:
    """Separable Gaussian blobs with a test split: data any sound policy learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3.0, size=(n_classes, 6))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        return (centers[y] + rng.normal(size=(n, 6))).astype(np.float32), y

    x, y = draw(n_pool)
    x_test, y_test = draw(90)
    return Dataset("contract-blobs", x, y, tuple(f"c{i}" for i in range(n_classes)),
                   np.arange(1000, 1000 + n_pool, dtype=np.int64), x_test, y_test)


# -- acquisition ------------------------------------------------------------------------------
class TableContext:
    """A scoring context answering from fixed random tables: no model needed."""

    def __init__(self, ids: np.ndarray, n_classes: int = 3, seed: int = 0):
        table = np.random.default_rng(1234)
        logits = table.normal(size=(len(ids), n_classes)) * 2.0
        probs = np.exp(logits - logits.max(1, keepdims=True))
        self._probs = dict(zip(ids.tolist(), probs / probs.sum(1, keepdims=True)))
        self._embeds = dict(zip(ids.tolist(), table.normal(size=(len(ids), 4))))
        self.rng = np.random.default_rng(seed)
        self.asked = 0

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        self.asked += 1
        return np.stack([self._probs[int(i)] for i in ids])

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        self.asked += 1
        return np.stack([self._embeds[int(i)] for i in ids])


def check_acquisition(acquisition: Acquisition) -> None:
    """An acquisition function picks k distinct candidates, with one finite score each, the same
    ones for the same seed, never an item outside the candidates, and refuses bad requests before
    it asks the model anything."""
    assert isinstance(acquisition, Acquisition), f"{acquisition!r} is not a calkit.acquisition.Acquisition"
    assert isinstance(getattr(acquisition, "name", None), str) and acquisition.name, "it needs a non-empty `name`"
    data = blobs()
    torch.manual_seed(0)
    model = build_model("mlp:8", data.input_shape, data.n_classes)
    candidates = np.concatenate([data.ids[5:120:3], data.ids[[200, 211, 239]]])
    contexts: list[Callable[[int], object]] = [
        lambda seed: TableContext(data.ids, seed=seed),
        lambda seed: ModelScoringContext(model, DeviceData(data), np.random.default_rng(seed), batch_size=16),
    ]
    for make_ctx in contexts:
        for k in (1, 7, len(candidates)):
            _check_selection(acquisition.select(make_ctx(3), candidates.copy(), k), candidates, k, acquisition.name)
        first, again = (acquisition.select(make_ctx(42), candidates, 9) for _ in range(2))
        assert np.array_equal(first.ids, again.ids), f"{acquisition.name}: the same seed picked different items"
        far = data.ids[[3, 77, 150, 238]]
        assert set(acquisition.select(make_ctx(0), far, 2).ids.tolist()) <= set(far.tolist())
    for bad_k in (0, -1, len(candidates) + 1, 1.5, True):
        ctx = TableContext(data.ids)
        try:
            acquisition.select(ctx, candidates, bad_k)  # type: ignore[arg-type]
        except AcquisitionError:
            assert ctx.asked == 0, f"{acquisition.name}: asked the model before refusing k={bad_k!r}"
        else:
            raise AssertionError(f"{acquisition.name}: accepted k={bad_k!r}")


def _check_selection(sel: Selection, candidates: np.ndarray, k: int, name: str) -> None:
    assert isinstance(sel, Selection), f"{name}: select must return a Selection"
    ids, scores = np.asarray(sel.ids), np.asarray(sel.scores)
    assert ids.ndim == 1 and len(ids) == k, f"{name}: asked for {k} items, got {len(ids)}"
    assert len(np.unique(ids)) == k, f"{name}: picked an item twice"
    assert np.isin(ids, candidates).all(), f"{name}: picked an item that was not a candidate"
    assert scores.shape == ids.shape and np.isfinite(scores).all(), f"{name}: needs one finite score per pick"


# -- policies ---------------------------------------------------------------------------------
def check_policy(policy: PolicyArg, rounds: int = 3) -> None:
    """A policy's steps draw only labeled items (replayed ones from the history), train every new
    item each epoch, match steps_per_epoch, are the same for the same seed; its loss is a finite
    scalar that trains; its state survives a save and load; its defaults name run settings; and a
    short run with it completes and repeats exactly."""
    make = policy if not isinstance(policy, Policy) else (lambda: copy.deepcopy(policy))  # fresh each time
    first = make()
    assert isinstance(first, Policy), f"{policy!r} does not make a calkit.policies.Policy"
    name = first.name
    assert isinstance(name, str) and name, "a policy needs a non-empty `name`"
    unknown = set(first.defaults(16)) - {f.name for f in dataclasses.fields(RunConfig)}
    assert not unknown, f"{name}: defaults() names settings a run does not have: {sorted(unknown)}"
    data = blobs()
    rnd = RoundData(1, new_ids=data.ids[40:60], history_ids=data.ids[:40])
    steps = _check_epoch(make, data, rnd, name)
    _check_loss_and_state(make, data, rnd, steps[0], name)
    _check_run(make, data, rounds, name)


def _context(policy: Policy, data: Dataset, rnd: RoundData, seed: int = 0) -> RoundContext:
    torch.manual_seed(0)
    device_data = DeviceData(data)
    device_data.set_labels(data.ids, data.y_train)
    model = build_model("mlp:16", data.input_shape, data.n_classes)
    return RoundContext(rnd, model, OptimizerConfig().build(model), device_data, np.random.default_rng(seed), 8)


def _check_epoch(make: Callable[[], Policy], data: Dataset, rnd: RoundData, name: str) -> list[Step]:
    policy = make()
    steps = list(policy.epoch_steps(_context(policy, data, rnd)))
    assert steps and all(isinstance(s, Step) for s in steps), f"{name}: epoch_steps must yield Steps"
    labeled, history = set(rnd.labeled_ids.tolist()), set(rnd.history_ids.tolist())
    for step in steps:
        ids = step.ids.tolist()
        assert set(ids) <= labeled, f"{name}: a step holds items that are not labeled"
        assert len(set(ids)) == len(ids), f"{name}: a step holds an item twice"
        assert 0 <= step.n_new <= len(ids), f"{name}: n_new out of range"
        assert set(step.replay_ids.tolist()) <= history, f"{name}: replayed an item that is not history"
    trained = set(np.concatenate([s.ids for s in steps]).tolist())
    assert set(rnd.new_ids.tolist()) <= trained, f"{name}: an epoch left new items out"
    assert policy.steps_per_epoch(rnd, 8) == len(steps), f"{name}: steps_per_epoch disagrees with epoch_steps"
    again = list(make().epoch_steps(_context(policy, data, rnd)))
    same = len(again) == len(steps) and all(np.array_equal(a.ids, b.ids) for a, b in zip(steps, again))
    assert same, f"{name}: the same seed gave other steps"
    return steps


def _check_loss_and_state(make: Callable[[], Policy], data: Dataset, rnd: RoundData, step: Step, name: str) -> None:
    policy = make()
    warmup = RoundData(0, new_ids=rnd.history_ids, history_ids=rnd.history_ids[:0])
    ctx = _context(policy, data, warmup)
    policy.end_round(ctx)  # e.g. stored targets for the history, which the later round replays
    ctx = _context(policy, data, rnd)
    out = policy.loss(step, ctx)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss), f"{name}: the loss must be a finite scalar"
    assert out.loss.requires_grad, f"{name}: the loss does not depend on the model's parameters"
    assert out.logits.shape[0] == len(step.ids), f"{name}: one row of logits per item of the step"
    restored = make()
    restored.load_state_dict(policy.state_dict())
    again = restored.loss(step, _context(restored, data, rnd))
    assert torch.allclose(out.loss, again.loss), f"{name}: its state does not survive state_dict/load_state_dict"


def _check_run(make: Callable[[], Policy], data: Dataset, rounds: int, name: str) -> None:
    from calkit.run import Run

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in ("a", "b"):
            run = Run.create(Path(tmp) / attempt, dataset=data, policy=make(), model="mlp:16", initial=30,
                             round_size=20, rounds=rounds, epochs=2, batch_size=16)
            status = run.advance()
            assert status.complete, f"{name}: a simulated run did not complete ({status})"
            results.append([(r["labeled"], r["test_accuracy"], r["sample_gradients"]) for r in run.metrics()])
            run.close()
    assert results[0] == results[1], f"{name}: the same seed gave different runs"
