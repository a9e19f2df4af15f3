"""The course on a real JupyterHub, driven in headless Chromium from release to feedback (issue 30).

``scripts/hub/launch.py`` starts JupyterHub (TEST-ONLY dummy login and a spawner without user
isolation; docs/HUB.md) with an instructor and two students. Then, each step in the browser:

1. instructor: logs in, formgrader > Manage Assignments > Generate, then Release;
2. each student logs in, Nbgrader > Assignment List > Fetch; the test writes their answers into the
   fetched notebook (alice: the solution, plus one cell that reports what her grading kernel can
   see; bob: one wrong answer, ``segment_consensus`` sums instead of averaging); they open it in
   JupyterLab, press Validate, and Submit from the assignment list;
   - bob's first try kills its kernel (``os._exit``) mid-validate: the Validate dialog says so and
     his server carries on; he submits that try, the instructor sets a due date (formgrader's Edit),
     and bob submits again: the exchange keeps both, the later one is late (its timestamp recorded);
3. instructor: Collect (the latest submission of each student), Autograde each student in Manage
   Submissions — through the course's ``nbgrader_config.py`` (the out-of-process judge) and the
   sandboxed grading kernel — Generate Feedback, Release Feedback;
4. each student: Fetch Feedback, opens it, sees each exercise named with its score.

The grades formgrader shows equal those of ``effcourse autograde`` on the same collected notebooks.
Screenshots: ``_artifacts/hub/`` (git-ignored). Lab: ``EFFCOURSE_HUB_LAB`` (default lab1, the
cheapest to grade; autograding runs the smoke profile as always).
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("EFFCOURSE_BROWSER") != "1",
                                reason="browser test: run `make test-browser` (sets EFFCOURSE_BROWSER=1)")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))          # tests/: harness
LAB = os.environ.get("EFFCOURSE_HUB_LAB", "lab1_temporal_shift")
WRONG_FUNC = "segment_consensus"
WRONG_SRC = '''def segment_consensus(logits, n_segment):
    return logits.reshape(-1, n_segment, logits.shape[1]).sum(dim=1)   # a sum, not the mean
'''
CRASH_SRC = "import os\nos._exit(1)   # the kernel dies here\n"
PROBE = ("import os\nprint('sandbox probe:', 'EFFCOURSE_SANDBOX=%s' % os.environ.get('EFFCOURSE_SANDBOX'), "
         "'uid=%d' % os.getuid(), 'solutions visible=%s' % os.path.exists({solutions!r}), "
         "'gradebook visible=%s' % os.path.exists({gradebook!r}))")
GRADE_TIMEOUT = 600


# --- notebooks the students hand in -----------------------------------------------------------------

def _solution() -> nbformat.NotebookNode:
    from harness import solution_path, strip_solution_markers
    return strip_solution_markers(nbformat.read(solution_path(LAB), as_version=4))


def _with_exercise(nb, func: str, source: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and f"def {func}(" in cell.source:
            cell.source = source
            return nb
    raise AssertionError(f"{LAB}: no exercise cell defines {func}")


def _first_exercise_crash(nb) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            cell.source = CRASH_SRC + cell.source
            return nb
    raise AssertionError(f"{LAB} has no code exercise")


def _write_answer(path: Path, nb) -> None:
    """Keep the fetched notebook's metadata (nbgrader ids, checksums of locked cells): only the
    cells change, as when a student types."""
    fetched = nbformat.read(path, as_version=4)
    fetched.cells = nb.cells
    nbformat.write(fetched, path)


# --- UI steps -----------------------------------------------------------------------------------------

def fg_modal(page, shot=None, timeout=GRADE_TIMEOUT) -> str:
    """Wait for formgrader's result modal; fail on its error modal; return its text and close it."""
    modal = page.locator("#success-modal, #error-modal")
    modal.first.wait_for(state="visible", timeout=timeout * 1000)
    page.wait_for_timeout(400)                       # the fade-in
    text = modal.first.inner_text()
    if shot:
        shot()
    is_error = modal.first.get_attribute("id") == "error-modal"
    modal.first.locator(".modal-footer button").last.click()
    modal.first.wait_for(state="detached", timeout=30_000)
    assert not is_error, f"formgrader reported an error:\n{text[-3000:]}"
    return text


def fg_assignment_row(page, user):
    page.goto(f"{user.base}/formgrader/manage_assignments")
    row = page.locator("#main-table tr", has=page.locator("td.name", has_text=LAB))
    row.first.locator("td.assign a").wait_for(timeout=60_000)
    return row.first


