"""The manual pages (docs/man/, man(7) roff) against the programs of this
build: each page's OPTIONS lists exactly the options the program's --help
lists (group by group: `qstats` has its own options and those of `top`),
qstatsd(8) lists exactly the QMP commands of query-commands and the HMP
commands of `help`, qstats(1) the commands of its --help, every page names
the version the programs print, and groff and mandoc render them without a
warning.  A new option, command or release fails here until its page says
so."""
import os
import re
import shutil
import subprocess

from qstest import BUILD, Daemon, run_module, skip

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(SRC, "docs", "man")
PAGES = {"qstatsd": "qstatsd.8", "qstats": "qstats.1", "qstats-guest-agent": "qstats-guest-agent.8"}
OPTION = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9-]*")
OPTION_IN_TEXT = re.compile(r"(?<![\w-])" + OPTION.pattern)


def program(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        # Only the client is optional (it needs libedit at build time).
        skip(f"{name} is not built (CMake found no libedit)")
    return path


def help_text(name):
    r = subprocess.run([program(name), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, (name, r.returncode, r.stderr)
    return r.stdout


# ---- --help ------------------------------------------------------------------

def help_groups(text):
    """{group: {option, ...}} from --help: option lines are indented less
    than 8 columns and start with '-' (deeper lines continue a description);
    a group is named by the unindented line ending in ':' above it ("" for
    none and for "Options:")."""
    groups, group = {}, ""
    for line in text.splitlines():
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if indent == 0 and body.endswith(":"):
            group = "" if body == "Options:" else body[:-1]
        elif body.startswith("-") and indent < 8:
            groups.setdefault(group, set()).update(leading_options(body))
    return groups


def leading_options(tag):
    """The options at the start of "-s, --socket SOCKET  text"."""
    out = []
    while True:
        m = OPTION.match(tag)
        if not m:
            return out
        out.append(m.group(0))
        tag = tag[m.end():]
        if not tag.startswith(", "):
            return out
        tag = tag[2:]


def help_commands(text):
    """The command words of a --help "Commands:" group."""
    out, inside = set(), False
    for line in text.splitlines():
        if line and not line.startswith(" "):
            inside = line == "Commands:"
        elif inside and line.startswith("  ") and not line.startswith("   "):
            out.add(line.split()[0])
    return out


# ---- roff ---------------------------------------------------------------------

def plain(roff):
    """Roff text without font escapes and with \\- as '-'."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", roff)
    text = text.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\")
    text = re.sub(r"\\[&%c]", "", text)
    return text.replace('"', "")


def sections(page):
    """{SECTION: [(SUBSECTION, [lines])]} of a page's source."""
    with open(os.path.join(MAN, page)) as f:
        lines = f.read().splitlines()
    out, sec, sub = {}, None, ""
    for line in lines:
        if line.startswith(".SH "):
            sec, sub = plain(line[4:]).strip(), ""
            out[sec] = [("", [])]
        elif line.startswith(".SS ") and sec:
            sub = plain(line[4:]).strip()
            out[sec].append((sub, []))
        elif sec:
            out[sec][-1][1].append(line)
    return out


def tags(lines):
    """The tag lines of .TP / .TQ items, as plain text."""
    out = []
    for i, line in enumerate(lines[:-1]):
        if line.split()[:1] in ([".TP"], [".TQ"]):
            tag = lines[i + 1]
            if tag.startswith("."):
                tag = tag.split(None, 1)[1] if " " in tag else ""
            out.append(plain(tag).strip())
    return out


def man_option_groups(page):
    """{subsection: {option, ...}} of the OPTIONS section."""
    groups = {}
    for sub, lines in sections(page)["OPTIONS"]:
        opts = set()
        for tag in tags(lines):
            opts.update(leading_options(tag))
        if opts or sub:
            groups[sub] = opts
    return groups


def man_tag_words(page, section, sub=""):
    return [t.split()[0] for s, lines in sections(page)[section] if s == sub
            for t in tags(lines) if t.split()]


# ---- tests ------------------------------------------------------------------------

def check_options(name):
    help_side = help_groups(help_text(name))
    man_side = man_option_groups(PAGES[name])
    assert help_side, f"{name} --help lists no option"
    assert help_side == man_side, (
        f"{name}: --help and {PAGES[name]} disagree\n"
        f"  only in --help: { {g: sorted(o - man_side.get(g, set())) for g, o in help_side.items()} }\n"
        f"  only in the page: { {g: sorted(o - help_side.get(g, set())) for g, o in man_side.items()} }")
    synopsis = {o for t in sections(PAGES[name])["SYNOPSIS"] for l in t[1]
                for o in OPTION_IN_TEXT.findall(plain(l))}
    documented = set().union(*man_side.values())
    assert synopsis <= documented, f"{name}: SYNOPSIS has {sorted(synopsis - documented)}"


def test_qstatsd_page_lists_exactly_the_options_of_its_help():
    check_options("qstatsd")


def test_qstats_page_lists_exactly_the_options_of_its_help_and_of_top():
    check_options("qstats")
    assert "top options" in help_groups(help_text("qstats"))


def test_guest_agent_page_lists_exactly_the_options_of_its_help():
    check_options("qstats-guest-agent")


def test_qstats_page_lists_exactly_the_commands_of_its_help():
    in_help = help_commands(help_text("qstats"))
    in_page = set(man_tag_words("qstats.1", "COMMANDS"))
    assert in_help and in_help == in_page, (sorted(in_help), sorted(in_page))


def test_qstatsd_page_lists_exactly_the_qmp_commands_of_query_commands():
    with Daemon(recorded=1) as d:
        served = {c["name"] for c in d.qmp().ok("query-commands")}
    in_page = man_tag_words("qstatsd.8", "QMP COMMANDS")
    assert len(in_page) == len(set(in_page)), in_page
    assert served == set(in_page), (f"only served: {sorted(served - set(in_page))}, "
                                    f"only in the page: {sorted(set(in_page) - served)}")


def hmp_listing(q, line):
    """The heads of an HMP help listing ("name|alias args -- text"), as word
    lists with the aliases dropped."""
    text = q.ok("human-monitor-command", {"command-line": line})
    heads = [l.split(" -- ")[0].split() for l in text.splitlines() if " -- " in l]
    return [[h[0].split("|")[0], *h[1:]] for h in heads]


def test_qstatsd_page_lists_exactly_the_hmp_commands_of_help():
    with Daemon(recorded=1) as d:
        q = d.qmp()
        top, info = hmp_listing(q, "help"), hmp_listing(q, "help info")
    served = {h[0] for h in top if h[0] != "info"} | {"info " + h[1] for h in info}
    assert "info" in {h[0] for h in top} and len(info) >= 3, (top, info)
    in_page = set()
    for _, lines in sections("qstatsd.8")["HMP COMMANDS"]:
        for tag in tags(lines):
            words = tag.replace("|", " ").split()
            in_page.add(" ".join(words[:2]) if words[0] == "info" else words[0])
    assert served == in_page, (f"only served: {sorted(served - in_page)}, "
                               f"only in the page: {sorted(in_page - served)}")


def test_pages_name_the_version_the_programs_print():
    for name, page in PAGES.items():
        if name == "qstats" and not os.path.exists(os.path.join(BUILD, name)):
            continue
        out = subprocess.run([program(name), "--version"], capture_output=True, text=True,
                             timeout=30).stdout.split()
        with open(os.path.join(MAN, page)) as f:
            th = next(l for l in f if l.startswith(".TH "))
        assert f'"qstats {out[-1]}"' in th, (page, th, out)


def test_pages_render_without_warnings_in_groff_and_mandoc():
    for tool in ("groff", "mandoc"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/deps.sh installs it)"
    for page in PAGES.values():
        path = os.path.join(MAN, page)
        r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and not r.stderr, (page, r.stderr)
        r = subprocess.run(["mandoc", "-T", "lint", "-W", "all", path], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and not r.stdout and not r.stderr, (page, r.stdout, r.stderr)


if __name__ == "__main__":
    run_module(globals())
