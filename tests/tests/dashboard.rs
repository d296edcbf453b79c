//! The dashboard on the admin listener, in a real headless browser (Debian's
//! chromium over the DevTools protocol): it loads with no console errors, shows a
//! running gateway's route, plugin and service, follows a reload (by the button and
//! by a changed config) and a failing upstream, and fits a phone's screen. The
//! screenshots are kept in `target/artefacts/`.

use std::path::PathBuf;

use wasmgate_e2e::{Browser, TestGateway, Upstream, client, wasmgate_bin};

/// `target/artefacts/NAME`, where the screenshots are kept.
fn artefact(name: &str) -> PathBuf {
    let dir = wasmgate_bin()
        .parent()
        .and_then(|release| release.parent())
        .expect("target/release/wasmgate")
        .join("artefacts");
    std::fs::create_dir_all(&dir).expect("target/artefacts");
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_gateway_and_follows_reloads_and_failures() {
    let upstream = Upstream::start();
    let gateway = TestGateway::new()
        .plugin("headers", "headers")
        .toml(&format!(
            r#"
[health]
interval_ms = 500

[services.catalog]
endpoints = ["http://{}"]
health_path = "/health"

[[routes]]
name = "catalog-api"
prefix = "/api"
service = "catalog"
[[routes.plugins]]
name = "headers"
config = {{ request = {{ set = {{ x-from = "dashboard-test" }} }} }}
"#,
            upstream.address
        ))
        .start();
    for _ in 0..20 {
        let response = client()
            .get(gateway.url("/api/items"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let mut browser = Browser::launch(1280, 900).await;
    browser.open(&gateway.admin_url("/")).await;
    browser.wait_for("document.body.dataset.refreshed").await;
    for text in ["catalog-api", "headers", "catalog", "healthy"] {
        browser.wait_for_text(text).await;
    }
    // The plugin's calls are counted and timed.
    browser
        .wait_for("[...document.querySelectorAll('#plugins td.num')].some(td => td.textContent.endsWith('ms'))")
        .await;
    std::fs::write(artefact("dashboard.png"), browser.screenshot().await).unwrap();

    // The reload button: an unchanged config says so.
    browser.click("#reload").await;
    browser.wait_for_text("Reload unchanged").await;

    // A changed config reloads by itself; the page shows the new route and the
    // reload in its history.
    gateway.rewrite_config(&format!(
        "{}\n[[routes]]\nname = \"orders-api\"\nprefix = \"/orders\"\nservice = \"catalog\"\n",
        gateway.config_text()
    ));
    browser.wait_for_text("orders-api").await;
    browser.wait_for_text("applied (watch), generation 2").await;

    // Traffic while the page is open shows in its rate.
    for _ in 0..40 {
        client()
            .get(gateway.url("/api/items"))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser
        .wait_for("Number(document.getElementById('rate-now').textContent) > 0")
        .await;

    // The upstream stops: its service turns down on the page.
    drop(upstream);
    browser
        .wait_for(
            "[...document.querySelectorAll('#services td')].some(td => td.textContent === 'down')",
        )
        .await;
    std::fs::write(
        artefact("dashboard-failing.png"),
        browser.screenshot().await,
    )
    .unwrap();

    assert_eq!(browser.errors(), Vec::<String>::new(), "errors on the page");

    // A phone's screen: the page fits its width (tables scroll inside themselves).
    let mut phone = Browser::launch(390, 844).await;
    phone.open(&gateway.admin_url("/")).await;
    phone.wait_for_text("orders-api").await;
    let overflow = phone
        .eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "the page is wider than a phone's screen");
    std::fs::write(artefact("dashboard-phone.png"), phone.screenshot().await).unwrap();
    assert_eq!(phone.errors(), Vec::<String>::new(), "errors on the page");
}