def fg_button(user, cell: str, shot: str) -> str:
    """Click formgrader's ``cell`` button (assign, release, collect, generate-feedback,
    release-feedback) on the lab's row; wait for the result."""
    row = fg_assignment_row(user.page, user)
    row.locator(f"td.{cell} a").first.click()
    return fg_modal(user.page, lambda: user.shot(shot))


def open_assignment_list(user):
    page = user.page
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).first.click()
    page.locator(".lm-Menu .lm-Menu-item", has=page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(r"^Assignment List$"))).first.click()
    page.locator("#released_assignments_list").first.wait_for(timeout=60_000)
    page.wait_for_function("() => { const e = document.getElementById('released_assignments_list_loading');"
                           " return e && e.hidden; }", timeout=60_000)


def refresh_assignment_list(user):
    page = user.page
    page.locator("#refresh_assignments_list").first.click()
    page.wait_for_timeout(500)
    page.wait_for_function("() => { const e = document.getElementById('fetched_assignments_list_loading');"
                           " return e && e.hidden; }", timeout=60_000)


def list_item(user, where: str):
    return user.page.locator(f"#{where}_assignments_list .list_item", has_text=LAB)


def click_and_wait(user, where: str, button: str, then: str, done=None):
    """Click ``button`` on the lab in list ``where``; wait until list ``then`` shows the lab (and
    ``done()`` holds, when given)."""
    item = list_item(user, where).first
    item.locator("button", has_text=re.compile(rf"^\s*{re.escape(button)}\s*$")).first.click()
    deadline = time.monotonic() + 120
    while list_item(user, then).count() < 1 or (done is not None and not done()):
        assert time.monotonic() < deadline, f"{user.name}: {button} did not put {LAB} in the {then} list"
        dlg = user.page.locator(".jp-Dialog")
        if dlg.count():
            raise AssertionError(f"{user.name}: {button} failed: {dlg.first.inner_text()[:2000]}")
        user.page.wait_for_timeout(500)
    user.page.wait_for_timeout(500)


class _Server:
    """What ``jlab.Notebook`` asks of a server, for a hub user's single-user server."""

    def __init__(self, user, root: Path):
        self.user, self.root_dir = user, root

    def lab_url(self, path) -> str:
        rel = Path(path).resolve().relative_to(self.root_dir.resolve()).as_posix()
        return f"{self.user.base}/lab/tree/{rel}?reset"

    def kernel_state(self, notebook) -> str:
        rel = Path(notebook).resolve().relative_to(self.root_dir.resolve()).as_posix()
        for sess in self.user.api("api/sessions"):
            if sess.get("path") == rel and sess.get("kernel"):
                return sess["kernel"].get("execution_state", "unknown")
        return "none"


def validate(user, path: Path, shot: str) -> str:
    """Open ``path`` in the user's JupyterLab, press nbgrader's Validate button, return the dialog's text."""
    import jlab

    nb = jlab.Notebook(user.page, _Server(user, user.hub.home(user.name)), path).open()
    user.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar .validate-button").first.click()
    dialog = user.page.locator(".jp-Dialog")
    dialog.first.wait_for(timeout=GRADE_TIMEOUT * 1000)
    user.page.wait_for_function("() => !document.querySelector('.jp-Dialog') || "
                                "!/Validating/i.test(document.querySelector('.jp-Dialog').innerText)",
                                timeout=GRADE_TIMEOUT * 1000)
    text = dialog.first.inner_text()
    user.shot(shot)
    dialog.first.locator("button").last.click()
    del nb
    return text


# --- the test -------------------------------------------------------------------------------------------

