"""Run in datatrove's own venv: its WarcReader + Trafilatura extractor over WARC files, one process.

Usage: python datatrove_warc.py WARC_DIR OUT.json — writes documents kept and CPU seconds.
"""

import json
import resource
import sys
import time

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader

if __name__ == "__main__":
    folder, out = sys.argv[1:3]
    reader = WarcReader(folder, glob_pattern="*.warc.gz")
    extractor = Trafilatura(favour_precision=False, timeout=10.0)

    def cpu() -> float:  # datatrove extracts in a child process: count its CPU too
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    start = cpu()
    kept = sum(1 for _ in extractor.run(reader.run()))
    del extractor  # reaps the extraction process, so its CPU time is counted
    json.dump({"documents": kept, "cpu_seconds": cpu() - start}, open(out, "w"))
