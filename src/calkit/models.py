"""Small reference networks and the few model utilities the rest of calkit needs.

Any ``nn.Module`` that maps a batch of features to logits works with calkit. Parts that need
embeddings (diversity-aware acquisition, submodular replay) go through :func:`embed` or
:func:`logits_and_embeddings`, and :func:`embedding_source` alone decides where the embeddings
come from: the model's own ``embed(x)`` method when it has one, otherwise the input of its last
``nn.Linear`` layer (the penultimate features of a usual classifier), read through a forward hook
so ``forward`` never changes what it returns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from calkit.errors import ConfigError

MODEL_KINDS = ("mlp", "convnet", "resnet18")


@dataclass(frozen=True)
class ModelSpec:
    """A model named by a short string: ``mlp``, ``mlp:512-256``, ``convnet:32-64``, ``resnet18``.

    The numbers are hidden widths for the MLP, channel counts of the conv blocks for the
    ConvNet, and the four stage widths for ResNet-18. ``dropout`` applies before every hidden-to-hidden or hidden-to-output layer.
    """

    kind: str
    widths: tuple[int, ...]
    dropout: float = 0.0

    @classmethod
    def parse(cls, text: str, dropout: float = 0.0) -> "ModelSpec":
        m = re.fullmatch(r"\s*([a-z0-9_]+)\s*(?::\s*([0-9]+(?:\s*-\s*[0-9]+)*))?\s*", (text or "").lower())
        if not m:
            raise ConfigError(f"cannot parse model spec {text!r}; examples: 'mlp', 'mlp:512-256', 'convnet:32-64'")
        kind = m.group(1)
        if kind not in MODEL_KINDS:
            raise ConfigError(f"unknown model {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
        widths = tuple(int(w) for w in m.group(2).split("-")) if m.group(2) else DEFAULT_WIDTHS[kind]
        if any(w <= 0 for w in widths):
            raise ConfigError(f"model widths must be positive, got {widths}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        return cls(kind, widths, dropout)

    def __str__(self) -> str:
        return f"{self.kind}:{'-'.join(map(str, self.widths))}"


DEFAULT_WIDTHS = {"mlp": (512, 256), "convnet": (32, 64), "resnet18": (64, 128, 256, 512)}


class BodyHead(nn.Module):
    """A feature extractor ``body`` and a linear ``head``: embeddings are the body's output."""

    body: nn.Module
    head: nn.Linear

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class MLP(BodyHead):
    """Flatten, then ``Linear-ReLU`` blocks, then a linear head."""

    def __init__(self, in_features: int, widths: tuple[int, ...], n_classes: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for w in widths:
            layers += [nn.Linear(prev, w), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, n_classes)


class ConvNet(BodyHead):
    """Conv-BN-ReLU-pool blocks, then the flattened feature map through one hidden layer.

    Keeps the spatial layout (no global pooling), which small images need; trains at a few
    thousand 28x28 images per second on two CPU cores.
    """

    def __init__(self, in_shape: tuple[int, ...], channels: tuple[int, ...], n_classes: int, dropout: float = 0.0):
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError(f"convnet needs image input (C, H, W), got per-item shape {in_shape}")
        blocks: list[nn.Module] = []
        prev, (height, width) = in_shape[0], in_shape[1:]
        for c in channels:
            blocks += [nn.Conv2d(prev, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if min(height, width) >= 4:
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            prev = c
        hidden = 2 * prev
        blocks += [nn.Flatten(), nn.Linear(prev * height * width, hidden), nn.ReLU()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, n_classes)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (projected when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(BodyHead):
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool): the CAL paper's vision model."""

    def __init__(self, in_shape: tuple[int, ...], widths: tuple[int, ...], n_classes: int):
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError(f"resnet18 needs image input (C, H, W), got per-item shape {in_shape}")
        if len(widths) != 4:
            raise ConfigError(f"resnet18 takes four stage widths, got {widths}")
        layers: list[nn.Module] = [nn.Conv2d(in_shape[0], widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        prev = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(prev, w, stride), BasicBlock(w, w, 1)]
            prev = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, n_classes)


def build_model(spec: ModelSpec | str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A freshly initialised model; seed torch first for reproducible weights."""
    if isinstance(spec, str):
        spec = ModelSpec.parse(spec)
    if spec.kind == "mlp":
        return MLP(math.prod(input_shape), spec.widths, n_classes, spec.dropout)
    if spec.kind == "resnet18":
        return ResNet18(input_shape, spec.widths, n_classes)
    return ConvNet(input_shape, spec.widths, n_classes, spec.dropout)


#: Forward-pass equivalents that logits *and* embeddings of one item cost, per source (the
#: model's own ``embed`` runs besides ``forward``; the other two share one pass).
_PASSES = {"body": 1, "embed": 2, "last_linear": 1}


def embedding_source(model: nn.Module) -> str:
    """How calkit reads embeddings from ``model``; the one place that decides it.

    - ``"body"``: a :class:`BodyHead` with calkit's own ``embed`` and ``forward``: one pass through
      the body gives the embeddings, and the head on them the logits.
    - ``"embed"``: the model's own ``embed(x)`` method (a user model, or a BodyHead subclass that
      overrides ``embed`` or ``forward``), so a custom embedding is never bypassed.
    - ``"last_linear"``: no ``embed`` method; the input of the last ``nn.Linear`` layer.

    A submodule named ``embed`` (say an ``nn.Embedding``) is not an embed method. A model with
    neither an embed method nor an ``nn.Linear`` layer gets a :class:`ConfigError` saying so.
    """
    cls = type(model)
    if isinstance(model, BodyHead) and cls.embed is BodyHead.embed and cls.forward is BodyHead.forward:
        return "body"
    own = getattr(model, "embed", None)
    if callable(own) and not isinstance(own, nn.Module):
        return "embed"
    _last_linear(model)
    return "last_linear"


def forward_passes(model: nn.Module, with_embeddings: bool) -> int:
    """Forward-pass equivalents per item of :func:`logits_and_embeddings` (or of logits alone),
    so compute meters count a custom ``embed`` call as the extra pass it is."""
    return _PASSES[embedding_source(model)] if with_embeddings else 1


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Embeddings of ``x``, shape (n, d), from :func:`embedding_source` (call in eval mode, under
    ``torch.inference_mode``)."""
    if embedding_source(model) == "last_linear":
        return _hooked_forward(model, x)[1]
    return _rows(model.embed(x), x)


def logits_and_embeddings(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and embeddings of ``x``, in one pass where the source allows (the caller picks the
    mode and grad context)."""
    source = embedding_source(model)
    if source == "body":
        e = model.body(x)
        return model.head(e), e
    if source == "embed":
        return model(x), _rows(model.embed(x), x)
    return _hooked_forward(model, x)


def _rows(e: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A model's ``embed`` output as one flat row per item; anything else is a clear error."""
    if not isinstance(e, torch.Tensor) or e.ndim < 1 or e.shape[0] != x.shape[0]:
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ConfigError(f"model.embed(x) must return a tensor with one row per item ({x.shape[0]}), got {got}")
    return e.flatten(1) if e.ndim > 1 else e.unsqueeze(1)


def _hooked_forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits from ``model(x)`` and the input of its last ``nn.Linear``, captured on the way."""
    last_linear = _last_linear(model)
    captured: list[torch.Tensor] = []
    handle = last_linear.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ConfigError(
            "model has no embed() method and its forward never calls its last nn.Linear layer, "
            "so calkit cannot read embeddings from it; give the model an embed(x) method"
        )
    return logits, captured[-1].flatten(1)


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ConfigError(
            "model has no embed() method and no nn.Linear layer to read embeddings from; "
            "give it an embed(x) method returning one feature row per item"
        )
    return last


def batched_inference(
    model: nn.Module, x: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 4096, embeddings: bool = False
) -> torch.Tensor:
    """Logits (or embeddings) for every row of ``x`` in eval and inference mode.

    ``x`` is a tensor, cut into ``batch_size`` rows at a time, or the batches themselves (a
    stream from :class:`calkit.tensors.PoolData`). The model's train/eval mode is restored
    afterwards, so callers may score mid-training.
    """
    fn = (lambda chunk: embed(model, chunk)) if embeddings else model
    return _batched(model, x, batch_size, lambda chunk: (fn(chunk),))[0]


def batched_logits_and_embeddings(
    model: nn.Module, x: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both outputs for every row of ``x`` from one pass, in eval and inference mode."""
    logits, emb = _batched(model, x, batch_size, lambda chunk: logits_and_embeddings(model, chunk))
    return logits, emb


def inference_batches(
    model: nn.Module, x: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 4096, embeddings: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(logits, embeddings or None) batch by batch, in eval and inference mode: for callers that
    keep only what they reduce each batch to, so a pool of any size passes in bounded memory."""
    fn = (lambda chunk: logits_and_embeddings(model, chunk)) if embeddings else (lambda chunk: (model(chunk), None))
    return _eval_outputs(model, x, batch_size, fn)


def _eval_outputs(model: nn.Module, x: torch.Tensor | Iterable[torch.Tensor], batch_size: int, fn) -> Iterator:
    """``fn`` of every batch of ``x`` in eval and inference mode; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    chunks = (x[start : start + batch_size] for start in range(0, x.shape[0], batch_size)) if isinstance(
        x, torch.Tensor) else x
    try:
        with torch.inference_mode():
            for chunk in chunks:
                yield fn(chunk)
    finally:
        model.train(was_training)


def _batched(model: nn.Module, x: torch.Tensor | Iterable[torch.Tensor], batch_size: int, fn) -> list[torch.Tensor]:
    outs = [tuple(out) for out in _eval_outputs(model, x, batch_size, fn)]
    if not outs:
        return [torch.empty(0), torch.empty(0)]
    return [torch.cat(parts) for parts in zip(*outs)]


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
