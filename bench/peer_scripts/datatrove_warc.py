"""Run in datatrove's own venv: its WarcReader + Trafilatura extractor over WARC files, one process.

Usage: python datatrove_warc.py WARC_DIR OUT.json — writes the documents kept and their URLs (the benchmark
times this whole process).
"""

import json
import sys

from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader

if __name__ == "__main__":
    folder, out = sys.argv[1:3]
    reader = WarcReader(folder, glob_pattern="*.warc.gz")
    extractor = Trafilatura(favour_precision=False, timeout=10.0)
    urls = [doc.metadata.get("url") for doc in extractor.run(reader.run())]
    del extractor  # reaps the extraction process before this one exits, so its CPU time is counted
    json.dump({"documents": len(urls), "urls": urls}, open(out, "w"))
