#!/usr/bin/env python3
"""The documentation the code cites must exist and stay complete:
  - every "docs/NAME.md#anchor" cited in the sources names a file of docs/
    with that anchor (<a id="anchor">), and no source cites a document
    outside the repository;
  - every symbol libqstats.so exports (debian/libqstats0.symbols) has its
    contract in docs/embedding.md;
  - every test SECURITY.md names as the pin of a defence exists
    (`test_file.test_name`, or a prefix of it ending in "…").

Usage: check_docs.py SOURCE_DIR"""
import os
import re
import sys

SKIP_DIRS = {".git", "debian", "node_modules"}


def sources(top):
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith(("build", "obj-"))]
        for f in files:
            if f.endswith((".c", ".h", ".py", ".sh", ".md", ".txt", ".cmake", ".json")) \
                    or f == "CMakeLists.txt":
                yield os.path.join(d, f)


def security_citations(top):
    """SECURITY.md's `test_x.test_y` pins: each names a test that exists."""
    with open(os.path.join(top, "SECURITY.md")) as fh:
        cited = re.findall(r"`(test_\w+)\.(test_\w+)(…?)`", fh.read())
    problems = []
    for module, name, cut in cited:
        path = os.path.join(top, "tests", "integration", module + ".py")
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            problems.append(f"SECURITY.md: no test file {module}.py")
            continue
        pattern = "^def " + name + ("" if cut else r"\(")
        if not re.search(pattern, text, re.M):
            problems.append(f"SECURITY.md: {module}.{name}{cut} is not a test")
    if len(cited) < 20:
        problems.append(f"SECURITY.md: only {len(cited)} tests cited (the parser missed them?)")
    return problems


def main(top):
    problems = []
    anchors = {}
    for f in os.listdir(os.path.join(top, "docs")):
        if f.endswith(".md"):
            with open(os.path.join(top, "docs", f)) as fh:
                anchors[f] = set(re.findall(r'<a id="([^"]+)"', fh.read()))
    outside = re.compile(r"qemu-reference|CONTRACT\.md|reference B\d")
    me = os.path.abspath(__file__)
    for path in sources(top):
        if os.path.abspath(path) == me:
            continue
        with open(path, errors="replace") as fh:
            text = fh.read()
        rel = os.path.relpath(path, top)
        if outside.search(text):
            problems.append(f"{rel}: cites a document outside the repository")
        for doc, anchor in re.findall(r"docs/([\w-]+\.md)#([\w-]+)", text):
            if anchor not in anchors.get(doc, ()):
                problems.append(f"{rel}: docs/{doc}#{anchor} does not exist")
    with open(os.path.join(top, "debian", "libqstats0.symbols")) as fh:
        symbols = re.findall(r"^ (\w+)@Base", fh.read(), re.M)
    with open(os.path.join(top, "docs", "embedding.md")) as fh:
        guide = fh.read()
    for s in symbols:
        if f"`{s}(" not in guide:
            problems.append(f"docs/embedding.md: no contract for {s}")
    problems += security_citations(top)
    for p in problems:
        print(p)
    print(f"{len(anchors)} documents, {len(symbols)} exported symbols: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
