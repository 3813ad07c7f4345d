"""Read a token folder with ai2-olmo-core's own numpy datasets (run inside the olmo-core peer venv).

Usage: ``olmo_core_read.py MANIFEST_JSON WORK_DIR SEQUENCE_LENGTH PAD_ID`` prints one JSON object: ``fsl`` (the
token ids of every fixed-length instance, in order) and ``padded`` (each padded instance's ids under its label
mask, one instance per document when SEQUENCE_LENGTH is the longest document).
"""

import json
import sys
from pathlib import Path

import numpy as np
from olmo_core.data.numpy_dataset import NumpyFSLDataset, NumpyPaddedFSLDataset


def main() -> None:
    manifest_path, work_dir = Path(sys.argv[1]), Path(sys.argv[2])
    sequence_length, pad_id = int(sys.argv[3]), int(sys.argv[4])
    manifest = json.loads(manifest_path.read_text())
    tokenizer = manifest["tokenizer"]
    paths = [str(manifest_path.parent / f["npy"]) for f in manifest["files"]]
    common = dict(
        pad_token_id=pad_id,
        eos_token_id=tokenizer["eos_token_id"],
        vocab_size=tokenizer["vocab_size"],
        dtype=getattr(np, tokenizer["dtype"]),
    )
    fsl = NumpyFSLDataset(*paths, sequence_length=512, **common)
    fsl.work_dir = work_dir / "fsl"
    fsl.prepare()
    padded = NumpyPaddedFSLDataset(*paths, sequence_length=sequence_length, **common)
    padded.work_dir = work_dir / "padded"
    padded.prepare()
    out = {
        "fsl": [fsl[i]["input_ids"].tolist() for i in range(len(fsl))],
        "padded": [item["input_ids"][item["label_mask"]].tolist() for item in (padded[i] for i in range(len(padded)))],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
