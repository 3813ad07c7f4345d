"""Run in datatrove's own venv: its four-stage MinHash pipeline (FineWeb parameters) on a folder of documents.

Usage: python datatrove_minhash.py DOCS_DIR WORK_DIR OUT.json
Writes the ids datatrove removed and its CPU seconds (one task per stage, one worker) to OUT.json.
"""

import json
import resource
import sys
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

if __name__ == "__main__":
    docs, work, out = sys.argv[1:4]
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    reader = JsonlReader(docs, glob_pattern="*.jsonl.gz")
    start = time.process_time()
    steps = [
        [reader, MinhashDedupSignature(output_folder=f"{work}/signatures", config=config)],
        [MinhashDedupBuckets(input_folder=f"{work}/signatures", output_folder=f"{work}/buckets", config=config)],
        [MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config)],
        [
            JsonlReader(docs, glob_pattern="*.jsonl.gz"),
            MinhashDedupFilter(
                input_folder=f"{work}/remove_ids", exclusion_writer=JsonlWriter(f"{work}/removed", compression=None)
            ),
        ],
    ]
    tasks = [
        len(list(__import__("pathlib").Path(docs).glob("*.jsonl.gz"))),
        config.num_buckets,
        1,
        len(list(__import__("pathlib").Path(docs).glob("*.jsonl.gz"))),
    ]
    for i, (pipeline, n) in enumerate(zip(steps, tasks)):
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=n, workers=1, logging_dir=f"{work}/logs/{i}", skip_completed=False
        ).run()
    seconds = time.process_time() - start
    removed = []
    for path in __import__("pathlib").Path(f"{work}/removed").glob("*.jsonl"):
        removed += [json.loads(line)["id"] for line in open(path)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump({"removed": removed, "cpu_seconds": seconds, "peak_rss_bytes": peak}, open(out, "w"))
