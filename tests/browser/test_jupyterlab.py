"""Every lab in a real JupyterLab, driven by headless Chromium (issue 10).

Per lab (discovered with ``effcourse.grading.labs()``):

* the release notebook (``labs/<lab>/``) opens and shows the lab's title, every exercise cell with
  its ``YOUR CODE HERE`` stub and the nbgrader ``Validate`` button; it is never modified;
* a copy of the solution notebook runs through Run > Run All Cells in the smoke profile (every line,
  experiments at their smallest; the QUICK run is papermill's, in make test): no error output, every code
  cell executed, at least one rendered matplotlib figure, every ipywidgets view rendered (no "Error
  displaying widget"), each slider moved with the keyboard and each dropdown changed, and the output
  it drives seen to change; the nbgrader Create Assignment panel shows the lab's cells and points.

Plus: ``jupyter labextension list`` shows the nbgrader and widgets extensions enabled and OK, and a
tiny probe notebook proves the widget gestures and nbgrader's Validate button work end to end, and a
tiny autograded lab's feedback page (nbgrader generate_feedback, the course's template) is checked
as a student sees it.
Screenshots and a summary go to ``_artifacts/browser/`` (git-ignored). Run with ``make test-browser``.
"""
from __future__ import annotations

import hashlib
import os
import re
import time

import nbformat
import pytest

from effcourse import grading

pytestmark = pytest.mark.skipif(os.environ.get("EFFCOURSE_BROWSER") != "1",
                                reason="browser test: run `make test-browser` (sets EFFCOURSE_BROWSER=1)")

LABS = grading.labs()
RUN_TIMEOUT = float(os.environ.get("EFFCOURSE_BROWSER_RUN_TIMEOUT", "900"))
TEST_TIMEOUT = RUN_TIMEOUT + 600


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    raise AssertionError("the notebook has no '# Title' markdown heading")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("¶", "")).strip()


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_labextensions_enabled(summary):
    """nbgrader's and ipywidgets' JupyterLab extensions are installed, enabled and compatible."""
    import jlab

    listing = jlab.labextensions()
    for name in ("@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager"):
        lines = [ln for ln in listing.splitlines() if name in ln]
        assert lines, f"{name} is not in `jupyter labextension list`:\n{listing}"
        line = lines[0]
        assert re.search(r"\benabled\b", line) and re.search(r"\bOK\b", line), \
            f"{name} is not 'enabled OK' in `jupyter labextension list`: {line.strip()!r}"
        assert not re.search(r"\bX\b|incompatible|disabled", line, flags=re.I), \
            f"{name} is marked incompatible/disabled: {line.strip()!r}"
    assert not re.search(r"is not compatible|incompatible", listing, flags=re.I), listing
    summary.append("labextensions: " + "; ".join(ln.strip() for ln in listing.splitlines()
                                                 if "nbgrader" in ln or "jupyterlab-manager" in ln))


