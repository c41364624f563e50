"""/docs renders in a real headless Chromium with no network beyond the server itself."""

from __future__ import annotations

from kzsupport import need_chromium

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def test_swagger_ui_works_offline(server) -> None:  # type: ignore[no-untyped-def]
    chromium = need_chromium()
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        page = browser.new_page()
        page.on("request", lambda req: requested.append(req.url))
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        title = page.locator(".info .title").first.inner_text()
        browser.close()
    assert "keizoku model server" in title
    assert any(path.startswith("/v1/models/") and path.endswith("/predict") for path in paths)
    outside = [u for u in requested if not u.startswith(server.url) and not u.startswith("data:")]
    assert outside == []
