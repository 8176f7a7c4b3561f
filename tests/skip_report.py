#!/usr/bin/env python3
"""Lists the tests a ctest run skipped, with their reasons, and fails when
one is not in tests/skips-allowed.  A skip hides a regression, so the only
skips allowed are of tests about the micro-VM itself on machines without
/dev/kvm; scripts/test.sh runs this after each suite.

Usage: skip_report.py ALLOWED LASTTEST.LOG...

Recognised in ctest's LastTest.log:
  python suites (tests/integration/qstest.py)  "SKIP <test>: <reason>"
  cmocka suites                                "skipped: <reason>" then
                                               "[  SKIPPED ] <test>"
  a whole ctest entry reported as skipped      "Test Skipped" (exit 77)
"""
import fnmatch
import re
import sys


def skips(log):
    """[(id, reason)] with id "<ctest name>.<test>" (or the ctest name)."""
    out, suite, reason, running = [], None, "", None
    with open(log, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"\d+/\d+ Testing: (\S+)", line)
            if m:
                suite, reason, running = m.group(1), "", None
                continue
            m = re.match(r"\[ RUN      \] (\w+)", line)
            if m:
                running = m.group(1)
                continue
            m = re.match(r"SKIP (\w+): (.*)", line)
            if m:
                out.append((f"{suite}.{m.group(1)}", m.group(2)))
                continue
            m = re.match(r"skipped: (.*)", line)
            if m:
                reason = m.group(1)
                continue
            m = re.match(r"\[  SKIPPED \] (\w+)", line)
            if m and m.group(1) == running:      # not cmocka's closing summary
                running = None
                out.append((f"{suite}.{m.group(1)}", reason or "no reason given"))
                reason = ""
                continue
            if line.startswith("Test Skipped") or "***Skipped" in line:
                out.append((suite, "the whole suite skipped"))
    return out


def allowed_patterns(path):
    with open(path) as f:
        return [l.split("#", 1)[0].strip() for l in f if l.split("#", 1)[0].strip()]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    patterns = allowed_patterns(argv[0])
    found = sorted({s for log in argv[1:] for s in skips(log)})
    bad = [s for s in found if not any(fnmatch.fnmatchcase(s[0], p) for p in patterns)]
    print(f"skipped tests: {len(found)}" + (" (all of them micro-VM tests, allowed by "
                                            f"{argv[0]})" if found and not bad else ""))
    for name, reason in found:
        mark = "  NOT ALLOWED" if (name, reason) in bad else ""
        print(f"  {name}: {reason}{mark}")
    if bad:
        print(f"{len(bad)} skipped test(s) are not micro-VM tests listed in {argv[0]}: "
              "a skip there hides a regression", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
