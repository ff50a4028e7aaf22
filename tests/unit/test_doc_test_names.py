"""The README and docs name tests as evidence (`test_file.py::test_name`, a test file by its
path or its name): each named test and file exists, so a merged, renamed or moved test cannot
leave a claim pointing at nothing."""

from __future__ import annotations

import re

from tests.conftest import ROOT

REF = re.compile(r"(?:tests/(?:unit|integration)/)?(test_\w+\.py)::(test_\w+)")
FILE = re.compile(r"(?:tests/(?:unit|integration)/)?\btest_\w+\.py\b")
TIERS = (ROOT / "tests" / "unit", ROOT / "tests" / "integration")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def references() -> list[tuple[str, str, str]]:
    """(doc, test file, test name) for every test named in README.md and docs/*.md."""
    out = []
    for doc in DOCS:
        for file, name in REF.findall(doc.read_text()):
            out.append((doc.name, file, name))
    return out


def defined(file: str, name: str) -> bool:
    """A test function or method of that name, or (a name ending in `_`) one it begins."""
    end = "" if name.endswith("_") else r"\b"
    pattern = re.compile(rf"^\s*def {re.escape(name)}{end}", re.M)
    return any(
        (tier / file).is_file() and pattern.search((tier / file).read_text()) for tier in TIERS
    )


def test_every_test_a_doc_names_exists():
    refs = references()
    assert len(refs) > 20  # the fault table of docs/reliability.md alone names more
    missing = sorted(
        {f"{doc}: {file}::{name}" for doc, file, name in refs if not defined(file, name)}
    )
    assert not missing, "\n".join(missing)


def test_the_check_finds_a_missing_name():
    assert defined("test_doc_test_names.py", "test_every_test_a_doc_names_exists")
    assert not defined("test_doc_test_names.py", "test_every_test_a_doc_names")  # no prefix
    assert defined("test_doc_test_names.py", "test_every_test_")  # a family, by its `_`
    assert not defined("test_no_such_file.py", "test_every_test_a_doc_names_exists")


def test_every_test_file_a_doc_names_exists():
    named = {(doc.name, ref) for doc in DOCS for ref in FILE.findall(doc.read_text())}
    assert len(named) > 20
    missing = sorted(
        f"{doc}: {ref}"
        for doc, ref in named
        if not ((ROOT / ref).is_file() if "/" in ref else any((t / ref).is_file() for t in TIERS))
    )
    assert not missing, "\n".join(missing)
