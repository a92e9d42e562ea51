"""The console in a real browser: Playwright driving Debian's chromium against ``resoto-tasks web``.

The browser logged in once (``logged_in`` in conftest); each test opens its own page. Waits are
Playwright's auto-waiting ``expect`` with the context's 30 s bound, far above the pages' polling
period (250 ms here) and the runs' durations.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from resoto_tasks import runs, runtime
from resoto_tasks.redis_conn import client
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished
from tests.support.web import ARTIFACTS, WebServer

pytestmark = pytest.mark.xdist_group("web")  # one server and one browser (see conftest)

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_a_run_started_on_the_workflows_page_reaches_succeeded_on_the_runs_page_without_a_reload(page: Page) -> None:
    name = unique("webrun")
    add_workflow(name, [{"name": f"{name}_a"}, {"name": f"{name}_b"}])
    with subscribed(sub(f"{name}_a", sleep=1.0), sub(f"{name}_b", sleep=0.3)):
        page.goto("/workflows")
        page.locator(f"tr[data-workflow={name}] button.run-now").click()
        page.wait_for_url(f"**/runs?workflow={name}*")
        expect(page.locator(".notice")).to_contain_text(f"{name}: run")
        page.evaluate("window.__same_page = true")
        row = page.locator("tr.run").first
        expect(row).to_contain_text(name)
        expect(row.locator(".status").first).to_have_text("succeeded")
        assert page.evaluate("window.__same_page") is True, "the page was reloaded"
        page.screenshot(path=str(ARTIFACTS / "runs-list.png"))

        run_id = row.get_attribute("data-run")
        assert run_id
        page.click(f"a[href='/runs/{run_id}']")
        bars = page.locator(".timeline .step-row")
        expect(bars).to_have_count(6)
        assert bars.evaluate_all("rows => rows.map(r => r.dataset.step)") == [s.name for s in runs.get(run_id).steps]
        assert page.locator(".step-bar").count() == 6
        lefts = page.locator(".step-bar").evaluate_all("bars => bars.map(b => parseFloat(b.style.left))")
        assert lefts == sorted(lefts), "steps are placed in run order on the time axis"
        expect(page.locator(f".answer-row .label >> text={name}_a")).to_have_count(1)
        expect(page.locator("#run-status")).to_have_text("succeeded")
        page.screenshot(path=str(ARTIFACTS / "run-timeline.png"), full_page=True)


def test_a_running_run_shows_live_progress_and_is_cancelled_with_its_button(page: Page) -> None:
    name = unique("webcancel")
    gate = unique("gate")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    try:
        with subscribed(sub(f"{name}_a", sleep=0.5, until_key=gate, timeout_s=60)):
            run_id = runtime.engine().start(name).run_id
            assert run_id
            page.goto(f"/runs/{run_id}")
            expect(page.locator("#run-status")).to_have_text("running")
            expect(page.locator(".answer-row progress")).to_have_count(1)  # progress reported while it waits
            page.click("#cancel")
            expect(page.locator(".notice")).to_contain_text("cancelled")
            expect(page.locator("#run-status")).to_have_text("cancelled")
            assert runs.get(run_id).status.value == "cancelled"
    finally:
        client().set(gate, "1", ex=60)  # lets the task end now instead of at the cancel grace


def test_a_schedule_is_paused_with_a_note_and_resumed(page: Page) -> None:
    name = add_workflow(unique("websched"), [{"name": "nightly"}], triggers=[{"cron": "0 3 * * *"}])
    page.goto("/schedules")
    row = page.locator(f"tr[data-workflow={name}]")
    row.locator("input[name=note]").fill("db <migration>")
    row.locator("button.pause").click()
    expect(page.locator(".notice")).to_have_text(f"paused the schedule of {name}")
    expect(row.locator(".state")).to_contain_text("paused")
    expect(row.locator(".note")).to_have_text("db <migration>")
    row.locator("button.resume").click()
    expect(page.locator(".notice")).to_have_text(f"resumed the schedule of {name}")
    expect(row.locator("button.pause")).to_have_count(1)
    expect(row.locator(".state")).not_to_contain_text("paused")


def test_a_hook_error_with_markup_is_shown_as_text_and_never_executed(page: Page) -> None:
    name = unique("webxss")
    add_workflow(name, [{"name": f"{name}_a"}])
    with subscribed(sub(f"{name}_a", raising=HOSTILE)):
        run_id = runtime.engine().start(name).run_id or ""
        wait_finished(run_id)
    page.goto(f"/runs/{run_id}")
    error = page.locator("pre.error").first
    expect(error).to_have_text(f"RuntimeError: {HOSTILE}")
    page.goto(f"/runs?workflow={name}")
    expect(page.locator("tr.run .reason").first).to_have_text(f"steps with errors: {name}_a")
    page.wait_for_timeout(600)  # two polls of the rows: swapped-in HTML must not run either
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0


def test_the_pages_refuse_a_request_without_the_token(browser: Browser, web: WebServer) -> None:
    context = browser.new_context(base_url=web.url)
    try:
        page = context.new_page()
        for path in ("/runs", "/workflows", "/schedules", "/api/v1/runs"):
            answer = page.goto(path)
            assert answer is not None
            assert answer.status == 401, path
        page.goto("/runs")
        expect(page.locator("input[name=token]")).to_be_visible()
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".problem")).to_have_text("wrong token")
        assert httpx.get(f"{web.url}/runs").status_code == 401
    finally:
        context.close()


def test_every_page_renders_with_links_to_flower_and_metrics(page: Page) -> None:
    for path, heading in (
        ("/subscribers", "Subscribers"),
        ("/resources", "Resources"),
        ("/workflows", "Workflows"),
        ("/runs", "Runs"),
    ):
        page.goto(path)
        expect(page.locator("h1")).to_have_text(heading)
    expect(page.locator("header a", has_text="Flower")).to_have_attribute("href", "http://127.0.0.1:5555")
    expect(page.locator("header a", has_text="/metrics")).to_have_attribute("href", "http://127.0.0.1:9955/metrics")
