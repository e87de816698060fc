"""Model specs, the reference networks and the embedding / batched inference utilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from calkit.errors import ConfigError
from calkit.models import (
    DEFAULT_WIDTHS,
    MLP,
    ConvNet,
    ModelSpec,
    as_numpy,
    batched_inference,
    build_model,
    batched_logits_and_embeddings,
    count_parameters,
    embed,
    embedding_source,
    forward_passes,
    logits_and_embeddings,
)
from tests.helpers import UserNet, UserNetWithEmbed

# --------------------------------------------------------------------------------------------
# ModelSpec
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, widths",
    [
        ("mlp", "mlp", DEFAULT_WIDTHS["mlp"]),
        ("convnet", "convnet", DEFAULT_WIDTHS["convnet"]),
        ("mlp:64-32", "mlp", (64, 32)),
        ("mlp:7", "mlp", (7,)),
        ("convnet:8-16", "convnet", (8, 16)),
        (" mlp : 64 - 32 ", "mlp", (64, 32)),
    ],
)
def test_spec_parse_accepts(text, kind, widths):
    spec = ModelSpec.parse(text)
    assert spec.kind == kind
    assert spec.widths == tuple(widths)
    assert spec.dropout == 0.0


def test_spec_str_round_trips():
    for text in ("mlp:64-32", "convnet:8-16", "mlp"):
        spec = ModelSpec.parse(text)
        assert ModelSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["resnet", "mlp:0", "mlp:a", "mlp:64-0", "mlp:", "mlp:-3", "", "MLP:x", "mlp:64--32"])
def test_spec_parse_rejects(text):
    with pytest.raises(ConfigError):
        ModelSpec.parse(text)


def test_spec_unknown_kind_lists_choices():
    with pytest.raises(ConfigError, match="mlp.*convnet|convnet.*mlp"):
        ModelSpec.parse("resnet")


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_spec_rejects_bad_dropout(dropout):
    with pytest.raises(ConfigError):
        ModelSpec.parse("mlp", dropout=dropout)


def test_spec_keeps_dropout():
    assert ModelSpec.parse("mlp:4", dropout=0.25).dropout == 0.25


# --------------------------------------------------------------------------------------------
# build_model shapes
# --------------------------------------------------------------------------------------------


def test_mlp_on_vectors():
    model = build_model("mlp:16-8", (6,), 3)
    assert isinstance(model, MLP)
    out = model(torch.randn(5, 6))
    assert out.shape == (5, 3)


def test_mlp_on_images_flattens():
    model = build_model("mlp:16", (1, 8, 8), 4)
    assert isinstance(model, MLP)
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 4)
    assert embed(model.eval(), torch.randn(3, 1, 8, 8)).shape == (3, 16)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 8, 8)])
def test_convnet_on_images(shape):
    model = build_model("convnet:4-8", shape, 10)
    assert isinstance(model, ConvNet)
    model.eval()
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    assert embed(model, torch.randn(2, *shape)).shape == (2, 16)  # 2 * last channel count


def test_convnet_trains_a_step_in_train_mode():
    model = build_model("convnet:4", (1, 8, 8), 3)
    out = model(torch.randn(4, 1, 8, 8))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("shape", [(6,), (8, 8)])
def test_convnet_rejects_non_image_input(shape):
    with pytest.raises(ConfigError):
        build_model("convnet:4", shape, 3)


def test_build_model_accepts_spec_object_and_applies_dropout():
    spec = ModelSpec.parse("mlp:8", dropout=0.5)
    model = build_model(spec, (6,), 3)
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    assert not any(isinstance(m, nn.Dropout) for m in build_model("mlp:8", (6,), 3).modules())


def test_build_model_rejects_bad_spec_string():
    with pytest.raises(ConfigError):
        build_model("resnet", (6,), 3)


def test_count_parameters_and_as_numpy():
    model = build_model("mlp:4", (6,), 3)
    assert count_parameters(model) == 6 * 4 + 4 + 4 * 3 + 3
    t = torch.ones(2, 2, requires_grad=True) * 2
    arr = as_numpy(t)
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 2) and (arr == 2).all()


def test_same_torch_seed_gives_identical_init():
    def weights(seed):
        torch.manual_seed(seed)
        return build_model("mlp:8-4", (6,), 3).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)

    torch.manual_seed(3)
    conv_a = build_model("convnet:4", (1, 8, 8), 3).state_dict()
    torch.manual_seed(3)
    conv_b = build_model("convnet:4", (1, 8, 8), 3).state_dict()
    assert all(torch.equal(conv_a[k], conv_b[k]) for k in conv_a)


# --------------------------------------------------------------------------------------------
# embed
# --------------------------------------------------------------------------------------------


def test_embed_mlp_is_penultimate_features():
    torch.manual_seed(0)
    model = build_model("mlp:16-8", (6,), 3).eval()
    x = torch.randn(7, 6)
    with torch.no_grad():
        e = embed(model, x)
        assert e.shape == (7, 8)
        # the head applied to the embedding is the forward output
        torch.testing.assert_close(model.head(e), model(x))


def test_embed_uses_hook_for_plain_sequential():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    assert not hasattr(model, "embed")
    x = torch.randn(4, 6)
    with torch.no_grad():
        before = model(x)
        e = embed(model, x)
        after = model(x)
        expected = torch.relu(model[0](x))
    assert e.shape == (4, 5)
    torch.testing.assert_close(e, expected)
    torch.testing.assert_close(before, after)  # forward output unchanged
    assert not model[2]._forward_hooks, "hook left behind"
    # embedding then last layer reproduces the forward output
    with torch.no_grad():
        torch.testing.assert_close(model[2](e), before)


def test_embed_hook_removed_even_when_forward_fails():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3)

        def forward(self, x):
            raise RuntimeError("broken")

    model = Broken()
    with pytest.raises(RuntimeError):
        embed(model, torch.randn(2, 6))
    assert not model.lin._forward_hooks


def test_embed_rejects_model_without_linear_layer():
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    with pytest.raises(ConfigError):
        embed(model, torch.randn(2, 6))


class _MLPWithOwnEmbed(MLP):
    """A calkit MLP whose subclass redefines the embedding: the override must win."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return -self.body(x)


