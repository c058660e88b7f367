"""Tokenizer that maps raw user text onto SST's lowercased, PTB-style tokens.

SST (and GLUE SST-2) sentences are already tokenized: "it 's a great film , is n't it ?".
The vocabulary is built from those tokens, so raw text at serving time ("It's a great film,
isn't it?") must be split the same way or every clitic and punctuation mark becomes <unk>.
The function is idempotent on SST's own text, so training and serving can both call it.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Typographic characters users paste; SST only has their ASCII/PTB spellings.
_TYPOGRAPHIC = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ", "\u2013": " -- "}
)
# The sentence-level packaging writes brackets the PTB way; GLUE and users write "(" / ")".
_BRACKET_WORDS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
# Opening double quote: at the start or after whitespace / an opening bracket.
_OPEN_DQUOTE = re.compile(r'(^|(?<=[\s(\[{<]))"')
# Punctuation always split off. Commas only when not inside a number ("1,000" stays whole).
_ALWAYS_SPLIT = re.compile(r"(\.\.\.|--|[;?!()\[\]{}$#]|''|``|(?<!\d),|,(?!\d)|:(?!\d))")
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_SPLIT_WORDS = {"cannot": ["can", "not"], "gonna": ["gon", "na"], "wanna": ["wan", "na"],
                "gotta": ["got", "ta"]}
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "vs.", "jr.", "sr.", "st.", "inc.", "prof.", "mt."}
_INITIALS = re.compile(r"^(?:[b-hj-z]\.|(?:[a-z]\.){2,})$")
# Elisions that SST keeps whole even though they start or end with an apostrophe.
_ELISION = re.compile(r"^(?:'\d+s?|'em|'til|'n'?|'cause|'tis|'twas|ol'|o')$")


def tokenize(text: str, *, lowercase: bool = True, ptb_quotes: bool = True) -> list[str]:
    """Split `text` into SST-style tokens ("It's great!" -> it 's great !).

    The defaults are what the SST classifier was trained on. Taggers pass lowercase=False
    (case is evidence for a part of speech) and ptb_quotes=False (UD treebanks write plain
    `"` and `'` where SST writes ``, '' and `). Splitting is the same in every mode.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)
    if lowercase:
        text = text.lower()
    if '"' in text:  # most texts have none: skip the regex pass
        if ptb_quotes:
            text = _OPEN_DQUOTE.sub(" `` ", text).replace('"', " '' ")
        else:
            text = text.replace('"', ' " ')
    text = _ALWAYS_SPLIT.sub(r" \1 ", text)
    open_single = "`" if ptb_quotes else "'"
    tokens: list[str] = []
    for raw in text.split():
        split = _split_word_cached if len(raw) <= _CACHED_WORD_CHARS else _split_word
        tokens.extend(split(raw, open_single))
    return tokens


# Words up to this long go through the cache: they are the ones that repeat, and the bound
# keeps the cache to a few MB whatever users send (inputs may hold 2,000-character "words").
_CACHED_WORD_CHARS = 40


def _split_word(raw: str, open_single: str) -> tuple[str, ...]:
    """The tokens of one whitespace-separated word."""
    return tuple(_split_token(_BRACKET_WORDS.get(raw.lower(), raw), open_single))


# A serving worker sees the same words over and over; splitting them was most of its Python
# time for classify jobs.
_split_word_cached = functools.lru_cache(maxsize=1 << 16)(_split_word)


def _split_token(token: str, open_single: str = "`") -> list[str]:
    # Every test looks at the lowercased token, so cased text splits exactly like lowercased.
    lower = token.lower()
    if lower in _SPLIT_WORDS:
        first = _SPLIT_WORDS[lower][0]
        return [token[: len(first)], token[len(first) :]]
    if len(token) > 1 and token.endswith(".") and not token.endswith("..."):
        if lower not in _ABBREVIATIONS and not _INITIALS.match(lower):
            return _split_token(token[:-1], open_single) + ["."]
    if lower in {"'", "`", "''", "``", "'s", "n't", "'re", "'ve", "'ll", "'d", "'m"}:
        return [token]
    if _ELISION.match(lower):
        return [token]
    if token.startswith("'") and len(token) > 1:
        # A leading apostrophe that is not a clitic opens a single quote ('tis aside).
        return [open_single] + _split_token(token[1:], open_single)
    if token.endswith("'") and len(token) > 1:
        return _split_token(token[:-1], open_single) + ["'"]
    match = _CLITIC.match(lower)
    if match:
        cut = len(match.group(1))
        return [token[:cut], token[cut:]]
    return [token]