@pytest.mark.timeout(1500)
def test_hub_release_to_feedback():
    import hub_driver as hd
    from playwright.sync_api import sync_playwright

    from effcourse import grading
    from nbgrader.api import Gradebook

    import jlab

    t0 = time.monotonic()
    shots = hd.ARTIFACTS
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    timings: dict[str, float] = {}
    lines: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="effcourse-hub-"))
    hub = hd.Hub(root, [LAB])
    pw = sync_playwright().start()
    browser = None
    try:
        hub.start()
        timings["hub up"] = time.monotonic() - t0
        browser = pw.chromium.launch(executable_path=jlab.CHROMIUM, args=jlab.CHROMIUM_ARGS, headless=True,
                                     timeout=jlab.BROWSER_START_TIMEOUT * 1000)
        ins = hd.User(hub, browser, hub.instructor, shots)

        # 1. instructor: generate and release in formgrader
        timings["instructor login"] = ins.login()
        ins.shot("01-instructor-lab")
        log = fg_button(ins, "assign", "02-formgrader-generate")
        assert "Successfully created the student version" in log, log
        fg_button(ins, "release", "03-formgrader-release")
        outbound = hub.exchange / "effcourse" / "outbound" / LAB / f"{LAB}.ipynb"
        assert outbound.exists(), f"release put nothing in the exchange ({outbound})"
        row = fg_assignment_row(ins.page, ins)
        assert "released" in row.locator("td.status").inner_text()

        # 2. students: fetch, answer, validate, submit
        release = nbformat.read(outbound, as_version=4)
        solution = _solution()
        course = hub.course
        alice_nb = nbformat.from_dict(solution)
        alice_nb.cells.append(nbformat.v4.new_code_cell(PROBE.format(solutions=str(course / "solutions"),
                                                                     gradebook=str(course / "gradebook.db"))))
        answers = {"alice": alice_nb, "bob": _with_exercise(solution, WRONG_FUNC, WRONG_SRC)}
        users = {who: hd.User(hub, browser, who, shots) for who in hub.students}
        t = time.monotonic()
        for u in users.values():          # both students log in at once: their servers start side by side
            u.login_start()
        for u in users.values():
            u.login_wait()
        timings["students' logins"] = time.monotonic() - t
        for who, u in users.items():
            open_assignment_list(u)
            assert list_item(u, "released").count() == 1, f"{who} does not see {LAB} in Released assignments"
            u.shot(f"04-{who}-assignment-list")
            click_and_wait(u, "released", "Fetch", "fetched")
            u.shot(f"05-{who}-fetched")
            mine = hub.home(who) / LAB / f"{LAB}.ipynb"
            assert nbformat.read(mine, as_version=4).cells == release.cells, f"{who} fetched something else"

        alice, bob = users["alice"], users["bob"]
        mine = {who: hub.home(who) / LAB / f"{LAB}.ipynb" for who in users}

        # bob's first try kills its kernel mid-validate; he submits it anyway
        _write_answer(mine["bob"], _first_exercise_crash(release))
        t = time.monotonic()
        text = validate(bob, mine["bob"], "06-bob-validate-kernel-died")
        timings["bob validate (kernel dies)"] = time.monotonic() - t
        assert "There was an error running the validate command" in text \
            and re.search(r"DeadKernelError|Kernel died", text), \
            f"Validate did not report the dead kernel:\n{text[-2000:]}"
        last = [ln for ln in text.splitlines() if re.search(r"DeadKernelError|Kernel died", ln)][-1].strip()
        lines.append(f"bob's kernel died mid-validate; the Validate dialog: 'There was an error running the validate "
                     f"command' ... {last[:120]!r}")
        bob.page.goto(f"{bob.base}/lab")
        bob.page.locator(".jp-LabShell").first.wait_for()
        assert bob.api("api/status"), "bob's server did not survive his kernel's death"
        open_assignment_list(bob)
        click_and_wait(bob, "fetched", "Submit", "submitted")

        # alice: the solution; Validate passes; submit
        _write_answer(mine["alice"], answers["alice"])
        t = time.monotonic()
        text = validate(alice, mine["alice"], "07-alice-validate")
        timings["alice validate"] = time.monotonic() - t
        assert "Success" in text or "passes" in text, f"alice's Validate did not pass:\n{text[:2000]}"
        alice.page.goto(f"{alice.base}/lab")
        alice.page.locator(".jp-LabShell").first.wait_for()
        open_assignment_list(alice)
        click_and_wait(alice, "fetched", "Submit", "submitted")
        alice.shot("08-alice-submitted")

        # instructor: a due date between bob's two submissions (formgrader > Edit)
        time.sleep(1.5)
        due = time.gmtime()
        row = fg_assignment_row(ins.page, ins)
        row.locator("td.edit a").first.click()
        modal = ins.page.locator("#edit-assignment-modal")
        modal.wait_for(state="visible")
        modal.locator("input.modal-duedate").fill(time.strftime("%Y-%m-%dT%H:%M:%S", due))
        modal.locator("input.modal-timezone").fill("UTC")
        ins.shot("09-formgrader-due-date")
        modal.locator("button.save").click()
        modal.wait_for(state="detached", timeout=60_000)
        time.sleep(1.5)

        # bob, after the due date: one wrong answer; submits again
        _write_answer(mine["bob"], answers["bob"])
        refresh_assignment_list(bob)
        bob_inbound = lambda: sorted((hub.exchange / "effcourse" / "inbound").glob(f"bob+{LAB}+*"))  # noqa: E731
        click_and_wait(bob, "fetched", "Submit", "submitted", done=lambda: len(bob_inbound()) == 2)
        refresh_assignment_list(bob)
        bob.shot("10-bob-submitted-twice")
        inbound = bob_inbound()
        assert len(inbound) == 2, f"the exchange should keep both of bob's submissions: {inbound}"
        stamps = sorted((p / "timestamp.txt").read_text().strip() for p in inbound)

        # 3. instructor: collect, autograde each student, feedback
        fg_button(ins, "collect", "11-formgrader-collect")
        collected = course / "submitted"
        assert sorted(p.name for p in collected.iterdir()) == ["alice", "bob"]
        assert (collected / "bob" / LAB / "timestamp.txt").read_text().strip() == stamps[-1], \
            "collect did not take bob's latest submission"
        page = ins.page
        page.goto(f"{ins.base}/formgrader/manage_submissions/{LAB}")
        for who in ("alice", "bob"):
            r = page.locator("#main-table tr", has=page.locator("td.student-id", has_text=who)).first
            r.locator("td.autograde a").wait_for(timeout=60_000)
            t = time.monotonic()
            r.locator("td.autograde a").click()
            text = fg_modal(page, lambda who=who: ins.shot(f"12-formgrader-autograde-{who}"))
            timings[f"autograde {who}"] = time.monotonic() - t
            assert "Successfully autograded" in text, text
        page.reload()
        page.locator("#main-table td.score").first.wait_for()
        page.wait_for_timeout(1000)
        ins.shot("13-formgrader-submissions")
        shown = {}
        for who in ("alice", "bob"):
            r = page.locator("#main-table tr", has=page.locator("td.student-id", has_text=who)).first
            shown[who] = " ".join(r.locator("td.score").inner_text().split())

        # the judge's verdicts in the autograded notebooks; the kernel was sandboxed
        verdicts = {}
        for who in ("alice", "bob"):
            nb = nbformat.read(course / "autograded" / who / LAB / f"{LAB}.ipynb", as_version=4)
            tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
            verdicts[who] = {c.metadata["nbgrader"]["grade_id"]: "".join(o.get("text", "") or o.get("evalue", "")
                                                                         for o in c.outputs) for c in tests}
        assert all("passed" in v and "\u2714" in v for v in verdicts["alice"].values()), verdicts["alice"]
        wrong_cell = f"test_{WRONG_FUNC}"
        assert "passed" not in verdicts["bob"][wrong_cell], verdicts["bob"]
        probe = next(o.get("text", "") for c in nbformat.read(course / "autograded" / "alice" / LAB / f"{LAB}.ipynb",
                                                             as_version=4).cells
                     if c.cell_type == "code" and "sandbox probe" in c.source for o in c.outputs)
        assert "EFFCOURSE_SANDBOX=1" in probe and "solutions visible=False" in probe \
            and "gradebook visible=False" in probe, f"alice's grading kernel was not sandboxed: {probe!r}"
        if os.geteuid() == 0:
            assert "uid=65534" in probe, probe

        # gradebook: scores per cell, bob late with his timestamp, alice on time
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            fg = {}
            for who in ("alice", "bob"):
                sub = gb.find_submission(LAB, who)
                nb = sub.notebooks[0]
                fg[who] = {"total": sub.score, "late": sub.total_seconds_late, "timestamp": sub.timestamp,
                           "cells": {g.name: g.score for g in nb.grades if g.auto_score is not None}}
        assert fg["alice"]["late"] == 0, fg["alice"]
        assert fg["bob"]["late"] > 0, f"bob's second submission, after the due date, is not late: {fg['bob']}"

        lines += [f"bob: 2 submissions kept {stamps}; collected {stamps[-1]}; late by {fg['bob']['late']:.1f} s "
                  f"(due {time.strftime('%Y-%m-%d %H:%M:%S', due)} UTC); alice on time",
                  f"sandbox probe (alice's grading kernel): {probe.strip()}"]
        fg_button(ins, "generate-feedback", "14-formgrader-generate-feedback")
        fg_button(ins, "release-feedback", "15-formgrader-release-feedback")

        # 4. students fetch their feedback and see their named scores
        for who, u in users.items():
            refresh_assignment_list(u)
            item = list_item(u, "submitted").last
            item.locator("button", has_text="Fetch Feedback").first.click()
            got = []
            deadline = time.monotonic() + 120
            while not got:
                assert time.monotonic() < deadline, f"{who} got no feedback"
                got = sorted((hub.home(who) / LAB / "feedback").glob(f"*/{LAB}.html"))
                u.page.wait_for_timeout(500)
            u.page.wait_for_timeout(1000)
            u.shot(f"16-{who}-fetch-feedback")
            rel = got[-1].relative_to(hub.home(who)).as_posix()
            u.page.goto(f"{u.base}/files/{rel}")
            u.page.wait_for_load_state()
            text = u.page.inner_text("body")
            u.shot(f"17-{who}-feedback")
            for gid in fg[who]["cells"]:
                assert gid.removeprefix("test_") in text, f"{who}'s feedback does not name {gid}"
            total = fg[who]["total"]
            assert re.search(rf"\b{total:g}(\.0+)?\b", text), f"{who}'s feedback does not show the total {total:g}"

        # the grades equal `effcourse autograde`'s: its known scores on these answers (the solution
        # scores every autograded point, one wrong exercise loses exactly its grade cell: tests/test_course.py),
        # and with EFFCOURSE_HUB_CLI=1 a run of it on the same collected notebooks
        maxima = {g: pts for g, (pts, auto) in grading.max_scores(course, LAB).items() if auto}
        assert fg["alice"]["cells"] == maxima, (fg["alice"], maxima)
        assert fg["bob"]["cells"] == {**maxima, wrong_cell: 0.0}, (fg["bob"], maxima)
        assert fg["alice"]["total"] == sum(maxima.values())
        assert fg["bob"]["total"] == sum(maxima.values()) - maxima[wrong_cell]
        lines += [f"formgrader scores: {shown}", f"gradebook per cell: { {w: fg[w]['cells'] for w in fg} }",
                  f"known scores (effcourse autograde's): alice {sum(maxima.values()):g}, "
                  f"bob {sum(maxima.values()) - maxima[wrong_cell]:g} (max {maxima})"]
        if os.environ.get("EFFCOURSE_HUB_CLI") != "1":
            return
        t = time.monotonic()
        cli = root / "cli"
        for who in ("alice", "bob"):
            (cli / "subs" / who).mkdir(parents=True)
            shutil.copy2(collected / who / LAB / f"{LAB}.ipynb", cli / "subs" / who / f"{LAB}.ipynb")
        out = grading.autograde(LAB, cli / "subs", out=cli / "out", root=jlab.ROOT, jobs=2)
        with open(os.fspath(out), encoding="utf-8") as fh:
            rows = {r["student"]: r for r in csv.DictReader(fh)}
        timings["effcourse autograde (2 notebooks)"] = time.monotonic() - t
        for who in ("alice", "bob"):
            assert rows[who]["status"] == "ok", rows[who]
            assert float(rows[who]["autograded_total"]) == fg[who]["total"], (who, rows[who], fg[who])
            for gid, score in fg[who]["cells"].items():
                assert float(rows[who][gid]) == score, (who, gid, rows[who][gid], score)
        assert fg["alice"]["total"] > fg["bob"]["total"]
        assert fg["bob"]["cells"][wrong_cell] == 0 and all(
            s > 0 for g, s in fg["bob"]["cells"].items() if g != wrong_cell), fg["bob"]

        scores = {w: rows[w]["autograded_total"] + "/" + rows[w]["autograded_max"] for w in rows}
        lines += [f"effcourse autograde: {scores}"]
    finally:
        try:
            if browser is not None:
                browser.close()
        finally:
            pw.stop()
            hub.stop()
            shutil.copy2(hub.log_path, shots / "hub.log") if hub.log_path.exists() else None
            lines += [f"timings (s): { {k: round(v, 1) for k, v in timings.items()} }",
                      f"wall: {time.monotonic() - t0:.0f} s; "
                      f"screenshots: {sorted(p.name for p in shots.glob('*.png'))}"]
            (shots / "summary.txt").write_text("\n".join(lines) + "\n")
            print("\n" + "\n".join(lines))
            shutil.rmtree(root, ignore_errors=True)
