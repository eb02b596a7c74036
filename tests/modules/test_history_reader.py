"""`predictor.reads`: what the code predictor reads of the history's states (Eq. 12's c)."""

import pytest
import torch

from morpheus_pl.errors import ConfigError
from morpheus_pl.modules.code_predictor import CodePredictor
from morpheus_pl.modules.history_reader import HistoryReader
from morpheus_pl.modules.persona_encoder import last_token_state


def _states(seed=0, batch=3, length=7, dim=8):
    """Right-padded states with real lengths 7, 4, 1 and their mask."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, dim, generator=g)
    mask = torch.zeros(batch, length, dtype=torch.long)
    for b, n in enumerate((7, 4, 1)[:batch]):
        mask[b, :n] = 1
    return hidden, mask


def test_last_is_the_last_real_state_and_mean_the_mean_over_real_tokens():
    hidden, mask = _states()
    assert torch.equal(HistoryReader("last", 8, 5)(hidden, mask), last_token_state(hidden, mask))
    mean = HistoryReader("mean", 8, 5)(hidden, mask)
    assert torch.allclose(mean[1], hidden[1, :4].mean(0), atol=1e-6)
    assert torch.equal(mean[2], hidden[2, 0])


@pytest.mark.parametrize("reads", ["last", "mean", "slot_attention"])
def test_padding_changes_nothing(reads):
    torch.manual_seed(0)
    reader = HistoryReader(reads, 8, 5)
    hidden, mask = _states()
    garbage = torch.where(mask[..., None].bool(), hidden, torch.randn_like(hidden) * 100)
    assert torch.allclose(reader(hidden, mask), reader(garbage, mask), atol=1e-6)
    # more padding columns, as a longer batch would give
    longer = torch.cat([hidden, torch.randn(3, 4, 8) * 100], 1)
    longer_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.long)], 1)
    assert torch.allclose(reader(hidden, mask), reader(longer, longer_mask), atol=1e-6)


def test_slot_attention_gives_each_slot_its_own_reading_of_the_real_tokens():
    torch.manual_seed(0)
    reader = HistoryReader("slot_attention", 8, 5)
    with torch.no_grad():
        reader.queries.mul_(100)  # sharp attention
    hidden, mask = _states()
    c = reader(hidden, mask)
    assert c.shape == (3, 5, 8)
    assert not torch.allclose(c[0, 0], c[0, 1])
    assert torch.allclose(c[2], hidden[2, 0].expand(5, 8), atol=1e-6)  # one real token only
    pred = CodePredictor(8, 11, 5, reads="slot_attention")
    assert pred(c).shape == (3, 5, 11)


def test_last_and_mean_add_no_parameters():
    for reads in ("last", "mean"):
        assert set(CodePredictor(8, 11, 5, reads=reads).state_dict()) == set(
            CodePredictor(8, 11, 5).state_dict())
    names = set(CodePredictor(8, 11, 5, reads="slot_attention").state_dict())
    assert {"reader.queries", "reader.keys.weight"} <= names


def test_unknown_reads_names_the_key_and_choices():
    with pytest.raises(ConfigError, match=r"predictor\.reads must be one of .*'slot_attention'"):
        HistoryReader("first", 8, 5)
