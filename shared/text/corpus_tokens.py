"""Raw text spelled as Multi30k's tokenized files are: the translator's handler reads its inputs
this way, and scheduled runs write translate corrections this way (both sides)."""

from __future__ import annotations

from seqserve.shared.text.tokenize import tokenize

# The training text escapes these the way the Moses tokenizer does ("man &apos;s").
_MOSES_ESCAPES = str.maketrans(
    {"&": "&amp;", "|": "&#124;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;", "[": "&#91;", "]": "&#93;"}
)
# seqserve.shared.text.tokenize writes double quotes PTB-style and opening single quotes as a backtick.
_PTB_QUOTES = {"``": '"', "''": '"', "`": "'"}


def to_corpus_tokens(text: str) -> list[str]:
    """Raw English -> tokens spelled like Multi30k's lowercased Moses-tokenized source side."""
    tokens: list[str] = []
    for token in tokenize(text):
        if token == "n't" and tokens:
            # PTB splits "isn't" as "is n't"; Moses as "isn 't".
            tokens[-1] += "n"
            token = "'t"
        tokens.append(_PTB_QUOTES.get(token, token))
    return [token.translate(_MOSES_ESCAPES) for token in tokens]
