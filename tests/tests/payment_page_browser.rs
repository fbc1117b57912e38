//! The payment page in a real browser: a page waiting for a requisite shows it once the order
//! is assigned (pushed, not reloaded on a timer); Debian's headless Chromium loads `/pay/{token}`
//! of an assigned order and shows the amount, the full requisite number and a running countdown;
//! clicking "I have paid" (through the DevTools protocol, a real click on the button) — once
//! without and once with a receipt attached to the file input — leads to the confirmation state,
//! and a CLIENT_CONFIRMED command for that order (with the receipt's key) is on
//! `trader.commands`. Screenshots go to the temporary folder (`jivapay-payment-page-*.png`).
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`), or `JIVAPAY_TEST_CHROMIUM`.

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use jivapay_admin::auth::Role;
use jivapay_platform::kafka::RecordConsumer;
use jivapay_platform::order_changes::{self, OrderChange};
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::gateway::{Gateway, Payin, TestStore};
use jivapay_tests::unique_group;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Flags for every Chromium run: headless, no sandbox (the tests run as root), nothing that
/// reaches out to the network on its own.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn chromium() -> PathBuf {
    let path = std::env::var_os("JIVAPAY_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (`apt-get install -y chromium`; scripts/test does)",
        path.display()
    );
    path
}

/// A pay-in through the gateway, then its projection row put into `assigned` on a new requisite
/// of `trader`, as the trader book and the projection sink would.
async fn assigned_payin(
    app: &AdminApp,
    gateway: &Gateway,
    store: &TestStore,
    trader: &Person,
    external: &str,
    number: &str,
) -> Payin {
    let payin = gateway.payin(store, external, "4250.50").await;
    assign(app, store, trader, &payin, external, number).await;
    payin
}

/// Assigns `payin` to a new requisite of `trader` and announces it, as the trader book and the
/// projection sink would.
async fn assign(
    app: &AdminApp,
    store: &TestStore,
    trader: &Person,
    payin: &Payin,
    external: &str,
    number: &str,
) {
    let requisite = app.sbp_requisite(trader, number).await;
    sqlx::query(
        "INSERT INTO orders (id, store_id, external_order_id, direction, status, fiat_amount, fiat_currency, crypto_amount,
             rate, payment_method, trader_id, requisite_id, payment_token, created_at, assigned_at, expires_at,
             updated_at, last_event_id, version)
         VALUES ($1, $2, $3, 'pay_in', 'assigned', 4250.50, 'RUB', 45.951351, 92.5, 'sbp', $4, $5, $6,
                 now(), now(), now() + interval '15 minutes', now(), $7, 2)",
    )
    .bind(payin.order_id)
    .bind(store.store_id)
    .bind(external)
    .bind(trader.trader_id)
    .bind(requisite)
    .bind(&payin.token)
    .bind(Uuid::new_v4())
    .execute(&app.db.pool)
    .await
    .unwrap();
    let change = OrderChange {
        order_id: payin.order_id,
        trader_id: trader.trader_id,
        status: "assigned".into(),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(order_changes::CHANNEL)
        .bind(change.payload())
        .execute(&app.db.pool)
        .await
        .unwrap();
}

/// The page's DOM after load, from `chromium --dump-dom` (a run of its own, fresh profile).
async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(chromium())
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium --dump-dom finishes")
    .unwrap();
    assert!(
        output.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Evaluates `expression` in the page until it gives `true` (navigations in between are fine).
async fn wait_until(page: &Page, expression: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(result) = page.evaluate(expression).await {
            if result.into_value::<bool>().unwrap_or(false) {
                return;
            }
        }
        if Instant::now() > deadline {
            let content = page.content().await.unwrap_or_default();
            panic!("timed out waiting for {what}; the page is:\n{content}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(page: &Page, selector: &str) -> String {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .inner_text()
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("jivapay-payment-page-{name}.png"));
    page.save_screenshot(
        ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .full_page(true)
            .build(),
        &path,
    )
    .await
    .unwrap();
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "a real screenshot"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_page_works_in_headless_chromium() {
    let chromium = chromium();
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let trader = app.person(Role::Trader, &[]).await;
    let plain = assigned_payin(&app, &gateway, &store, &trader, "browser-1", "+79161234567").await;
    let with_receipt =
        assigned_payin(&app, &gateway, &store, &trader, "browser-2", "+79169876543").await;
    let live = gateway.payin(&store, "browser-3", "4250.50").await;
    let url = |p: &Payin| format!("{}/pay/{}", gateway.base, p.token);

    // What the browser renders.
    let dom = dump_dom(&url(&plain)).await;
    assert!(dom.contains("4250.50 RUB"), "the amount: {dom}");
    assert!(
        dom.contains("+79161234567"),
        "the full requisite number: {dom}"
    );
    assert!(
        dom.contains("Sberbank") && dom.contains("Ivan Petrov"),
        "{dom}"
    );
    assert!(
        dom.contains(r#"id="countdown""#) && dom.contains(r#"id="paid""#),
        "countdown and button: {dom}"
    );

    // A browser under the DevTools protocol.
    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(&chromium)
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(800, 1000)
        .args(
            CHROMIUM_FLAGS
                .iter()
                .filter(|f| !matches!(**f, "--headless" | "--no-sandbox"))
                .map(|f| f.trim_start_matches("--")),
        )
        .launch_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (mut browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    // A page waiting for a requisite shows it as soon as the order is assigned: pushed by the
    // payment's event stream (with JavaScript on, nothing else reloads it).
    let waiting = browser.new_page(url(&live)).await.unwrap();
    wait_until(
        &waiting,
        "document.readyState === 'complete' && document.title === 'Preparing your payment'",
        "the waiting page",
    )
    .await;
    assign(&app, &store, &trader, &live, "browser-3", "+79165550003").await;
    wait_until(
        &waiting,
        "document.getElementById('number')?.innerText === '+79165550003'",
        "the requisite, pushed to the waiting page",
    )
    .await;
    waiting.close().await.ok();

    let page = browser.new_page(url(&plain)).await.unwrap();
    wait_until(
        &page,
        "document.readyState === 'complete' && !!document.getElementById('paid')",
        "the page",
    )
    .await;
    assert_eq!(text_of(&page, "#amount").await, "4250.50 RUB");
    assert_eq!(text_of(&page, "#number").await, "+79161234567");
    let countdown = text_of(&page, "#countdown").await;
    let seconds = |text: &str| -> i64 {
        let (m, s) = text.split_once(':').unwrap_or_else(|| panic!("{text}"));
        m.parse::<i64>().unwrap() * 60 + s.parse::<i64>().unwrap()
    };
    assert!(
        (14 * 60..=15 * 60).contains(&seconds(&countdown)),
        "about 15 minutes left: {countdown}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = text_of(&page, "#countdown").await;
    assert!(
        seconds(&later) < seconds(&countdown),
        "the countdown runs: {countdown} then {later}"
    );
    let before = screenshot(&page, "assigned").await;

    page.find_element("#paid")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &page,
        "location.search.includes('confirmed=1') && document.getElementById('state') !== null",
        "the confirmation page",
    )
    .await;
    let state = text_of(&page, "#state").await;
    assert!(
        state.contains("Your confirmation was received"),
        "the confirmation state: {state}"
    );
    let title = page.get_title().await.unwrap().unwrap_or_default();
    assert_eq!(title, "Thank you — checking your payment");
    let after = screenshot(&page, "confirmed").await;

    // With a receipt chosen in the file input.
    let receipt_dir = tempfile::tempdir().unwrap();
    let receipt_path = receipt_dir.path().join("receipt.pdf");
    let receipt = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
    std::fs::write(&receipt_path, receipt).unwrap();
    page.goto(url(&with_receipt)).await.unwrap();
    wait_until(
        &page,
        "document.readyState === 'complete' && !!document.getElementById('receipt')",
        "the second page",
    )
    .await;
    let choose = |path: PathBuf| {
        let page = &page;
        async move {
            let input = page.find_element("#receipt").await.unwrap();
            page.execute(
                SetFileInputFilesParams::builder()
                    .file(path.display().to_string())
                    .backend_node_id(input.backend_node_id)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
            wait_until(
                page,
                "document.getElementById('receipt').files.length === 1",
                "the chosen file",
            )
            .await;
        }
    };
    // Too large: the page says so and sends nothing.
    let huge_path = receipt_dir.path().join("huge.png");
    let mut huge = b"\x89PNG\r\n\x1a\n".to_vec();
    huge.resize(6 * 1024 * 1024, 0);
    std::fs::write(&huge_path, huge).unwrap();
    choose(huge_path).await;
    page.find_element("#paid")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &page,
        "!document.getElementById('receipt-error').hidden",
        "the size warning",
    )
    .await;
    assert!(text_of(&page, "#receipt-error").await.contains("too large"));
    let warned = screenshot(&page, "too-large").await;
    assert!(!page
        .url()
        .await
        .unwrap()
        .unwrap_or_default()
        .contains("confirmed"));
    choose(receipt_path.clone()).await;
    page.find_element("#paid")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &page,
        "location.search.includes('confirmed=1') && document.getElementById('state') !== null",
        "the confirmation page after the upload",
    )
    .await;
    assert!(text_of(&page, "#state")
        .await
        .contains("Your confirmation was received"));

    browser.close().await.ok();
    browser.wait().await.ok();
    events.abort();

    // Both confirmations reached the trader book's topic, the second with its receipt.
    let commands = RecordConsumer::subscribe(
        &app.broker,
        app.state.schemas.clone(),
        &unique_group("browser"),
        &[TRADER_COMMANDS],
    )
    .unwrap();
    let mut confirmed = Vec::new();
    while confirmed.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(30), commands.next::<TraderCommand>())
            .await
            .expect("the confirmations are on trader.commands")
            .unwrap();
        assert_eq!(
            next.key,
            trader.trader_id.unwrap().to_string(),
            "keyed by trader"
        );
        let command = next.value.unwrap();
        assert_eq!(command.kind, TraderCommandKind::ClientConfirmed);
        confirmed.push(command);
    }
    commands.close().ok();
    assert_eq!(confirmed[0].order_id, Some(plain.order_id.into()));
    assert_eq!(confirmed[0].receipt_key, None);
    assert_eq!(confirmed[1].order_id, Some(with_receipt.order_id.into()));
    let key = confirmed[1].receipt_key.clone().expect("the receipt's key");
    assert!(
        key.starts_with(&format!("receipts/{}/", with_receipt.order_id)) && key.ends_with(".pdf"),
        "{key}"
    );
    assert_eq!(gateway.receipts.get(&key).await.unwrap(), &receipt[..]);
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM receipts WHERE object_key = $1")
        .bind(&key)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    println!(
        "screenshots: {} {} {}",
        before.display(),
        warned.display(),
        after.display()
    );
    app.stop().await;
}
