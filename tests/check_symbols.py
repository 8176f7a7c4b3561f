#!/usr/bin/env python3
"""The ABI of libqstats.so is deliberate: the dynamic symbols it defines
must be exactly those of debian/libqstats0.symbols, the one committed list
(adding one is an edit of that file, debian/update-symbols; removing one is
an ABI break), and every one of them must be declared with QS_EXPORT in an
installed public header (nothing internal leaks).

Usage: check_symbols.py LIBQSTATS.SO SYMBOLS-FILE HEADER..."""
import re
import subprocess
import sys


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return {f[2] for f in (l.split() for l in out.splitlines())
            if len(f) == 3 and f[1] in "TDBRWV"}


def declared(headers):
    names = set()
    for h in headers:
        with open(h) as f:
            text = f.read()
        names |= set(re.findall(r"QS_EXPORT[^;(]*?\b(qs_\w+)\s*\(", text))
    return names


def main(lib, listing, *headers):
    with open(listing) as f:      # dpkg-gensymbols format: " name@Base version"
        pinned = set(re.findall(r"^ (\w+)@Base ", f.read(), re.M))
    have, public = exported(lib), declared(headers)
    problems = []
    for s in sorted(have - pinned):
        problems.append(f"exported but not in {listing}: {s}")
    for s in sorted(pinned - have):
        problems.append(f"in {listing} but no longer exported (ABI break): {s}")
    for s in sorted(have - public):
        problems.append(f"exported but not declared QS_EXPORT in a public header: {s}")
    for s in sorted(public - have):
        problems.append(f"declared QS_EXPORT but not exported: {s}")
    for p in problems:
        print(p)
    print(f"{len(have)} exported symbols, {len(pinned)} pinned, {len(public)} public")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
