"""What a training run may be told: one frozen config per task, with bounds on every field.

The API validates a run's overrides against these at submission and the trainer resolves
them again before training, so both refuse the same things. Torch-free on purpose: the API
imports this module, and only the trainer loads torch.

Strict types: `epochs: "5"` or `true` is refused rather than coerced; a float field takes an
int (`lr: 1` is 1.0). The names a Literal lists (cells, attentions, corpora, CoNLL-U
columns) are the ones shared/nn and the trainer's readers accept;
tests/shared/test_training_configs.py checks that they agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

Cell = Literal["rnn", "lstm", "gru"]  # shared/nn/cells.py CELLS
Attention = Literal["bahdanau", "luong"]  # shared/nn/seq2seq.py ATTENTIONS
LanguageModelCorpus = Literal["ptb", "wikitext2"]  # services/trainer/corpora.py CORPORA
ConllColumn = Literal["id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc"]
Schedule = Literal["plateau", "linear", "none"]

# Bounds are generous for real runs and refuse what would only ever be a mistake or an attack
# (a trillion epochs, a 10^9-wide layer).
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]  # dropouts, smoothing, decay factors
Width = Annotated[int, Field(ge=1, le=4096)]  # embedding and hidden sizes
Layers = Annotated[int, Field(ge=1, le=8)]
BatchSize = Annotated[int, Field(ge=1, le=4096)]
Epochs = Annotated[int, Field(ge=1, le=1000)]  # also patience: epochs without a new best
Count = Annotated[int, Field(ge=0, le=1000)]
GradClip = Annotated[float, Field(ge=0.0, le=1000.0)]  # 0: no clipping
MinFreq = Annotated[int, Field(ge=1, le=1_000_000)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# A subset limit: None takes everything.
ExampleLimit = Annotated[int | None, Field(ge=1, le=100_000_000)]
VocabLimit = Annotated[int | None, Field(ge=1, le=10_000_000)]
# A file or folder relative to the data folder (an absolute path stays absolute).
DataPath = Annotated[str, Field(min_length=1, max_length=4096)]
Name = Annotated[str, Field(min_length=1, max_length=64)]  # a language code, a split name


class TrainConfig(BaseModel):
    """What every task carries: the training loop's settings and its recurrent model's cell,
    depth, width and dropout; a task's config adds its data and model fields. A default is
    what both presets of a task share (a task's config may redeclare it, bounds and all)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    epochs: Epochs
    batch_size: BatchSize
    lr: float = Field(ge=0.0, le=10.0)
    patience: Epochs
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    clip: GradClip = 5.0
    # "plateau": multiply the LR by lr_factor after lr_patience epochs without improvement;
    # "linear": decay it per epoch towards 0; "none": constant.
    schedule: Schedule = "plateau"
    lr_factor: Probability = 0.5
    lr_patience: Count = 0
    eval_batch_size: BatchSize = 256
    # Wall-clock budget for the training epochs (0: none; at most a week); full presets stop
    # at the best weights reached within about 90 minutes, however slow the machine.
    time_budget_minutes: float = Field(default=0.0, ge=0.0, le=7 * 24 * 60.0)
    # Evaluate and keep an exponential moving average of the weights (per step); 0: off.
    ema_decay: Probability = 0.0
    seed: Seed = 13
    cell: Cell = "lstm"
    num_layers: Layers = 1
    hidden_size: Width
    dropout: Probability


# A registered embeddings model, as `seqserve train --set pretrained=...` names it:
# name, name@alias or name:version (shared/registry/refs.py).
PretrainedRef = Annotated[str, Field(min_length=1, max_length=200,
                                     pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@[A-Za-z][A-Za-z0-9_-]{0,63}|:[1-9][0-9]{0,8})?$")]


class PretrainedInit(BaseModel):
    """Initialising a task's word embedding from a registered embeddings model: the vectors
    of the words both vocabularies share are copied; `freeze_pretrained` keeps them fixed."""

    pretrained: PretrainedRef | None = None
    freeze_pretrained: bool = False


class FeedbackMix(BaseModel):
    """Users' corrections folded into the training data (scheduled runs write `feedback_file`
    from the job_feedback rows): the newest `feedback_max_examples` corrections, each repeated
    `feedback_repeat` times, appended to the (subset of the) training set; dev is unchanged,
    so the gate compares versions on the same data."""

    feedback_file: DataPath | None = None
    feedback_repeat: int = Field(default=3, ge=1, le=20)
    feedback_max_examples: int = Field(default=10_000, ge=1, le=1_000_000)


class ClassifyConfig(FeedbackMix, PretrainedInit, TrainConfig):
    """SST-2 sentence classification."""

    train_file: DataPath = "sst2/glue/train.tsv"
    dev_file: DataPath = "sst2/glue/dev.tsv"  # both packagings share the dev sentences
    max_train_examples: ExampleLimit = None  # a seeded random subset, for smoke runs
    min_freq: MinFreq = 1
    max_vocab_size: VocabLimit = None
    word_dropout: Probability = 0.05  # chance a training token becomes <unk>, so <unk> gets trained
    bidirectional: bool = True
    embedding_dim: Width
    dropout: Probability = 0.5


def _column(value: Any) -> str | int:
    # A plain validator, so a bad value is reported at `column` itself, not per union member.
    if isinstance(value, str) and value in get_args(ConllColumn):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1000:
        return value
    raise PydanticCustomError("conll_column", "Input should be one of {names} or a 0-based column index up to 1000",
                              {"names": list(get_args(ConllColumn))})


class TagConfig(FeedbackMix, PretrainedInit, TrainConfig):
    """Sequence tagging on CoNLL-U (UD English EWT UPOS by default)."""

    train_file: DataPath = "ud_english_ewt/en_ewt-ud-train.conllu.gz"
    dev_file: DataPath = "ud_english_ewt/en_ewt-ud-dev.conllu.gz"
    test_file: DataPath = "ud_english_ewt/en_ewt-ud-test.conllu.gz"
    # A CoNLL-U column name, or a 0-based index for plain CoNLL files.
    column: Annotated[str | int, PlainValidator(_column)] = "upos"
    max_train_examples: ExampleLimit = None  # a seeded random subset of training sentences
    min_freq: MinFreq = 1
    max_vocab_size: VocabLimit = None
    lowercase_words: bool = True
    max_word_chars: int = Field(default=30, ge=2, le=1000)
    word_dropout: Probability = 0.05  # chance a training word id becomes <unk>
    pretrained_embeddings: DataPath | None = None  # text-format vectors
    bidirectional: bool = True
    lr_patience: Count = 1
    batch_size: BatchSize = 32
    dropout: Probability = 0.33
    embedding_dim: Width
    char_embedding_dim: Width
    char_hidden_size: int = Field(ge=0, le=4096)


class GenerateConfig(TrainConfig):
    """Word-level language modelling with truncated BPTT."""

    corpus: LanguageModelCorpus = "ptb"
    # Train on the first N tokens only (smoke runs); the vocabulary stays full.
    max_train_tokens: Annotated[int | None, Field(ge=2, le=10_000_000_000)] = None
    num_layers: Layers = 2
    tie_weights: bool = True
    bptt: int = Field(default=35, ge=1, le=1000)
    eval_batch_size: BatchSize = 10
    clip: GradClip = 0.25
    lr_factor: Probability = 0.25
    # Train forward passes under bfloat16 autocast (fp32 master weights, fp32 evaluation):
    # ~1.4x faster on CPUs with AMX/AVX512-BF16 and on recent GPUs.
    autocast_bf16: bool = False
    seed: Seed = 1111
    embedding_dim: Width


class TranslateConfig(FeedbackMix, TrainConfig):
    """Attentional seq2seq translation (Multi30k English -> German by default)."""

    corpus: DataPath = "multi30k_en_de/tok"
    src_lang: Name = "en"
    tgt_lang: Name = "de"
    train_split: Name = "train"
    dev_split: Name = "val"
    test_split: Name = "test_2016_flickr"
    max_train_examples: ExampleLimit = None  # a seeded random subset, for smoke runs
    min_freq: MinFreq = 2  # singletons become <unk>, so <unk> is seen (and produced) in training
    max_vocab_size: VocabLimit = None
    cell: Cell = "gru"
    bidirectional: bool = True
    tie_embeddings: bool = False
    label_smoothing: Probability = 0.1
    clip: GradClip = 1.0
    eval_batch_size: BatchSize = 128
    batch_size: BatchSize = 64
    max_decode_len: int = Field(default=80, ge=1, le=1000)  # Multi30k's longest target is 44 tokens
    beam_size: int = Field(default=5, ge=1, le=64)  # for test_bleu
    length_penalty: float = Field(default=1.0, ge=0.0, le=10.0)
    attention: Attention
    src_embedding_dim: Width
    tgt_embedding_dim: Width


class EmbeddingsConfig(BaseModel):
    """Word vectors trained with gensim (fastText by default) on unlabelled text: the
    language-modelling corpora's training splits (see services/trainer/embeddings.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    corpus: Literal["wikitext2", "ptb", "both"] = "both"
    max_sentences: ExampleLimit = None  # the first N lines of each corpus, for quick runs
    algorithm: Literal["fasttext", "word2vec"] = "fasttext"
    sg: bool = True  # skip-gram (better vectors for rare words) rather than CBOW
    dim: Width = 100
    window: int = Field(default=5, ge=1, le=50)
    min_count: MinFreq = 3
    negative: int = Field(default=5, ge=1, le=50)
    epochs: Epochs = 5
    lr: float = Field(default=0.025, gt=0.0, le=1.0)
    # fastText subwords: character n-grams of min_n..max_n hashed into `bucket` rows
    # (the checkpoint carries the bucket matrix, so OOV vectors need no gensim).
    min_n: int = Field(default=3, ge=1, le=10)
    max_n: int = Field(default=6, ge=1, le=10)
    bucket: int = Field(default=200_000, ge=1, le=2_000_000)
    workers: int = Field(default=2, ge=1, le=64)
    seed: Seed = 13
