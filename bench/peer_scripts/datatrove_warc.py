"""Run in datatrove's own venv: its WarcReader + Trafilatura extractor over WARC files, one process.

Usage: python datatrove_warc.py WARC_DIR OUT.json — writes documents kept and CPU seconds.
"""

import json
import sys
import time

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader

if __name__ == "__main__":
    folder, out = sys.argv[1:3]
    reader = WarcReader(folder, glob_pattern="*.warc.gz")
    extractor = Trafilatura(favour_precision=True, timeout=10.0)
    start = time.process_time()
    kept = sum(1 for _ in extractor.run(reader.run()))
    json.dump({"documents": kept, "cpu_seconds": time.process_time() - start}, open(out, "w"))
