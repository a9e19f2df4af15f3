"""LaTeX in rendered markdown → MathML, so a feedback page shows equations without a network.

nbconvert's pages load MathJax from a CDN; a student who opens their feedback offline (or behind a
hub that blocks the CDN) sees raw ``$\\operatorname{shift}(x)$``. Browsers render MathML natively
(Chromium ≥ 109, Firefox, Safari), so ``render_math`` rewrites ``$…$`` and ``$$…$$`` in HTML that
nbconvert's markdown renderer produced, outside ``<code>`` and ``<pre>``, with ``latex2mathml``.
The result still goes through the sanitizer: ``TAGS`` and ``ATTRIBUTES`` are the MathML it keeps
(no ``href``, no ``maction``: nothing in MathML that can link or script).
"""
from __future__ import annotations

import html
import re

#: MathML elements latex2mathml writes (presentation MathML; nothing that links or scripts)
TAGS = frozenset({"math", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac",
                  "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded",
                  "mphantom", "menclose", "merror", "semantics", "annotation"})
ATTRIBUTES = {"math": ["xmlns", "display"], "mo": ["stretchy", "fence", "separator", "form", "lspace", "rspace",
                                                   "largeop", "movablelimits", "accent", "minsize", "maxsize"],
              "mi": ["mathvariant"], "mn": ["mathvariant"], "mtext": ["mathvariant"], "mover": ["accent"],
              "munder": ["accentunder"], "munderover": ["accent", "accentunder"], "mfrac": ["linethickness"],
              "mstyle": ["displaystyle", "scriptlevel", "mathvariant", "mathsize"], "mspace": ["width"],
              "mtable": ["columnalign", "rowspacing", "columnspacing", "displaystyle"], "mtd": ["columnalign"],
              "mpadded": ["width", "lspace", "height", "depth", "voffset"], "menclose": ["notation"],
              "annotation": ["encoding"]}

_TAG = re.compile(r"(<[^>]*>)")
_VERBATIM = re.compile(r"<(/?)(pre|code)[\s>]", re.I)
_DISPLAY = re.compile(r"\$\$([^$]+?)\$\$")
_INLINE = re.compile(r"(?<![\\$])\$(?=[^\s$])([^$]*?[^\s$\\])\$(?!\d)")


def latex_to_mathml(latex: str, display: bool = False) -> str | None:
    """One formula as a ``<math>`` element, or ``None`` if latex2mathml cannot read it."""
    try:
        from latex2mathml.converter import convert

        return convert(latex.strip(), display="block" if display else "inline")
    # an unreadable formula (or no latex2mathml) stays as LaTeX: the parser raises many kinds of error
    except Exception:  # noqa: BLE001 - on odd input, and the feedback page must render all the same
        return None


def render_math(rendered: str) -> str:
    """``rendered`` (HTML from a markdown renderer) with its ``$…$``/``$$…$$`` spans as MathML.

    Only text between tags is read (never an attribute, such as a heading's anchor); the LaTeX is
    HTML-unescaped before conversion (the renderer escaped ``<`` and ``&``); code and preformatted
    text are left alone; a formula latex2mathml cannot read is kept as text. Inline math follows
    Pandoc's rule: no space after the opening ``$`` or before the closing one, and no digit right
    after it, so "costs $5 and $10" stays prose.
    """
    def swap(display):
        def one(m):
            out = latex_to_mathml(html.unescape(m.group(1)), display)
            return m.group(0) if out is None else out
        return one

    parts, verbatim = _TAG.split(rendered), 0
    for i, part in enumerate(parts):
        if i % 2:                           # odd parts are tags
            m = _VERBATIM.match(part)
            if m:
                verbatim = max(0, verbatim + (-1 if m.group(1) else 1))
        elif not verbatim and "$" in part:
            parts[i] = _INLINE.sub(swap(False), _DISPLAY.sub(swap(True), part))
    return "".join(parts)
