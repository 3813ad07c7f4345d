"""The package's floors import only downwards, and no stage package imports another.

core → io → runtime → stage packages (dolma.ingest, dolma.dedup, dolma.tokenize, dolma.hub, taggers, mixers,
pdf_extract)
→ app. Every import counts, the ones inside functions included.
"""

import ast

from conftest import ROOT

FLOORS = {"dolma.core": 0, "dolma.io": 1, "dolma.runtime": 2, "dolma.app": 4, "dolma": 4}
STAGE_PACKAGES = ("dolma.ingest", "dolma.dedup", "dolma.tokenize", "dolma.hub", "taggers", "mixers", "pdf_extract")
PACKAGES = ("dolma", "taggers", "mixers", "pdf_extract")


def place(module: str) -> tuple[int, str] | None:
    """(floor, package) of one of our modules; None for everything else."""
    for pkg in STAGE_PACKAGES:
        if module == pkg or module.startswith(pkg + "."):
            return 3, pkg
    for prefix in sorted(FLOORS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return FLOORS[prefix], prefix
    return None


def imports(source: str, module: str) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.rsplit(".", node.level)[0]
                out.append(f"{base}.{node.module}" if node.module else base)
            elif node.module == "dolma":  # `from dolma import io` imports the submodule
                out += [f"dolma.{a.name}" for a in node.names]
            else:
                out.append(node.module)
    return out


def violations(module: str, source: str) -> list[str]:
    here = place(module)
    if here is None:
        return []
    found = []
    for target in imports(source, module):
        there = place(target)
        if there is None or there[1] == here[1]:
            continue
        if there[0] > here[0]:
            found.append(f"{module} imports {target}, a higher floor")
        elif there[0] == here[0] == 3:
            found.append(f"{module} imports {target}, another stage package")
        elif there[0] == here[0] and here[0] != 4:
            found.append(f"{module} imports {target} on its own floor but another package")
    return found


def modules() -> dict[str, str]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            out[name] = path.read_text()
    return out


def test_every_import_runs_downwards():
    found = [v for name, source in modules().items() for v in violations(name, source)]
    assert not found, "\n".join(found)


def test_the_check_catches_upward_and_sideways_imports():
    assert violations("dolma.io.lines", "from dolma.runtime.ledger import ShardLedger")
    assert violations("dolma.core.config", "def f():\n    from dolma.app.recipe import build_stage\n")
    assert violations("mixers.stats", "from dolma.tokenize.stage import TokenizeStage")
    assert violations("pdf_extract.stage", "from taggers.langid import predict")
    assert violations("dolma.runtime.stage", "from dolma import app")
    assert not violations(
        "mixers.stats", "from dolma.core.tokenizer import load_tokenizer\nfrom mixers.plan import Plan"
    )
    assert not violations("dolma.app.cli", "from mixers.plan import plan_result")


def test_modules_stay_small():
    long = {name: n for name, source in modules().items() if (n := len(source.splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
