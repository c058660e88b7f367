from __future__ import annotations

import pytest
import torch

from seqserve.shared.nn.sampling import filter_top_k, filter_top_p, sample_next


def _logits(batch: int = 4, vocab: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def test_temperature_zero_is_argmax_and_ignores_the_generator() -> None:
    logits = _logits()
    ids = sample_next(logits, temperature=0.0, top_k=5, top_p=0.5)
    assert ids.shape == (4,) and ids.dtype == torch.long
    assert torch.equal(ids, logits.argmax(-1))


def test_same_seed_gives_same_sample_and_other_seeds_differ() -> None:
    logits = _logits(batch=64)

    def draw(seed: int) -> torch.Tensor:
        return sample_next(logits, 1.0, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_top_k_one_equals_greedy_at_any_temperature() -> None:
    logits = _logits()
    generator = torch.Generator().manual_seed(0)
    for temperature in (0.5, 1.0, 3.0):
        ids = sample_next(logits, temperature, top_k=1, generator=generator)
        assert torch.equal(ids, logits.argmax(-1))


def test_tiny_top_p_equals_greedy() -> None:
    logits = _logits()
    ids = sample_next(logits, 1.0, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, logits.argmax(-1))


def test_samples_stay_inside_the_top_k() -> None:
    logits = _logits(batch=1).expand(500, -1)
    ids = sample_next(logits, 2.0, top_k=3, generator=torch.Generator().manual_seed(1))
    allowed = set(torch.topk(logits[0], 3).indices.tolist())
    assert set(ids.tolist()) <= allowed
    assert len(set(ids.tolist())) > 1  # a high temperature actually samples


def test_filter_top_k_keeps_exactly_k() -> None:
    filtered = filter_top_k(_logits(), 5)
    assert (torch.isfinite(filtered).sum(-1) == 5).all()
    assert torch.equal(filter_top_k(_logits(), 10_000), _logits())


def test_filter_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    kept = torch.isfinite(filter_top_p(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False], [False, False, True, True]]
    assert torch.isfinite(filter_top_p(logits, 0.9)).sum(-1).tolist() == [3, 3]
    assert torch.isfinite(filter_top_p(logits, 1.0)).all()


def test_sampled_frequencies_follow_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20_000, -1)
    ids = sample_next(logits, 1.0, generator=torch.Generator().manual_seed(3))
    frequencies = torch.bincount(ids, minlength=3).float() / ids.numel()
    assert torch.allclose(frequencies, torch.tensor([0.7, 0.2, 0.1]), atol=0.02)


@pytest.mark.parametrize("settings", [{"temperature": -1.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_settings_are_rejected(settings: dict) -> None:
    with pytest.raises(ValueError):
        sample_next(_logits(), **settings)
