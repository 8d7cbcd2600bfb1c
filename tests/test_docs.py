"""The user docs cannot drift from the ``wj`` command.

Every ``wj <subcommand>`` named in a code block of ``docs/*.md`` must be a subcommand of the
real parser (:func:`spark_conf.entry.build_parser`), and every option of a ``wj`` command line
(a line of a ``bash``/``sh`` block, a ``$ wj ...`` line of any block, or an inline code span
starting with ``wj``) must be an option of that subcommand's parser. A wrong option name
fails here, not in a user's terminal.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from spark_conf.entry import build_parser

DOCS = sorted((Path(__file__).resolve().parent.parent / "docs").glob("*.md"))
_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"(?<!`)`(wj [^`\n]+)`(?!`)")
_MENTION = re.compile(r"(?<![\w./-])wj\s+((?:-\S+\s+)*)([a-z][\w-]*)")
_SHELL = {"bash", "sh", "shell", "console"}
_ENDS = {"|", "||", "&&", ";", ">", ">>", "<", ")", "(", "&", "$", "`"}


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """``(language, text)`` of each fenced block."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(path.read_text())]


def command_lines(lang: str, text: str) -> list[str]:
    """The logical command lines of a block: continuation lines joined (trailing ``\\``, or a
    quote left open), a ``$ `` prompt removed; in non-shell blocks only ``$ `` lines."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending:
            if line.startswith("$ "):
                line = line[2:]
            elif lang not in _SHELL:
                continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quoted string spans lines (multi-line SQL)
            continue
        out.append(pending)
        pending = ""
    assert not pending, f"unterminated command line in a {lang} block: {pending!r}"
    return out


def inline_commands(path: Path) -> list[str]:
    """Inline code spans that are ``wj`` command lines, outside fenced blocks (not quoted
    messages such as ``wj sql: error: ...``)."""
    spans = _INLINE.findall(_FENCE.sub("", path.read_text()))
    return [s for s in spans if not re.match(r"wj [\w-]+:", s)]


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def wj_invocations(line: str) -> list[list[str]]:
    """The argument lists of each ``wj ...`` in a command line (up to a pipe, ``;``,
    redirection or the end of a ``$( )``)."""
    tokens = _tokens(line)
    calls = []
    for i, token in enumerate(tokens):
        if token != "wj" or (i and tokens[i - 1] not in _ENDS | {"(", "$"} and
                             not tokens[i - 1].endswith(("(", "="))):
            continue
        args = []
        for t in tokens[i + 1:]:
            if t in _ENDS:
                break
            args.append(t)
        calls.append(args)
    return calls


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_invocation(root: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Problems with one ``wj`` argument list: an unknown subcommand or option."""
    parser, name, problems = root, "wj", []
    remainder = False
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1:
            option = token.split("=", 1)[0]
            action = parser._option_string_actions.get(option)
            if action is None:
                problems.append(f"`{name}` has no option {option}")
                continue
            if action.nargs != 0 and "=" not in token and rest:
                rest.pop(0)
            continue
        subs = _subparsers(parser)
        if subs:
            if token not in subs:
                problems.append(f"`{name}` has no subcommand {token!r}")
                break
            parser, name = subs[token], f"{name} {token}"
            remainder = any(a.nargs == argparse.REMAINDER for a in parser._actions)
            continue
        if remainder:  # e.g. `wj submit script.py --the --script's --args`
            break
    return problems


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def test_docs_exist_and_have_commands():
    names = {p.name for p in DOCS}
    assert {"sql.md", "checkpoints.md", "spark.md", "troubleshooting.md"} <= names
    lines = [line for p in DOCS for lang, text in code_blocks(p)
             for line in command_lines(lang, text)]
    assert sum(len(wj_invocations(line)) for line in lines) >= 20


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_subcommand_mentioned_exists(parser, doc):
    commands = _subparsers(parser)
    unknown = [(m.group(2), text.count("\n", 0, m.start()))
               for _, text in code_blocks(doc) for m in _MENTION.finditer(text)
               if m.group(2) not in commands]
    assert not unknown, f"{doc.name}: unknown wj subcommands {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_option_of_a_command_line_exists(parser, doc):
    problems = []
    lines = [line for lang, text in code_blocks(doc) for line in command_lines(lang, text)]
    for line in lines + inline_commands(doc):
        for args in wj_invocations(line):
            problems += [f"{p}: {line.strip()[:80]}" for p in check_invocation(parser, args)]
    assert not problems, f"{doc.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize(("line", "problem"), [
    ("wj sql 'select 1' --no-such-flag", "`wj sql` has no option --no-such-flag"),
    ("wj nosuch --x", "`wj` has no subcommand 'nosuch'"),
    ("wj rig up --bucket b --prot 9", "`wj rig up` has no option --prot"),
    ("eval $(wj rig env --json)", "`wj rig env` has no option --json"),
    ("wj sql -t t=/x \"SELECT '--x'\" | wj status s3://b/q/ --wach 2",
     "`wj status` has no option --wach"),
])
def test_checker_catches_mistakes(parser, line, problem):
    """The checker itself: each wrong line gives exactly the expected complaint."""
    found = [p for args in wj_invocations(line) for p in check_invocation(parser, args)]
    assert found == [problem]


def test_checker_accepts_what_wj_accepts(parser):
    """Lines the real parser parses without error give no complaint (and the script's own
    arguments after ``wj submit script.py`` are the script's)."""
    for line in ["wj submit job.py --its --own args",
                 "wj gc s3://b/ck/ --older-than=7d --dry-run --json",
                 "wj sql --file q.sql -t a=/x --format csv --max-rows 0"]:
        (args,) = wj_invocations(line)
        parser.parse_args(args)
        assert check_invocation(parser, args) == []


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_between_docs_resolve(doc):
    """Every relative link ``[..](page.md#anchor)`` names an existing page and heading."""
    text = _FENCE.sub("", doc.read_text())
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        page, _, anchor = target.partition("#")
        path = doc.parent / page if page else doc
        if not path.is_file():
            broken.append(target)
            continue
        headings = re.findall(r"^#+\s+(.+)$", _FENCE.sub("", path.read_text()), re.MULTILINE)
        if anchor and anchor not in {_anchor(h) for h in headings}:
            broken.append(target)
    assert not broken, f"{doc.name}: broken links {broken}"
