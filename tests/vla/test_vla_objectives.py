"""The five objectives and the AR control: overfitting a synthetic set, decoding procedures, schedules, inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from vla_fixtures import IMAGE_SIZE, synthetic_samples

from dreamvlx.modeling.dream_vla import DreamVLA
from dreamvlx.vla.batch import VLABatchBuilder
from dreamvlx.vla.objectives import FORWARD_KEYS, build_vla_objective, decode_ar, decode_ddim, decode_flow
from dreamvlx.vla.schedulers import (
    DDIMScheduler,
    flow_inference_times,
    sample_flow_times,
    squaredcos_cap_v2_betas,
)


@dataclass(frozen=True)
class Recipe:
    """How :func:`overfit` trains one objective on ``samples`` synthetic pairs, and how close ``predict_action`` must
    then come to every target chunk, in normalised units ([-1, 1]; a random chunk is ~0.6 off on average)."""

    objective: str
    steps: int
    lr: float
    samples: int
    max_error: float  # bound on every value of every chunk
    mean_error: float | None = None  # bound on the mean over each chunk (None: only the max is bounded)
    draws: int = 1  # (noise, time) draws per sample and step: each sample sits `draws` times in the batch
    cosine: bool = False  # 50-step linear warm-up, then cosine learning-rate decay to 0
    settings: dict[str, Any] = field(default_factory=dict)  # VLASettings overrides


OVERFIT = [
    Recipe("discrete", 300, 3e-3, 4, 1e-6),  # discrete decoding returns exact bin centres
    Recipe("discrete_diffusion", 300, 3e-3, 4, 1e-6),
    Recipe("ar", 200, 3e-3, 4, 1e-6),
    Recipe("l1", 400, 5e-3, 4, 0.2),
    # The noise objectives (~25-30 s each) need several (noise, time) draws per sample and step and a decaying
    # learning rate. Their bounds hold for model seeds 0-4 (worst chunk: DDIM 0.40 max / 0.17 mean, flow 0.49 /
    # 0.14; typical 0.1-0.3 / 0.02-0.08): a width-64 backbone maps the noisy values imprecisely (the head reads the
    # state one slot before each value, so the last action dim must be copied by attention) and start-noise values
    # in the Gaussian tails stay off. DDIM samples with 10 of its 50 training timesteps: 50 sampling steps compound
    # the same errors (often several times the mean error at this budget); both samplers are exact with exact
    # inputs (test_samplers_recover_the_target_with_the_exact_noise_or_velocity).
    Recipe("ddim", 700, 5e-3, 2, 0.5, 0.2, draws=8, cosine=True, settings={"ddim_inference_steps": 10}),
    Recipe("flow", 1400, 5e-3, 2, 0.6, 0.2, draws=4, cosine=True),
]


def overfit(
    model: DreamVLA, samples: list[dict], steps: int, lr: float, draws: int = 1, cosine: bool = False
) -> list[float]:
    """Full-batch AdamW through the objective's two-phase interface (as the trainer calls it); returns the losses.

    Each sample appears ``draws`` times in the batch under distinct dataset indices, so the noise objectives see
    ``draws`` independent (noise, time) draws of it per step; ``cosine``: the learning rate warms up linearly over
    50 steps and then decays to 0 along a cosine."""
    policy = model.policy
    builder = VLABatchBuilder(model.processor, policy.layout, model.settings.use_proprio)
    batch = builder.collate(samples * draws, list(range(len(samples) * draws)))
    objective = build_vla_objective(model.settings, seed=0, mask_token_id=policy.layout.mask_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = (
        torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        )
        if cosine
        else None
    )
    model.train()
    losses = []
    for step in range(steps):
        prepared = objective.prepare(batch, step)
        loss = objective.loss_sum(model, prepared) / max(prepared.count, 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@pytest.mark.parametrize("recipe", OVERFIT, ids=[r.objective for r in OVERFIT])
def test_objective_overfits_and_predict_action_returns_the_chunk(
    make_vla, statistics, recipe: Recipe
) -> None:
    model = make_vla(recipe.objective, **recipe.settings)
    samples = synthetic_samples(statistics, count=recipe.samples)
    losses = overfit(model, samples, recipe.steps, recipe.lr, recipe.draws, recipe.cosine)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    scale = (
        statistics["metaworld_test"].action.q99 - statistics["metaworld_test"].action.q01
    )  # robot units per 2
    for sample in samples:
        generator = torch.Generator().manual_seed(1)
        actions = model.predict_action(
            [sample["raw_image"]], sample["instruction"], sample["raw_proprio"], generator=generator
        )
        assert actions.shape == (8, 4) and actions.dtype == np.float32
        error = np.abs(actions - sample["raw_actions"]) / (scale / 2)  # back to normalised units
        name = recipe.objective
        assert error.max() <= recipe.max_error, f"{name}: max normalised error {error.max():.4f}"
        if recipe.mean_error is not None:
            assert error.mean() <= recipe.mean_error, f"{name}: mean normalised error {error.mean():.4f}"


@pytest.mark.parametrize(("objective", "times"), [("ddim", [7.0, 31.0]), ("flow", [0.25, 0.8])])
def test_noisy_heads_see_the_same_inputs_in_training_and_in_predict_action(
    make_vla, statistics, objective, times
) -> None:
    """The right-padded training batch and the left-padded ``predict_action`` batch put the same noisy chunk and
    time into the same slots: for equal inputs the head outputs agree, so the sampler queries what the loss trains."""
    model = make_vla(objective)
    samples = synthetic_samples(statistics, count=2)
    samples[1]["instruction"] = "push the puck left and then close the window"  # rows of different lengths
    policy = model.policy
    training = VLABatchBuilder(model.processor, policy.layout, model.settings.use_proprio).collate(
        samples, [0, 1]
    )
    inference, _ = policy.prepare(
        [[s["raw_image"]] for s in samples],
        [s["instruction"] for s in samples],
        [s["raw_proprio"] for s in samples],
        None,
    )
    assert inference["attention_mask"][0, 0] == 0 and training["attention_mask"][0, -1] == 0  # both padded
    noisy, time = torch.randn(2, 8, 4), torch.tensor(times)
    with torch.no_grad():
        outputs = [
            model(
                **{k: batch[k] for k in FORWARD_KEYS},
                noisy_actions=noisy,
                diffusion_time=time,
                compute_logits=False,
            ).action_head_output
            for batch in (training, inference)
        ]
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=0)


class _OracleVLA:
    """Stands in for the model inside the DDIM / flow decoders: its "head" returns the exact noise (DDIM) or the
    exact straight-path velocity (flow) that leads from the current noisy chunk to ``target``."""

    def __init__(self, model: DreamVLA, target: torch.Tensor) -> None:
        self.settings, self.embed_inputs, self.target = model.settings, model.embed_inputs, target
        self.scheduler = DDIMScheduler(model.settings.ddim_train_timesteps)

    def __call__(
        self, noisy_actions: torch.Tensor, diffusion_time: torch.Tensor, **_: object
    ) -> SimpleNamespace:
        t = diffusion_time[:, None, None]
        if self.settings.objective == "flow":
            output = (self.target - noisy_actions) / (1 - t)
        else:
            abar = self.scheduler.alphas_cumprod[diffusion_time.long()].float()[:, None, None]
            output = (noisy_actions - abar.sqrt() * self.target) / (1 - abar).sqrt()
        return SimpleNamespace(action_head_output=output)


@pytest.mark.parametrize(("objective", "steps"), [("flow", 4), ("flow", 9), ("ddim", 50), ("ddim", 10)])
def test_samplers_recover_the_target_with_the_exact_noise_or_velocity(
    make_vla, statistics, objective, steps
) -> None:
    model = make_vla(objective, flow_steps=steps, ddim_inference_steps=steps)
    sample = synthetic_samples(statistics, count=1)[0]
    batch = model.policy.builder.inference_batch(
        [[sample["raw_image"]]], ["reach"], sample["proprio"].numpy()[None]
    )
    target = torch.from_numpy(sample["normalized_actions"]).float()[None]
    decode = decode_flow if objective == "flow" else decode_ddim
    result = decode(_OracleVLA(model, target), batch, model.policy.layout, torch.Generator().manual_seed(0))
    torch.testing.assert_close(result, target, atol=1e-5, rtol=0)


def test_discrete_diffusion_decodes_with_one_and_several_steps(make_vla, statistics) -> None:
    model = make_vla("discrete_diffusion")
    samples = synthetic_samples(statistics, count=2)
    overfit(model, samples, 600, 3e-3)  # 300 left 1-step decoding 84% exact on an AMD EPYC: not yet overfit
    images = [[s["raw_image"]] for s in samples]
    instructions = [s["instruction"] for s in samples]
    proprio = [s["raw_proprio"] for s in samples]
    expected = np.stack([s["raw_actions"] for s in samples])
    calls = []
    model.model.register_forward_hook(lambda *_: calls.append(1))
    for steps in (1, 4, 17):  # 34 masked tokens (32 actions + 2 suffix) committed over `steps` forwards
        model.settings = model.settings.replace(diffusion_steps=steps)  # read by the decoder at every call
        calls.clear()
        actions = model.predict_action_batch(images, instructions, proprio)
        assert len(calls) == steps
        exact = np.isclose(actions, expected, atol=1e-5)
        assert exact.mean() >= 0.9  # exactness of the 1-step decoding is checked by the overfit test


def test_ar_control_decodes_the_same_tokens_with_and_without_kv_cache(make_vla, statistics) -> None:
    model = make_vla("ar")
    assert model.config.attention == "causal"
    samples = synthetic_samples(statistics, count=2)
    samples[1]["instruction"] = (
        "push the puck left and then close the window"  # different lengths: left padding
    )
    policy = model.policy
    proprio = np.stack([s["proprio"].numpy() for s in samples])
    batch = policy.builder.inference_batch(
        [[s["raw_image"]] for s in samples], [s["instruction"] for s in samples], proprio, prompt_only=True
    )
    assert batch["attention_mask"][0, 0] == 0  # row 0 is left-padded
    with torch.no_grad():
        cached = decode_ar(model, batch, policy.layout, None, use_cache=True)
        uncached = decode_ar(model, batch, policy.layout, None, use_cache=False)
    assert cached.shape == (2, 8, 4)
    assert torch.equal(cached, uncached)


def test_ddim_schedule_matches_the_cosine_formulas() -> None:
    betas = squaredcos_cap_v2_betas(50)
    alpha_bar = lambda s: np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    assert betas[0].item() == pytest.approx(1 - alpha_bar(1 / 50) / alpha_bar(0))
    assert betas[-1].item() == pytest.approx(0.999)  # capped
    scheduler = DDIMScheduler(50)
    assert scheduler.inference_timesteps(50) == list(range(49, -1, -1))
    assert scheduler.inference_timesteps(10) == [45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
    x0, eps = torch.tensor([[0.3, -0.7]]), torch.tensor([[1.2, 0.4]])
    xk = scheduler.add_noise(x0, eps, torch.tensor([20]))
    abar = float(scheduler.alphas_cumprod[20])
    torch.testing.assert_close(xk, np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps)
    # with the true noise, a deterministic step lands exactly on the forward-process point of the previous timestep
    prev = scheduler.step(eps, 20, xk, num_inference_steps=10)
    torch.testing.assert_close(prev, scheduler.add_noise(x0, eps, torch.tensor([15])))
    torch.testing.assert_close(
        scheduler.step(eps, 0, scheduler.add_noise(x0, eps, torch.tensor([0])), 50), x0
    )


def test_flow_times() -> None:
    assert flow_inference_times(4) == [0.0, 0.25, 0.5, 0.75]
    assert len(flow_inference_times(9)) == 9  # no bf16 extra step (official defect)
    times = sample_flow_times(20000, torch.Generator().manual_seed(0), "beta")
    assert times.min() >= 0.001 and times.max() <= 1.0
    assert float(times.mean()) == pytest.approx(0.001 + 0.999 * 0.6, abs=0.01)  # Beta(1.5, 1) mean = 0.6


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda a: {"proprio": np.array([0.1, np.nan, 0.2, 0.3])}, ValueError, "proprio contains NaN"),
        (lambda a: {"proprio": None}, ValueError, "this model needs proprio"),
        (lambda a: {"proprio": np.zeros(3)}, ValueError, "proprio must hold 4 values"),
        (lambda a: {"images": [a, a]}, ValueError, "takes 1 camera image"),
        (lambda a: {"images": [a[:28]]}, ValueError, "expected 56x56 RGB"),
        (lambda a: {"images": [a.astype(np.float32)]}, ValueError, "must be uint8"),
        (lambda a: {"images": [a[..., :2]]}, ValueError, "shape \\[H, W, 3\\]"),
        (lambda a: {"instruction": "  "}, ValueError, "non-empty string"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_message(make_vla, statistics, change, error, message) -> None:
    model = make_vla("l1")
    sample = synthetic_samples(statistics, count=1)[0]
    image = sample["raw_image"]
    arguments = {"images": [image], "instruction": "reach", "proprio": sample["raw_proprio"]} | change(image)
    with pytest.raises(error, match=message):
        model.predict_action(**arguments)


def test_image_size_is_only_enforced_when_configured(make_vla, statistics) -> None:
    model = make_vla("l1", image_size=None)
    sample = synthetic_samples(statistics, count=1)[0]
    big = np.repeat(
        np.repeat(sample["raw_image"], 2, axis=0), 2, axis=1
    )  # 112 x 112, resized by the processor
    assert big.shape[0] != IMAGE_SIZE
    assert model.predict_action([big], "reach", sample["raw_proprio"]).shape == (8, 4)
