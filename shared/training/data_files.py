"""The data files a training run reads, known before it starts: `seqserve train` and
`POST /v1/training-runs` refuse a run whose data is missing instead of failing it later.

The trainers read their paths from here too (one list of the file layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Language-modelling corpora: name -> file pattern inside the data folder, stored gzipped
# (a plain copy is read when it is the only one).
LM_SPLITS = ("train", "valid", "test")
LM_CORPORA: dict[str, str] = {
    "ptb": "ptb/ptb.{split}.txt.gz",
    "wikitext2": "wikitext2/wiki.{split}.tokens.gz",
}
EMBEDDING_CORPORA = {"both": ("wikitext2", "ptb"), "wikitext2": ("wikitext2",), "ptb": ("ptb",)}
TRANSLATE_FILE_PATTERN = "{split}.lc.norm.tok.{lang}.gz"  # the lowercased, Moses-tokenized Multi30k files


class MissingDataError(FileNotFoundError):
    """A run's data file is absent: the message names its absolute path and both remedies."""

    def __init__(self, path: Path, data_dir: Path) -> None:
        self.path = path.resolve()
        dataset = _dataset_of(path, data_dir)
        fetch = f"`seqserve data download {dataset}`" if dataset else "`seqserve data download`"
        super().__init__(f"missing data: {self.path} does not exist; set SEQSERVE_DATA_DIR to the folder that "
                         f"holds the datasets (now {data_dir.resolve()}) or fetch them with {fetch}")


def _dataset_of(path: Path, data_dir: Path) -> str:
    try:
        return path.resolve().relative_to(data_dir.resolve()).parts[0]
    except (ValueError, IndexError):
        return ""


def lm_corpus_path(data_dir: Path, corpus: str, split: str) -> Path:
    if corpus not in LM_CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {sorted(LM_CORPORA)}")
    if split not in LM_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(LM_SPLITS)}")
    path = Path(data_dir) / LM_CORPORA[corpus].format(split=split)
    plain = path.with_suffix("")
    return plain if not path.exists() and plain.exists() else path


def required_files(task: str, cfg: dict[str, Any], data_dir: Path) -> list[Path]:
    """Every file a run of `task` with the resolved `cfg` opens (an absolute path in cfg stays)."""
    data_dir = Path(data_dir)
    if task == "classify":
        return [data_dir / cfg["train_file"], data_dir / cfg["dev_file"]]
    if task == "tag":
        extra = [cfg["pretrained_embeddings"]] if cfg.get("pretrained_embeddings") else []
        return [data_dir / name for name in (cfg["train_file"], cfg["dev_file"], cfg["test_file"], *extra)]
    if task == "generate":
        return [lm_corpus_path(data_dir, cfg["corpus"], split) for split in LM_SPLITS]
    if task == "translate":
        return [data_dir / cfg["corpus"] / TRANSLATE_FILE_PATTERN.format(split=cfg[f"{split}_split"], lang=lang)
                for split in ("train", "dev", "test") for lang in (cfg["src_lang"], cfg["tgt_lang"])]
    if task == "embeddings":
        return [lm_corpus_path(data_dir, corpus, "train") for corpus in EMBEDDING_CORPORA[cfg["corpus"]]]
    raise ValueError(f"task {task!r} reads no known data files")


def check_data(task: str, cfg: dict[str, Any], data_dir: Path) -> None:
    """Raise MissingDataError for the first file of the run that does not exist."""
    for path in required_files(task, cfg, data_dir):
        if not path.is_file():
            raise MissingDataError(path, data_dir)
