"""The harness's tasks, by name: each builds its inputs, contenders, check and targets (see ``bench.harness``)."""

from bench.tasks.dedup import minhash, paragraphs
from bench.tasks.extract import pdf, web
from bench.tasks.mix import mix
from bench.tasks.text import heuristics, importer, startup, tokenize

TASKS = {
    "startup": startup,
    "import": importer,
    "tokenize": tokenize,
    "heuristics": heuristics,
    "minhash": minhash,
    "paragraphs": paragraphs,
    "mix": mix,
    "web": web,
    "pdf": pdf,
}
