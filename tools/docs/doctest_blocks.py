"""A griffe extension for the docs site (mkdocs.yml): doctests become code blocks.

numpydoc renders the ``>>>`` examples of an ``Examples`` section as code, but many of
millstream's docstrings have their runnable example in the summary's text, where Markdown
would read ``>>>`` as nested quotes and ``x[1][2]`` as a link. This wraps each such
doctest block (from its first ``>>>`` line to the next blank line, as doctest reads it) in
a fenced ``pycon`` block. Only the site's copy of the docstring changes: the source, and so
what doctest runs, stays as written. Sphinx roles in the text (``:class:`~a.B```,
``:meth:`copy```), which Markdown does not know, become code spans (`` `B` ``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`~?([^`]+)`")


def _role_to_code(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = target.rsplit(".", 1)[-1] if match.group(0).count("`~") else target
    return f"`{shown}`"


def fence_doctests(text: str) -> str:
    """``text`` with its doctest blocks outside ``Examples`` sections fenced as ``pycon``.

    A block starts at a ``>>>`` line outside a fence and an ``Examples`` section and ends
    at the next blank line; the fences take the indentation of its first line.
    """
    lines = text.splitlines()
    out: list[str] = []
    section = ""
    in_fence = False
    in_doctest = False
    indent = ""
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if in_doctest and not line.strip():
            out.append(indent + "```")
            in_doctest = False
        if not in_doctest and not in_fence and line.strip() and _UNDERLINE.match(following):
            section = line.strip().lower()
        if _FENCE.match(line) and not in_doctest:
            in_fence = not in_fence
        elif (
            not in_fence
            and not in_doctest
            and section != "examples"
            and line.lstrip().startswith(">>>")
        ):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + "```pycon")
            in_doctest = True
        if not in_fence and not in_doctest and not line.lstrip().startswith(">>>"):
            line = _ROLE.sub(_role_to_code, line)
        out.append(line)
    if in_doctest:
        out.append(indent + "```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctests of every docstring griffe loads (see :func:`fence_doctests`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
