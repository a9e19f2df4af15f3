"""Feedback without hidden tests and without live student code: what a student sees.

nbgrader's ``ClearHiddenTests`` removes the hidden block from a grade cell's *source*, but an
error's traceback quotes the lines around the failing call — often hidden-test lines (a reference
implementation, the inputs it draws). ``ShortenGradeTracebacks`` replaces the traceback of every
error in a grade cell by its last line, ``ExceptionName: message``: the check's own message (what
was expected, what came back, the seed) is kept, the test code is not.

``SanitizeFeedback`` makes the page safe to open: no script, event handler or ``javascript:``
link from a student's outputs or written answers survives (bleach, the sanitizer nbconvert uses);
equations become MathML (``mathml``), which the browser draws without a network.
"""
from __future__ import annotations

import bleach
import markupsafe
from nbgrader.preprocessors import NbGraderPreprocessor

from . import mathml


class ShortenGradeTracebacks(NbGraderPreprocessor):
    """Error outputs of grade cells keep only ``ename: evalue``."""

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"\x1b[0;31m{out.get('ename', 'Error')}\x1b[0m: {out.get('evalue', '')}"]
        return cell, resources


#: HTML a written answer, a markdown output or an HTML output keeps; bleach escapes every other tag,
#: drops every other attribute (event handlers, style, id) and every link that is not http(s)/mailto
TAGS = frozenset(bleach.ALLOWED_TAGS | {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "span", "div",
                                        "table", "thead", "tbody", "tr", "th", "td", "caption", "sup", "sub", "del",
                                        "s", "dl", "dt", "dd", "kbd", "samp", "var", "mark", "small", "details",
                                        "summary"} | mathml.TAGS)
ATTRIBUTES = {**mathml.ATTRIBUTES, "a": ["href", "title"], "abbr": ["title"], "acronym": ["title"],
              "th": ["colspan", "rowspan", "align"],
              "td": ["colspan", "rowspan", "align"], "*": ["class"],
              **{f"h{i}": ["id", "class"] for i in range(1, 7)}}      # headings keep their anchors
PROTOCOLS = frozenset({"http", "https", "mailto"})
#: output data a feedback page shows (nbconvert's templates escape text, LaTeX and image data);
#: JavaScript, SVG, widgets and anything else are dropped
SAFE_DATA = ("text/plain", "text/latex", "image/png", "image/jpeg")


def clean_html(html: str) -> str:
    """``html`` through bleach with the allow-lists above."""
    return bleach.clean(html, tags=TAGS, attributes=ATTRIBUTES, protocols=PROTOCOLS, strip=False, strip_comments=True)


def safe_markdown(source: str) -> str:
    """Markdown rendered to HTML (nbconvert's renderer, the one the feedback template uses), its
    equations as MathML, cleaned, as one line inside a ``<div>``: the template's own markdown pass
    then keeps it as a raw HTML block, unchanged (a line break inside ``<pre>`` survives as ``&#10;``)."""
    from nbconvert.filters.markdown import markdown2html

    html = clean_html(mathml.render_math(markdown2html(source or ""))).replace("\r", "")
    return '<div class="effcourse-sanitized">' + html.replace("\n", "&#10;") + "</div>"


def _safe_metadata(meta) -> dict:
    """Of an output's metadata, only what the template may print: integer width/height, alt text,
    the unconfined and isolated flags (``filenames`` would point an image anywhere)."""
    out = {}
    for mime, value in (meta or {}).items():
        if not isinstance(value, dict):
            continue
        keep = {k: v for k, v in value.items()
                if (k in ("width", "height") and isinstance(v, int) and not isinstance(v, bool))
                or (k == "alt" and isinstance(v, str)) or (k in ("unconfined", "isolated") and isinstance(v, bool))}
        if keep:
            out[mime] = keep
    return out


class SanitizeFeedback(NbGraderPreprocessor):
    """Feedback HTML shows a student's outputs and written answers, never runs them.

    Without it, a submission's ``<script>`` (in an HTML or JavaScript output, an SVG, a markdown
    answer), an event handler (``<img onerror=...>``) or a ``javascript:`` link would run in the
    browser of whoever opens the feedback page. Here every markdown cell and grade comment becomes
    cleaned HTML (``safe_markdown``), HTML and markdown outputs are cleaned with bleach, other
    output types but text, LaTeX and PNG/JPEG images are dropped, output metadata is reduced to
    what the template prints safely, widget state is removed, and nbconvert's own sanitizing
    (``HTMLExporter.sanitize_html``) is switched on for the templates' blocks. Add it last in
    ``c.GenerateFeedback.preprocessors``.
    """

    def preprocess(self, nb, resources):
        resources["should_sanitize_html"] = True        # nbconvert's templates: no scripts, no widgets
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader")
        if isinstance(meta, dict):
            if meta.get("grade_id") is not None:
                meta["grade_id"] = str(markupsafe.escape(str(meta["grade_id"])))
            if meta.get("comment"):
                meta["comment"] = safe_markdown(str(meta["comment"]))
        cell.pop("attachments", None)
        if cell.cell_type == "markdown":
            cell.source = safe_markdown(cell.source)
        elif cell.cell_type == "raw":
            cell.source = clean_html(cell.source)
        elif cell.cell_type == "code":
            if not isinstance(cell.get("execution_count"), int):
                cell.execution_count = None
            cell.outputs = [o for o in map(self._clean_output, cell.get("outputs", [])) if o is not None]
        return cell, resources

    @staticmethod
    def _clean_output(out):
        kind = out.get("output_type")
        if kind == "stream":                             # the template escapes text (ansi2html)
            return out if isinstance(out.get("text"), str) else None
        if kind == "error":
            out["ename"], out["evalue"] = str(out.get("ename", "")), str(out.get("evalue", ""))
            out["traceback"] = [str(line) for line in out.get("traceback", [])]
            return out
        if kind not in ("display_data", "execute_result"):
            return None
        data = out.get("data", {})
        clean = {k: data[k] for k in SAFE_DATA if isinstance(data.get(k), str)}
        html = data.get("text/html")
        if isinstance(html, str):
            clean["text/html"] = clean_html(html)
        elif isinstance(data.get("text/markdown"), str):
            from nbconvert.filters.markdown import markdown2html

            clean["text/html"] = clean_html(markdown2html(data["text/markdown"]))
        if not clean:
            return None
        out["data"] = clean
        out["metadata"] = _safe_metadata(out.get("metadata"))
        if kind == "execute_result" and not isinstance(out.get("execution_count"), int):
            out["execution_count"] = None
        return out