def test_start_failures_are_clear(tmp_path, monkeypatch):
    """A server or browser that cannot start fails at once, naming the reason; never hangs."""
    import jlab

    bad = jlab.LabServer(tmp_path / "missing-folder", tmp_path / "state-bad")
    with pytest.raises(RuntimeError, match="JupyterLab exited with code"):
        bad.start()
    assert bad.proc is None or bad.proc.poll() is not None

    monkeypatch.setattr(jlab, "SERVER_START_TIMEOUT", 0.5)     # a server too slow to answer in time
    slow = jlab.LabServer(tmp_path, tmp_path / "state-slow")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not answer"):
        slow.start()
    assert time.monotonic() - t0 < 60 and slow.proc is None     # stopped, not left running

    monkeypatch.setattr(jlab, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(RuntimeError, match="install_browser.sh"):
        jlab.launch_browser(None, tmp_path / "profile")


# --- a probe notebook: the widget gestures and nbgrader Validate, on something tiny ----------------

PROBE_CELLS = [
    ("markdown", "# Widget probe\nChecks the browser test's own gestures."),
    ("code", "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
             "from IPython.display import display"),
    ("code", "def wave(freq=2):\n    x = np.linspace(0, 1, 200)\n    fig, ax = plt.subplots(figsize=(4, 2))\n"
             "    ax.plot(x, np.sin(2 * np.pi * freq * x))\n    ax.set_title(f'freq {freq}')\n    plt.show()\n\n"
             "widgets.interact(wave, freq=widgets.IntSlider(value=2, min=1, max=5, description='freq'));"),
    ("code", "out = widgets.Output()\n"
             "letter = widgets.Dropdown(options=['a', 'b', 'c'], value='a', description='letter')\n"
             "def picked(change):\n    with out:\n        out.clear_output()\n        print('picked', change['new'])\n"
             "letter.observe(picked, names='value')\nwith out:\n    print('picked a')\n"
             "display(widgets.VBox([letter, out]))"),
    ("code", "label = widgets.Label('value 1.0')\n"
             "at_max = widgets.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.1, description='at max')\n"
             "at_max.observe(lambda c: setattr(label, 'value', f\"value {c['new']:.1f}\"), names='value')\n"
             "display(widgets.HBox([at_max, label]))"),
]


def _probe_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    for kind, src in PROBE_CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src))
    meta = {"schema_version": 3, "locked": False, "task": False}
    nb.cells.append(nbformat.v4.new_code_cell(
        "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
        metadata={"nbgrader": {**meta, "grade": False, "grade_id": "add", "solution": True}}))
    nb.cells.append(nbformat.v4.new_code_cell(
        "assert add(2, 3) == 5",
        metadata={"nbgrader": {**meta, "grade": True, "grade_id": "test_add", "points": 1, "solution": False,
                               "locked": True}}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.mark.timeout(600)
def test_widget_probe(page, lab_server, artifacts, summary):
    """The gestures used on the labs, proven on a known notebook: a slider driving a matplotlib
    figure through ``interact``, a dropdown driving an ``Output``, a slider at its maximum; then
    nbgrader's Validate button reports success."""
    import jlab

    path = _probe_notebook(artifacts / "work" / "_probe" / "widget_probe.ipynb")
    nb = jlab.Notebook(page, lab_server, path).open()
    secs = nb.run_all(300)
    assert nb.errors() == []
    assert nb.figures() >= 1, "the interact figure was not rendered as an image"
    report = jlab.widget_report(nb)
    assert report["errors"] == 0 and report["unrendered"] == 0, report
    assert report["sliders"] == 2 and report["dropdowns"] == 1, report
    sliders = jlab.move_sliders(nb)
    dropdowns = jlab.change_dropdowns(nb)
    for res in sliders + dropdowns:
        assert res.get("value_changed", True) and res["output_changed"], f"widget did not respond: {res}"
    assert sliders[1]["keys"][-1] == "ArrowLeft", sliders   # the slider at its maximum moved down
    assert sliders[0]["value"] == ("2", "3"), sliders                  # ArrowRight: one step up
    nb.screenshot(artifacts / "widget_probe.png", scroll_to=nb.panel.locator(".jp-OutputArea-output img").first)

    # nbgrader's Validate button (server extension + lab extension), on a notebook that passes
    nb.save()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar .validate-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.first.wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog') || "
                           "!/Validating/i.test(document.querySelector('.jp-Dialog').innerText)", timeout=300_000)
    text = dialog.first.inner_text()
    nb.page.screenshot(path=str(artifacts / "widget_probe_validate.png"))
    assert "Success" in text or "passes" in text, f"nbgrader Validate did not report success:\n{text}"
    dialog.first.locator("button").last.click()
    slid = [(r["slider"], r["keys"], r["value"]) for r in sliders]
    summary.append(f"widget probe: Run All {secs:.0f} s; sliders {slid}; "
                   f"dropdowns {[(r['dropdown'], r['to']) for r in dropdowns]}; outputs changed; Validate: "
                   f"{_norm(text)[:80]!r}")


# --- the labs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lab", LABS)
@pytest.mark.timeout(300)
def test_release_notebook(lab, page, lab_server, artifacts, summary):
    """labs/<lab>: the title and every exercise stub are shown; the Validate button is there."""
    import jlab

    release = jlab.ROOT / "labs" / lab / f"{lab}.ipynb"
    assert release.exists(), f"{release} is missing: run `effcourse release {lab}`"
    digest = _sha(release)
    src = nbformat.read(release, as_version=4)
    title = _title(src)
    stubs = [i for i, c in enumerate(src.cells) if c.cell_type == "code" and "YOUR CODE HERE" in c.source]
    answers = [i for i, c in enumerate(src.cells) if c.cell_type == "markdown" and "YOUR ANSWER HERE" in c.source]
    assert stubs, f"{release} has no exercise cell with a `YOUR CODE HERE` stub"

    t0 = time.monotonic()
    nb = jlab.Notebook(page, lab_server, release).open()
    heading = nb.panel.locator(".jp-MarkdownOutput h1").first
    assert _norm(heading.inner_text()) == _norm(title), f"title shown {heading.inner_text()!r}, expected {title!r}"
    cells = nb.panel.locator(".jp-Notebook .jp-Cell")
    assert cells.count() == len(src.cells), f"JupyterLab shows {cells.count()} cells, the notebook has {len(src.cells)}"
    for i in stubs:
        cell = cells.nth(i)
        cell.scroll_into_view_if_needed()
        text = cell.inner_text()
        assert "YOUR CODE HERE" in text and "NotImplementedError" in text, \
            f"exercise cell {i} does not show its stub; it shows:\n{text[:500]}"
    for i in answers:
        cell = cells.nth(i)
        cell.scroll_into_view_if_needed()
        assert "YOUR ANSWER HERE" in cell.inner_text(), f"written-answer cell {i} does not show YOUR ANSWER HERE"
    validate = nb.panel.locator(".jp-Toolbar .validate-button")
    assert validate.count() == 1 and validate.first.is_visible(), "nbgrader's Validate button is not in the toolbar"
    menu = nbgrader_menu(nb)
    assert any("Formgrader" in m for m in menu) and any("Assignment List" in m for m in menu), \
        f"the Nbgrader menu lacks its entries: {menu}"
    nb.screenshot(artifacts / f"{lab}-release.png", scroll_to=heading)
    secs = time.monotonic() - t0
    assert _sha(release) == digest, f"{release} was modified by opening it in JupyterLab"
    summary.append(f"{lab} release: title {title!r}; {len(stubs)} exercise stubs and {len(answers)} "
                   f"written-answer stubs shown; Validate button present; Nbgrader menu {menu}; {secs:.0f} s; "
                   f"screenshot _artifacts/browser/{lab}-release.png")


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.timeout(TEST_TIMEOUT)
def test_solution_runs(lab, page, lab_server, artifacts, summary):
    """A copy of solutions/<lab> runs all cells in JupyterLab (smoke profile) without error, renders its
    figures and widgets, its widgets respond, and nbgrader's Create Assignment panel shows it."""
    import jlab

    solution = jlab.ROOT / "solutions" / lab / f"{lab}.ipynb"
    copy = jlab.quick_copy(solution, artifacts / "work" / lab)
    src = nbformat.read(copy, as_version=4)
    graded = [c for c in src.cells if _nbgrader(c).get("grade")]
    points = sum(float(_nbgrader(c).get("points", 0)) for c in graded)
    typed = [c for c in src.cells if any(_nbgrader(c).get(k) for k in ("grade", "solution", "task", "locked"))]

    nb = jlab.Notebook(page, lab_server, copy).open()
    secs = nb.run_all(RUN_TIMEOUT)
    errors = nb.errors()
    assert not errors, f"{lab}: error output after Run All Cells:\n" + "\n---\n".join(errors)
    text = nb.text()
    assert "smoke (grading) mode" in text, \
        f"{lab}: the notebook did not report the smoke profile (EFFCOURSE_SMOKE not applied?)"
    figures = nb.figures()
    assert figures >= 1, f"{lab}: no rendered matplotlib figure (<img> in an output)"
    report = jlab.widget_report(nb)
    assert report["errors"] == 0, f"{lab}: {report['errors']} output(s) say 'Error displaying widget'"
    assert report["unrendered"] == 0, f"{lab}: {report['unrendered']} widget(s) never rendered"
    sliders = jlab.move_sliders(nb)
    for res in sliders:
        assert res["value_changed"], f"{lab}: slider {res['slider']!r} did not move with {res['keys']}"
        assert res["output_changed"], f"{lab}: moving slider {res['slider']!r} {res['value']} changed no output"
    dropdowns = jlab.change_dropdowns(nb)
    for res in dropdowns:
        assert res["output_changed"], f"{lab}: changing dropdown {res['dropdown']} to {res['to']!r} changed no output"
    assert nb.errors() == [], f"{lab}: error output after moving the widgets:\n" + "\n".join(nb.errors())
    first_img = nb.panel.locator(".jp-OutputArea-output img").first
    target = nb.panel.locator(f".jp-OutputArea-output :is({jlab.SLIDER})").first if sliders else first_img
    shot = nb.screenshot(artifacts / f"{lab}.png", scroll_to=target)

    # nbgrader: Create Assignment panel (right sidebar) lists the graded cells and the points
    panel = nbgrader_create_assignment(nb)
    assert panel["cell_widgets"] == len(src.cells), \
        f"{lab}: Create Assignment shows {panel['cell_widgets']} cell widgets, the notebook has {len(src.cells)} cells"
    assert panel["typed"] == len(typed), \
        f"{lab}: Create Assignment shows {panel['typed']} nbgrader cells, the metadata has {len(typed)}"
    if panel["total_points"] is not None:
        assert abs(panel["total_points"] - points) < 1e-6, \
            f"{lab}: Create Assignment shows {panel['total_points']} points, the metadata says {points}"
    nb.screenshot(artifacts / f"{lab}-create-assignment.png")

    # the executed copy, saved from JupyterLab: every code cell ran, no error output
    nb.save()
    done = nbformat.read(copy, as_version=4)
    code = [c for c in done.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{lab}: saved notebook has code cells without execution count"
    errs = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errs, f"{lab}: saved notebook has error outputs: {[(o.ename, o.evalue) for o in errs]}"
    summary.append(
        f"{lab} solution (smoke): Run > Run All Cells {secs:.0f} s, {len(code)} code cells, 0 errors, "
        f"{figures} figures, {report['views']} widget views; sliders moved "
        f"{[(r['slider'], r['keys'][-1], r['value']) for r in sliders]}, dropdowns changed "
        f"{[r['to'] for r in dropdowns]}, outputs changed; Create Assignment: {panel}; "
        f"screenshot {shot.relative_to(jlab.ROOT)}")


def nbgrader_create_assignment(nb) -> dict:
    """Open nbgrader's Create Assignment sidebar; return what it shows: the number of per-cell
    widgets, how many have an nbgrader type set, and the total points."""
    page = nb.page
    tab = page.locator(".lm-TabBar-tab[data-id='nbgrader-create_assignemnt']")
    if tab.count() == 0:
        tab = page.locator(".jp-SideBar .lm-TabBar-tab", has_text="Create Assignment")
    assert tab.count() >= 1, "nbgrader's Create Assignment tab is not in the sidebar"
    tab.first.click()
    widgets = page.locator(".nbgrader-CellWidget")
    widgets.first.wait_for(timeout=60_000)
    types = page.locator(".nbgrader-CellWidget .nbgrader-CellType select").evaluate_all(
        "ss => ss.map(s => s.value)")
    total = None
    inp = page.locator(".nbgrader-TotalPointsInput")
    if inp.count():
        raw = inp.first.input_value() if inp.first.evaluate("e => e.tagName") == "INPUT" else inp.first.inner_text()
        try:
            total = float(re.sub(r"[^0-9.]", "", raw))
        except ValueError:
            total = None
    return {"cell_widgets": widgets.count(), "typed": sum(1 for t in types if t not in ("", "-")),
            "total_points": total}


def nbgrader_menu(nb) -> list[str]:
    """The entries of JupyterLab's Nbgrader menu (opened, read, closed)."""
    page = nb.page
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).first.click()
    items = page.locator(".lm-Menu:visible .lm-Menu-itemLabel")
    items.first.wait_for()
    labels = [t.strip() for t in items.all_inner_texts() if t.strip()]
    page.keyboard.press("Escape")
    return labels


# --- the feedback page a student reads (issue 31) ---------------------------------------------------

FEEDBACK_LAB = "feedback_probe"
LONG_MESSAGE = ("shift(x) must move every frame of each clip one step later in time, the first frame becoming zeros, "
                "for a batch of two clips of three frames: compare your output with the expected tensor frame by "
                "frame and channel by channel, and check that you shifted along dim 1 (time), not dim 0 (batch)")


def _feedback_course(dest):
    """A tiny lab with an equation in its prose, two exercises and a written answer."""
    meta = {"schema_version": 3, "locked": False, "task": False, "solution": False, "grade": False}

    def cell(kind, source, **nbg):
        c = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if nbg:
            c.metadata["nbgrader"] = {**meta, **nbg}
        return c

    (dest / "solutions" / FEEDBACK_LAB).mkdir(parents=True)
    (dest / "nbgrader_config.py").write_bytes((_root() / "nbgrader_config.py").read_bytes())
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("markdown", "# Feedback probe\n\nThe temporal shift moves each frame one step later, "
                         r"$y_t = x_{t-1}$ for $t \geq 1$, at no FLOP cost:"
                         "\n\n$$\\operatorname{shift}(x)_t = x_{t-1}, \\qquad \\frac{1}{8} \\text{ of the channels}$$"),
        cell("code", "import torch"),
        cell("code", "def shift(x):\n    ### BEGIN SOLUTION\n"
                     "    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)\n    ### END SOLUTION",
             grade_id="shift", solution=True),
        cell("code", "import torch\nfrom effcourse.checks.asserts import assert_true, call\n"
                     "x = torch.arange(12.0).reshape(2, 3, 2)\n"
                     "expected = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)\n"
                     f"assert_true(torch.equal(call('shift', shift, x), expected), {LONG_MESSAGE!r})",
             grade_id="test_shift", grade=True, locked=True, points=10),
        cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
             grade_id="add", solution=True),
        cell("code", "from effcourse.checks.asserts import assert_true, call\n"
                     "assert_true(call('add', add, 2, 3) == 5, 'add(2, 3) should be 5')",
             grade_id="test_add", grade=True, locked=True, points=5),
        cell("markdown", "**Q1.** Why does the shift cost no multiply-adds?"),
        cell("markdown", "It only moves memory.", grade_id="q1_why", solution=True, grade=True, points=5),
    ]
    nbformat.write(nb, dest / "solutions" / FEEDBACK_LAB / f"{FEEDBACK_LAB}.ipynb")
    return dest


