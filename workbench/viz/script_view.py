"""Syntax-highlighted script text, one HTML string per line (pygments).

Each line is highlighted on its own so the widget can show, hide, mark and
lazily render single lines; tokens that span lines are split at the newline.

>>> lines = highlight_lines("for i in range(4):\\n    x = 1")
>>> len(lines)
2
>>> 'class="k"' in lines[0]
True
"""
from __future__ import annotations

import html

from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES

_STYLE = "default"


def _css_class(ttype) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight_lines(source: str) -> list[str]:
    """The script as a list of HTML lines with pygments token classes (``<span class="k">``).

    The classes are styled by ``code_css(".wb-code")``. Lines are lexed one by one
    and repeated lines (common in generated programs) only once, which keeps a
    10,000-line program to a fraction of a second; the script form has no
    multi-line tokens, so nothing is lost.
    """
    memo: dict[str, str] = {}
    lexer = PythonLexer(stripnl=False, ensurenl=False)
    out = []
    for line in source.splitlines():
        h = memo.get(line)
        if h is None:
            h = memo[line] = _highlight_one(lexer, line)
        out.append(h)
    return out


def _highlight_one(lexer, line: str) -> str:
    parts = []
    for ttype, value in lexer.get_tokens(line):
        if value:
            esc = html.escape(value.replace("\n", ""), quote=False)
            cls = _css_class(ttype)
            parts.append(f'<span class="{cls}">{esc}</span>' if cls and esc else esc)
    return "".join(parts)


def _highlight_block(source: str) -> list[str]:
    lines: list[list[str]] = [[]]
    for ttype, value in PythonLexer().get_tokens(source):
        cls = _css_class(ttype)
        parts = value.split("\n")
        for k, part in enumerate(parts):
            if k:
                lines.append([])
            if part:
                esc = html.escape(part, quote=False)
                lines[-1].append(f'<span class="{cls}">{esc}</span>' if cls else esc)
    # the lexer always ends with a newline token: drop the empty tail it makes
    want = len(source.splitlines())
    out = ["".join(x) for x in lines]
    return out[:want] if want else []


def highlight_inline(source: str) -> list[str]:
    """Like ``highlight_lines`` but with inline ``style=`` colours (for the static HTML view)."""
    style = HtmlFormatter(style=_STYLE).style
    lines: list[list[str]] = [[]]
    for ttype, value in PythonLexer().get_tokens(source):
        t = ttype
        while not style.styles_token(t) and t.parent is not None:
            t = t.parent
        st = style.style_for_token(t)
        css = []
        if st.get("color"):
            css.append(f"color:#{st['color']}")
        if st.get("bold"):
            css.append("font-weight:bold")
        if st.get("italic"):
            css.append("font-style:italic")
        for k, part in enumerate(value.split("\n")):
            if k:
                lines.append([])
            if part:
                esc = html.escape(part, quote=False)
                lines[-1].append(f'<span style="{";".join(css)}">{esc}</span>' if css else esc)
    want = len(source.splitlines())
    return ["".join(x) for x in lines][:want]


def code_css(prefix: str = ".wb-code", style: str = _STYLE) -> str:
    """The CSS rules of the pygments classes, scoped under ``prefix`` (``style``: a pygments style)."""
    return HtmlFormatter(style=style).get_style_defs(prefix)


__all__ = ["highlight_lines", "highlight_inline", "code_css"]
