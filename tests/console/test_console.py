"""The web console in a real headless Chromium against a real ``keizoku serve``.

Order matters (one served project per module): reads and refusals first, then the
operator's promotion, then revocation. Screenshots at 1280 px go to a temporary folder, or
to ``$KEIZOKU_SCREENSHOTS`` when it is set (`make screenshots` sets it to docs/console/, so a
plain `make test` leaves the checkout as it found it).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console_support import (
    DRIFTED,
    HOURS,
    LABELLED_HOURS,
    METRIC_DROP,
    NUMERIC_THRESHOLD,
    PER_HOUR,
    SECRET,
    SHIFTED_HOURS,
    WORSE_FROM,
    Project,
)
from kzsupport import Server
from rollout_support import MODEL, cli

SHOTS = Path(os.environ.get("KEIZOKU_SCREENSHOTS") or Path(tempfile.gettempdir()) / "kz-console")
PAGES = ["/console/models", f"/console/models/{MODEL}/1", "/console/audit",
         "/console/experiments", "/console/monitoring", "/console/assistant"]  # fmt: skip


def champion(project: Project) -> int:
    r = httpx.get(f"{project.url}/v1/models/{MODEL}", timeout=30,
                  headers={"Authorization": f"Bearer {project.viewer}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return next(v["version"] for v in r.json()["versions"] if "champion" in v["aliases"])


def sign_in(browser: Any, project: Project, key: str, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 860})
    page = context.new_page()
    page.goto(f"{project.url}/console/models")
    assert "/console/login" in page.url
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/models")
    return page


def data(page: Any, selector: str, key: str, value: str) -> dict[str, str]:
    """{data-KEY: data-VALUE} of the elements ``selector`` finds."""
    rows = page.locator(selector).evaluate_all(
        f"rs => rs.map(r => [r.dataset.{key}, r.dataset.{value}])"
    )
    return {k: v for k, v in rows}


def csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture
def viewer(browser: Any, project: Project) -> Iterator[Any]:
    page = sign_in(browser, project, project.viewer)
    yield page
    page.context.close()


@pytest.fixture
def operator(browser: Any, project: Project) -> Iterator[Any]:
    page = sign_in(browser, project, project.operator)
    yield page
    page.context.close()


def test_no_page_without_a_session_when_keys_exist(project: Project) -> None:
    with httpx.Client(base_url=project.url, timeout=30) as client:
        for path in PAGES:
            r = client.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/console/login?next="), path
        r = client.post(f"/console/models/{MODEL}/promote", data={"version": "2", "csrf": "x"})
        assert r.status_code == 401
        r = client.get(f"/console/models/{MODEL}/1/report")
        assert r.status_code == 303
    assert champion(project) == 1


def test_a_bad_key_does_not_sign_in(browser: Any, project: Project) -> None:
    page = browser.new_page()
    page.goto(f"{project.url}/console/login")
    page.fill("#key", "kz_not-a-key")
    page.click("button[type=submit]")
    assert "not valid" in page.locator("#error").inner_text()
    assert not [c for c in page.context.cookies() if c["name"] == "kz_session"]
    page.context.close()


def test_session_cookie_is_httponly_and_strict(viewer: Any) -> None:
    cookie = next(c for c in viewer.context.cookies() if c["name"] == "kz_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert "kz_" not in cookie["value"].split(".")[0]  # the key itself is never in the cookie


def test_viewer_reads_but_cannot_promote(viewer: Any, project: Project) -> None:
    states = data(viewer, "tr[data-version]", "version", "state")
    assert states == {"1": "champion", "2": "challenger"}
    assert viewer.locator("#who").get_attribute("data-role") == "viewer"
    assert viewer.locator("form.promote").count() == 0
    assert viewer.locator("form.rollback").count() == 0
    viewer.goto(f"{project.url}/console/experiments")
    assert viewer.locator("section[data-experiment]").count() == 1
    assert viewer.locator("form.promote").count() == 0
    token = csrf(viewer)
    r = viewer.request.post(f"{project.url}/console/models/{MODEL}/promote",
                            form={"version": "2", "csrf": token}, max_redirects=0)  # fmt: skip
    assert r.status == 403
    assert "viewer" in r.text()
    assert champion(project) == 1


def test_no_state_change_without_the_csrf_token(
    operator: Any, viewer: Any, project: Project
) -> None:
    url = f"{project.url}/console/models/{MODEL}/promote"
    for form in ({"version": "2"}, {"version": "2", "csrf": csrf(viewer)},
                 {"version": "2", "csrf": "forged"}):  # fmt: skip
        r = operator.request.post(url, form=form, max_redirects=0)
        assert r.status == 403, form
        assert "CSRF" in r.text()
    assert champion(project) == 1


@pytest.mark.usefixtures("shared_requests")  # its screenshot shows the requests charts too
def test_planted_drift_shows_for_that_feature_only(operator: Any, project: Project) -> None:
    operator.goto(f"{project.url}/console/monitoring?model={MODEL}&version=1")
    flags = data(operator, "#drift tr[data-feature]", "feature", "drifted")
    features = {f: d for f, d in flags.items() if f != "prediction"}
    assert len(features) >= 5
    assert {f for f, d in features.items() if d == "true"} == {DRIFTED}
    limits = data(operator, "#drift tr[data-feature]", "feature", "threshold")
    # the spec's threshold, raised in a small bucket as `monitor` raises it (at most
    # twice: numeric_limit); the default's (0.05, at most 0.1) would stay under it
    assert NUMERIC_THRESHOLD <= float(limits[DRIFTED]) <= 2 * NUMERIC_THRESHOLD
    assert float(str(operator.locator("#settings").get_attribute("data-numeric"))) == (
        NUMERIC_THRESHOLD)  # fmt: skip
    cell = operator.locator(f"#drift tr[data-feature={DRIFTED}] td").nth(2).inner_text()
    assert int(cell.split(" of ")[0]) >= SHIFTED_HOURS - 2
    chart = operator.locator(f'svg[data-chart="drift-{DRIFTED}"]')
    assert chart.count() == 1 and chart.locator("line.reference").count() == 1
    assert operator.locator('svg[data-chart="latency"]').count() == 1
    shot(operator, "monitoring")


@pytest.mark.usefixtures("shared_requests")
def test_live_metric_against_training_with_the_spec_threshold(
    viewer: Any, project: Project
) -> None:
    from keizoku.monitoring.reference import load_reference

    ref = load_reference(f"{MODEL}:1")
    viewer.goto(f"{project.url}/console/monitoring?model={MODEL}&version=1")
    live = viewer.locator("#live")
    attr = {k: live.get_attribute(f"data-{k}") for k in
            ("metric", "labels", "last", "training", "threshold", "dropped")}  # fmt: skip
    assert attr["metric"] == ref.metric
    assert int(str(attr["labels"])) == LABELLED_HOURS * PER_HOUR
    assert float(str(attr["training"])) == ref.cv_score
    drop = -METRIC_DROP if ref.greater_is_better else METRIC_DROP
    assert abs(float(str(attr["threshold"])) - (ref.cv_score + drop)) < 1e-12
    last = float(str(attr["last"]))  # hour 47: a third of the predictions wrong
    if ref.metric == "accuracy":
        assert abs(last - 2 / 3) < 1e-9
    assert attr["dropped"] == "true" and LABELLED_HOURS > WORSE_FROM
    chart = viewer.locator('svg[data-chart="live-metric"]')
    assert chart.count() == 1 and chart.locator("line.reference").count() == 1  # training
    assert "Estimated from the model's confidence" in live.inner_text()  # late labels
    assert viewer.locator('svg[data-chart="requests"]').count() == 1


def test_traffic_and_requests_add_up_across_servers(viewer: Any, project: Project) -> None:
    viewer.goto(f"{project.url}/console/models")
    served = viewer.locator("tr[data-version='1'] td[data-served]").get_attribute("data-served")
    assert int(str(served)) >= (HOURS - 48) * PER_HOUR  # v1's rows of the last 24 hours
    env = {**os.environ, "KEIZOKU_HOME": str(project.home), "HF_HUB_OFFLINE": "1"}
    other = Server(project.root, env=env).wait_ready()  # a second server of the same home
    try:
        auth = {"Authorization": f"Bearer {project.viewer}"}
        r = other.client.post(f"/v1/models/{MODEL}/predict", content=b"{", headers=auth)
        assert r.status_code == 422, r.text
    finally:
        assert other.stop() == 0  # it shares its counts on exit
    url = f"{project.url}/console/monitoring?model={MODEL}&version=1"
    for _ in range(40):  # this server shares its own every 0.2 s (--share-interval)
        viewer.goto(url)
        box = viewer.locator("#requests")
        if box.count() and int(str(box.get_attribute("data-requests"))) >= 2:
            break
        time.sleep(0.5)
    assert int(str(box.get_attribute("data-errors"))) == 1  # the other server's 422
    assert int(str(box.get_attribute("data-requests"))) >= 2


def test_operator_promotes_the_gated_challenger_and_audit_shows_it(
    operator: Any, project: Project
) -> None:
    operator.goto(f"{project.url}/console/experiments")
    assert operator.locator("form.promote").count() == 1
    shot(operator, "experiments")
    operator.goto(f"{project.url}/console/models")
    shot(operator, "models")
    form = operator.locator("tr[data-version='2'] form.promote")
    form.locator("input[name=reason]").fill("console test")
    with operator.expect_navigation(timeout=180_000):  # promote waits for the servers
        form.locator("button").click(no_wait_after=True)
    operator.wait_for_url("**/console/audit?model=peng")
    entry = operator.locator("#history tr[data-action=promote][data-version='2']")
    assert entry.count() == 1
    assert entry.get_attribute("data-actor") == "key:olga-op"
    assert "console test" in entry.inner_text()
    assert operator.locator("#chains li[data-model=peng]").get_attribute("data-ok") == "true"
    shot(operator, "audit")
    assert champion(project) == 2
    operator.goto(f"{project.url}/console/experiments")
    assert "promoted" in operator.locator("section[data-experiment] h2").inner_text()


def test_version_page_links_the_evaluation_report(operator: Any, project: Project) -> None:
    operator.goto(f"{project.url}/console/models/{MODEL}/2")
    assert DRIFTED in operator.locator("main").inner_text()
    shot(operator, "version")
    operator.click("text=evaluation report")
    assert "Accuracy" in operator.content() or "accuracy" in operator.content()


def ask(page: Any, project: Project, question: str) -> str:
    page.goto(f"{project.url}/console/assistant")
    page.select_option("#a-collection", "kb")
    page.fill("#a-question", question)
    with page.expect_navigation(timeout=240_000):  # the first ask loads the embedding model
        page.click("form[aria-label='Ask the knowledge assistant'] button", no_wait_after=True)
    page.wait_for_selector("#answer")
    return str(page.locator("main").inner_text())


def test_assistant_cites_and_hides_a_forbidden_document(
    viewer: Any, operator: Any, project: Project
) -> None:
    question = "What is the salary review code?"
    seen = ask(viewer, project, question)
    sources = viewer.locator("#citations li").evaluate_all("ls => ls.map(l => l.dataset.source)")
    assert SECRET not in seen and SECRET not in viewer.content()
    assert not any(s.endswith("hr.md") for s in sources)
    assert any(s.endswith("handbook.md") for s in sources)
    seen = ask(operator, project, question)
    sources = operator.locator("#citations li").evaluate_all("ls => ls.map(l => l.dataset.source)")
    assert SECRET in seen
    assert any(s.endswith("hr.md") for s in sources)
    link = operator.locator("#answer-text a").first  # [n] in the answer links its passage
    assert operator.locator(str(link.get_attribute("href"))).count() == 1
    shot(operator, "assistant")


def test_revoking_the_key_ends_its_session(browser: Any, project: Project) -> None:
    page = sign_in(browser, project, project.doomed)
    assert page.locator("tr[data-version]").count() == 2
    out = cli(project.root, "keys", "revoke", "temp-viewer")
    assert out.returncode == 0, out.stderr
    page.goto(f"{project.url}/console/models")
    assert "/console/login" in page.url
    page.context.close()


def test_phone_width_and_keyboard(browser: Any, project: Project) -> None:
    page = sign_in(browser, project, project.viewer, width=390)
    for path in ("/console/models", f"/console/monitoring?model={MODEL}&version=1"):
        page.goto(project.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 392, (path, width)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.context.close()


def test_pages_fetch_nothing_outside_the_server(browser: Any, project: Project) -> None:
    page = sign_in(browser, project, project.viewer)
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url))
    for path in PAGES:
        page.goto(project.url + path)
    assert asked and all(u.startswith(project.url) for u in asked)
    page.context.close()