def _root():
    import jlab

    return jlab.ROOT


@pytest.mark.timeout(600)
def test_feedback_page(browser, artifacts, summary, tmp_path):
    """nbgrader's generate_feedback output (autograde of a student with one exercise wrong), as a
    student opens it in Chromium with no network: every exercise named with its score, the long
    failure message wrapped inside the page, the equations rendered as MathML (no raw ``$``), the
    ungraded written answer marked as pending; a screenshot goes to _artifacts/browser/."""
    import json

    course = _feedback_course(tmp_path / "course")
    t0 = time.monotonic()
    grading.release([FEEDBACK_LAB], course)
    release = nbformat.read(course / "labs" / FEEDBACK_LAB / f"{FEEDBACK_LAB}.ipynb", as_version=4)
    answers = {"shift": "def shift(x):\n    return torch.roll(x, 1, dims=0)\n",        # wrong axis, wraps
               "add": "def add(a, b):\n    return a + b\n", "q1_why": "It is a memory move, not arithmetic."}
    for c in release.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            c.source = answers[gid]
    (tmp_path / "subs" / "carol").mkdir(parents=True)
    nbformat.write(release, tmp_path / "subs" / "carol" / f"{FEEDBACK_LAB}.ipynb")
    grading.autograde(FEEDBACK_LAB, tmp_path / "subs", out=tmp_path / "out", root=course, timeout=120)
    html = tmp_path / "out" / "feedback" / "carol" / FEEDBACK_LAB / f"{FEEDBACK_LAB}.html"
    assert html.exists(), f"no feedback page: {sorted(p.name for p in (tmp_path / 'out').rglob('*.html'))}"
    t_grade = time.monotonic() - t0

    page = browser.new_page()
    remote: list[str] = []

    def offline(route):
        if not route.request.url.startswith(("file:", "data:")):
            remote.append(route.request.url)
            return route.abort()
        return route.continue_()

    try:
        page.route("**/*", offline)
        page.set_viewport_size({"width": 1000, "height": 900})
        page.goto(html.as_uri())
        page.wait_for_load_state()
        shot = artifacts / "feedback_page.png"
        page.screenshot(path=str(shot), full_page=True)
        rows = page.locator(".effcourse-summary tbody tr").evaluate_all("""rs => rs.map(r => ({
            cls: r.className, cells: [...r.querySelectorAll('td')].map(td => td.innerText.trim()),
            msg: (() => { const m = r.querySelector('td.msg'); const b = m.getBoundingClientRect();
                          return {right: b.right, height: b.height,
                                  line: parseFloat(getComputedStyle(m).lineHeight) || 20}; })()}))""")
        layout = page.evaluate("""() => ({
            scroll: document.documentElement.scrollWidth, width: window.innerWidth,
            math: [...document.querySelectorAll('math')].map(m => {
                const b = m.getBoundingClientRect(); return [b.width, b.height, m.getAttribute('display')]; }),
            prose: [...document.querySelectorAll('.text_cell_render')].map(e => e.innerText).join('\\n'),
            totals: document.querySelector('.effcourse-totals').innerText})""")
    finally:
        page.close()
    got = {r["cells"][0]: (r["cells"][1], r["cls"]) for r in rows}
    assert got == {"shift": ("0 / 10", "short"), "add": ("5 / 5", "full"),
                   "Written answer Q1: why": ("not graded yet (5 points)", "pending")}, rows
    shift = next(r for r in rows if r["cells"][0] == "shift")
    assert "shift(x) must move every frame" in shift["cells"][2], shift
    assert shift["msg"]["right"] <= layout["width"] and shift["msg"]["height"] > 2 * shift["msg"]["line"], \
        f"the failure message is not wrapped inside the page: {shift['msg']}, viewport {layout['width']}"
    assert layout["scroll"] <= layout["width"], f"the page scrolls sideways: {layout['scroll']} > {layout['width']}"
    assert len(layout["math"]) >= 3 and all(w > 0 and h > 0 for w, h, _ in layout["math"]), layout["math"]
    assert any(d == "block" for *_, d in layout["math"]), layout["math"]
    assert "$" not in layout["prose"] and "\\frac" not in layout["prose"], layout["prose"][:2000]
    assert "not graded yet" in layout["totals"], layout["totals"]
    assert not remote, f"the page asked the network for {remote}"
    summary.append(f"feedback page: autograde + generate_feedback {t_grade:.0f} s; rows "
                   f"{json.dumps({k: v[0] for k, v in got.items()})}; {len(layout['math'])} MathML formulas; "
                   f"message wrapped to {shift['msg']['height']:.0f} px; no network; "
                   f"screenshot {shot.relative_to(_root())}")