class _WithEmbeddingLayer(nn.Module):
    """A submodule called ``embed`` is a layer, not an embed method."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.embed(x)))


def test_embedding_source_prefers_a_models_own_embed():
    assert embedding_source(build_model("mlp:8", (6,), 3)) == "body"
    assert embedding_source(UserNetWithEmbed()) == "embed"
    assert embedding_source(_MLPWithOwnEmbed(6, (8,), 3)) == "embed"
    assert embedding_source(UserNet()) == "last_linear"
    assert embedding_source(_WithEmbeddingLayer()) == "last_linear"
    with pytest.raises(ConfigError, match="no embed\\(\\) method and no nn.Linear"):
        embedding_source(nn.Sequential(nn.Flatten(), nn.ReLU()))


def test_a_user_models_embed_is_what_every_embedding_path_returns():
    torch.manual_seed(0)
    model = UserNetWithEmbed().eval()
    x = torch.randn(9, 6)
    with torch.no_grad():
        logits, emb = logits_and_embeddings(model, x)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(emb, 10.0 * x[:, :2])
        torch.testing.assert_close(embed(model, x), 10.0 * x[:, :2])
    calls = model.embed_calls
    logits_b, emb_b = batched_logits_and_embeddings(model, x, batch_size=4)
    assert model.embed_calls == calls + 3, "one embed call per batch"
    torch.testing.assert_close(emb_b, 10.0 * x[:, :2])
    torch.testing.assert_close(batched_inference(model, x, embeddings=True), 10.0 * x[:, :2])
    torch.testing.assert_close(logits_b, logits)


def test_a_subclass_overriding_embed_is_not_bypassed():
    torch.manual_seed(0)
    model = _MLPWithOwnEmbed(6, (8,), 3).eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        logits, emb = logits_and_embeddings(model, x)
        torch.testing.assert_close(emb, -model.body(x))
        torch.testing.assert_close(logits, model(x))


def test_a_layer_named_embed_is_not_called_as_the_embedding():
    torch.manual_seed(0)
    model = _WithEmbeddingLayer().eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(embed(model, x), torch.tanh(model.embed(x)))


def test_forward_passes_counts_a_separate_embed_call():
    assert forward_passes(UserNetWithEmbed(), with_embeddings=True) == 2
    assert forward_passes(UserNetWithEmbed(), with_embeddings=False) == 1
    assert forward_passes(build_model("mlp:8", (6,), 3), with_embeddings=True) == 1
    assert forward_passes(UserNet(), with_embeddings=True) == 1


def test_an_embed_without_one_row_per_item_is_a_clear_error():
    class Summed(UserNet):
        def embed(self, x):
            return x.sum(0)

    with pytest.raises(ConfigError, match="one row per item"):
        embed(Summed(), torch.randn(4, 6))


def test_a_forward_that_skips_its_last_linear_is_a_clear_error():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3)
            self.unused = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x)

    with pytest.raises(ConfigError, match="never calls its last nn.Linear"):
        logits_and_embeddings(Skips(), torch.randn(2, 6))


# --------------------------------------------------------------------------------------------
# batched_inference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 50, 4096])
def test_batched_inference_equals_full_forward_in_eval(batch_size):
    torch.manual_seed(0)
    model = build_model(ModelSpec.parse("mlp:16-8", dropout=0.5), (6,), 3)
    model.train()
    x = torch.randn(50, 6)
    out = batched_inference(model, x, batch_size=batch_size)
    assert model.training, "train mode not restored"
    model.eval()
    with torch.no_grad():
        full = model(x)
    model.train()
    assert out.shape == (50, 3)
    assert out.requires_grad is False
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)
    emb = batched_inference(model, x, batch_size=batch_size, embeddings=True)
    assert emb.shape == (50, 8)
    assert model.training


def test_batched_inference_keeps_eval_mode_and_convnet_batchnorm_stats():
    torch.manual_seed(0)
    model = build_model("convnet:4", (1, 8, 8), 3).eval()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(9, 1, 8, 8)
    out = batched_inference(model, x, batch_size=4)
    assert not model.training
    assert out.shape == (9, 3)
    # eval mode: BatchNorm running statistics are not updated
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6)


def test_batched_inference_restores_train_mode_after_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom().train()
    with pytest.raises(RuntimeError):
        batched_inference(model, torch.randn(3, 6))
    assert model.training


def test_resnet18_cifar_variant_shapes_and_embedding():
    import torch

    from calkit.models import ResNet18, build_model, embed

    model = build_model("resnet18:8-16-16-32", (1, 28, 28), 10)
    assert isinstance(model, ResNet18)
    x = torch.zeros(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert embed(model.eval(), x).shape == (3, 32)
    with pytest.raises(ConfigError, match="image input"):
        build_model("resnet18", (6,), 3)
    with pytest.raises(ConfigError, match="four stage widths"):
        build_model("resnet18:8-16", (1, 8, 8), 3)
