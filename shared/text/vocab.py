"""Token <-> id mapping. Ids are part of a checkpoint, so building must be deterministic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

PAD = "<pad>"
UNK = "<unk>"


class Vocab:
    """Ids 0 and 1 are always PAD and UNK; the rest follow frequency (desc), then the token."""

    PAD = PAD
    UNK = UNK
    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary must not repeat tokens")
        self._itos = list(tokens)
        self._stoi = {token: index for index, token in enumerate(self._itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Count tokens and keep those seen `min_freq` times, at most `max_size` (specials included)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size < 2:
                raise ValueError(f"max_size must leave room for {PAD} and {UNK}, got {max_size}")
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept])

    @classmethod
    def from_list(cls, tokens: list[str]) -> Vocab:
        return cls(tokens)

    def to_list(self) -> list[str]:
        return list(self._itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_id
        return [self._stoi.get(token, unk) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._itos[i] for i in ids]

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._itos == other._itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"
