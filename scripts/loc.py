"""Production Python size at git revisions: physical lines and statements.

    python scripts/loc.py 37d4692 HEAD

Production is `services/*/src` and `libs/*/src`. "lines" is `wc -l` of those files; "statements"
counts logical lines (tokenize NEWLINE tokens, docstrings left out), which line wrapping and the
formatter's settings do not change.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tokenize


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def production_files(rev: str) -> list[str]:
    names = _git("ls-tree", "-r", "--name-only", rev, "services", "libs").split()
    return [n for n in names if n.endswith(".py") and n.split("/")[2:3] == ["src"]]


def statements(source: str) -> int:
    count, first, docstring = 0, True, False
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NEWLINE:
            count += not docstring
            first, docstring = True, False
        elif first:
            first, docstring = False, tok.type == tokenize.STRING
        elif tok.type != tokenize.STRING:
            docstring = False
    return count


def main(revs: list[str]) -> None:
    for rev in revs or ["HEAD"]:
        sources = [_git("show", f"{rev}:{name}") for name in production_files(rev)]
        lines = sum(len(s.splitlines()) for s in sources)
        print(f"{rev}: {lines} lines, {sum(map(statements, sources))} statements")


if __name__ == "__main__":
    main(sys.argv[1:])