# --- a live training curve (issue 31) ---------------------------------------------------------------

LIVE_CELLS = [
    # the server's kernels run the smoke profile (as nbgrader would), where live curves are off; a
    # learner's kernel is not smoke: this probe drops the flag, then relies on History's default
    "import os\nimport time\nos.environ.pop('EFFCOURSE_SMOKE', None)\nos.environ.pop('EFFCOURSE_LIVE', None)\n"
    "from effcourse.training import History, live_enabled\nassert live_enabled(), 'live curves are off in this kernel'",
    "hist = History(title='live probe')\nfor step in range(1, 25):\n    time.sleep(0.4)\n"
    "    hist.log(step, loss=2.0 / step, acc=1 - 1.0 / step)\nhist.close()\n"
    "print('trained', len(hist['loss']), 'steps')",
]


@pytest.mark.timeout(300)
def test_live_curve(page, lab_server, artifacts, summary):
    """A short training loop logging into ``effcourse.training.History`` in a JupyterLab kernel: its
    loss curve is one image output that is redrawn in place while the cell runs (at least two
    changes seen before the cell ends), not a figure appended per step; screenshots go to
    _artifacts/browser/live_curve*.png."""
    import jlab

    path = artifacts / "work" / "_probe" / "live_curve.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in LIVE_CELLS]
    nbformat.write(nb, path)
    nbk = jlab.Notebook(page, lab_server, path).open()
    loop_cell = nbk.panel.locator(".jp-CodeCell").nth(1)
    outputs = loop_cell.locator(".jp-OutputArea")
    images = outputs.locator(".jp-OutputArea-output img")
    t0 = time.monotonic()
    nbk.menu("Run", "Run All Cells")
    seen: list[str] = []            # distinct image sources, in order, while the loop cell runs
    counts: set[int] = set()
    mid = artifacts / "live_curve_running.png"
    while time.monotonic() - t0 < 120:
        nbk.dismiss_dialogs()
        srcs = images.evaluate_all("imgs => imgs.map(i => i.getAttribute('src') || '')")
        counts.add(len(srcs))
        if srcs and (not seen or srcs[-1] != seen[-1]):
            seen.append(srcs[-1])
            if len(seen) == 2:
                page.screenshot(path=str(mid))
        if "trained" in outputs.inner_text():
            break
        page.wait_for_timeout(100)
    secs = time.monotonic() - t0
    assert "trained 24 steps" in outputs.inner_text(), f"the loop did not finish: {nbk.errors()}"
    assert nbk.errors() == []
    changes = len(seen) - 1
    assert changes >= 2, f"the live curve changed {changes} times while the loop ran ({len(seen)} frames seen)"
    assert counts <= {0, 1}, f"the curve was appended, not redrawn in place: image counts {sorted(counts)}"
    end = nbk.screenshot(artifacts / "live_curve.png", scroll_to=images.first)
    summary.append(f"live curve: {len(seen)} distinct frames of one image output in a {secs:.0f} s run "
                   f"(24 steps, 0.4 s each); screenshots {mid.relative_to(jlab.ROOT)}, {end.relative_to(jlab.ROOT)}")
