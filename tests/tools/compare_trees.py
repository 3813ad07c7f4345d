"""Compare two output trees file by file: every file must exist in both and hold the same bytes.

    python tests/tools/compare_trees.py OLD_OUTPUT NEW_OUTPUT

Compressed files are compared as stored (our writers are deterministic), so a difference in any byte counts.
What two runs cannot share is listed and reported separately instead of failing: the HTML report (it embeds
the recipe path and plots), inside ledger summaries and markers the summed wall-clock ``seconds`` metric of
the pdf stage, and the tasks' state files (``_ledger/<stage>/state/``: fingerprints of the inputs' sizes and
modification times, which differ from machine to machine). Exit code 1 when anything else differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TIMING = re.compile(rb'"seconds": ?[0-9.e+-]+,?')
ALLOWED = ("report.html",)
STATE = "/state/"  # below _ledger/<stage>/


def files(root: Path) -> dict[str, bytes]:
    """Every file under root but the tasks' state files."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and STATE not in f"/{p.relative_to(root)}"
    }


def compare(old: Path, new: Path) -> tuple[list[str], list[str]]:
    """(differences, differences that only concern timing or the report)."""
    a, b = files(old), files(new)
    bad, timing = [], []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            bad.append(f"{name}: only in {'new' if name in b else 'old'}")
        elif a[name] != b[name]:
            same_but_time = name.endswith(".json") and TIMING.sub(b"", a[name]) == TIMING.sub(b"", b[name])
            (timing if same_but_time or name.endswith(ALLOWED) else bad).append(name)
    return bad, timing


def main() -> int:
    old, new = Path(sys.argv[1]), Path(sys.argv[2])
    bad, timing = compare(old, new)
    print(f"{len(files(old))} files compared; {len(timing)} differ only in timing or the report: {timing}")
    for line in bad[:50]:
        print("DIFFERENT:", line)
    if len(bad) > 50:
        print(f"... and {len(bad) - 50} more")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
