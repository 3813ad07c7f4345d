"""allenai dolma tagger configs, run unchanged: ``dolma tag -c tagger.json`` (or ``dolma -c tagger.yaml tag``).

A tagger config names document globs, the taggers to run, an experiment (the attribute set) and the number of
processes; attributes go to ``attributes/<experiment>/`` beside ``documents/``, as allenai's tagger writes them.
Each glob becomes one of our ``tag`` stages. The tagger names are ours (``dolma list``): allenai's built-in
taggers are Rust or Python classes of its own, and a name we do not register is an error that lists ours.
``tagger_modules`` are loaded as ours are (a module registering taggers with our decorator). ``work_dir`` is
accepted and not needed (our ledger and markers live beside the output); ``ignore_existing`` redoes every task;
keys we do not run (``destination``, ``debug``, ``profile``, ``dryrun``) are errors, never ignored.
"""

from __future__ import annotations

from dolma.core.errors import UserError
from taggers.stage import TagStage

KEYS = {"documents", "taggers", "experiment", "tagger_modules", "processes", "ignore_existing", "work_dir"}
UNSUPPORTED = {"destination", "debug", "profile", "dryrun"}


def allenai_tagger(config: dict) -> tuple[list[TagStage], int | None, bool]:
    """The tag stages of an allenai tagger config, its processes and whether to redo existing outputs."""
    if not isinstance(config, dict):
        raise UserError(f"tagger config: expected a mapping, not {config!r}")
    for key in sorted(config):
        if key in UNSUPPORTED and config[key] not in (None, False, [], {}):
            raise UserError(f"tagger config: {key!r} is an allenai tagger key this toolkit does not run; remove it")
        if key not in KEYS | UNSUPPORTED:
            raise UserError(f"tagger config: unknown key {key!r} (allowed: {', '.join(sorted(KEYS))})")
    documents, taggers = config.get("documents") or [], config.get("taggers") or []
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise UserError("tagger config: documents must be a non-empty list of globs")
    if not isinstance(taggers, list) or not taggers:
        raise UserError("tagger config: taggers must be a non-empty list of tagger names (see `dolma list`)")
    experiment, processes = config.get("experiment") or "tags", config.get("processes")
    if not isinstance(experiment, str):
        raise UserError(f"tagger config: experiment must be a name, not {experiment!r}")
    if processes is not None and (not isinstance(processes, int) or isinstance(processes, bool) or processes < 1):
        raise UserError(f"tagger config: processes must be a whole number, 1 or more, not {processes!r}")
    stages = [
        TagStage(
            input=pattern,
            taggers=list(taggers),
            experiment=experiment,
            tagger_modules=list(config.get("tagger_modules") or []),
            name="tag" if len(documents) == 1 else f"tag-{i}",
        )
        for i, pattern in enumerate(documents)
    ]
    return stages, processes, bool(config.get("ignore_existing"))
