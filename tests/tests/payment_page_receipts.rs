//! Receipts with "I have paid": the page's multipart form and the JSON variant
//! (`POST /api/v1/payment/{token}/receipt`) store a PNG, JPEG or PDF of at most 5 MiB under
//! `receipts/<order>/<sha256>.<ext>`, index it in `receipts` and put its key in the
//! CLIENT_CONFIRMED command; too large (413), the wrong type by its bytes (415) and an order that
//! is not waiting for the payment (409) store nothing and send nothing.

use jivapay_admin::auth::Role;
use jivapay_platform::kafka::RecordConsumer;
use jivapay_schemas::records::{TraderCommand, TraderCommandKind};
use jivapay_schemas::topics::TRADER_COMMANDS;
use jivapay_tests::admin::{AdminApp, Person};
use jivapay_tests::gateway::{Gateway, Payin, TestStore};
use jivapay_tests::unique_group;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const MIB: usize = 1024 * 1024;

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len.max(bytes.len()), 7);
    bytes
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n".to_vec()
}

/// `assign` puts a pay-in's projection row into `assigned` on a new requisite of `trader`, as
/// the trader book and the projection sink would.
async fn assign(app: &AdminApp, store: &TestStore, trader: &Person, payin: &Payin, number: &str) {
    let requisite = app.sbp_requisite(trader, number).await;
    let (external,): (String,) =
        sqlx::query_as("SELECT external_order_id FROM gateway_requests WHERE order_id = $1")
            .bind(payin.order_id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO orders (id, store_id, external_order_id, direction, status, fiat_amount, fiat_currency, crypto_amount,
             rate, payment_method, trader_id, requisite_id, payment_token, created_at, assigned_at, expires_at,
             updated_at, last_event_id, version)
         VALUES ($1, $2, $3, 'pay_in', 'assigned', 1500, 'RUB', 16.216216, 92.5, 'sbp', $4, $5, $6,
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
}

/// A `multipart/form-data` body as a browser sends the page's form: one file part `receipt`.
fn form(file_name: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----jivapay{}", Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"receipt\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts the page's form; returns the status, the Location header and the body.
async fn post_form(
    gateway: &Gateway,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/pay/{token}/confirm", gateway.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

/// Posts a raw receipt to the JSON variant.
async fn post_receipt(
    gateway: &Gateway,
    token: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let mut request = gateway
        .client
        .post(format!("{}/api/v1/payment/{token}/receipt", gateway.base))
        .body(bytes);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn receipt_rows(app: &AdminApp, order_id: Uuid) -> Vec<(String, String, i64, Vec<u8>)> {
    sqlx::query_as(
        "SELECT object_key, content_type, size_bytes, sha256 FROM receipts WHERE order_id = $1 ORDER BY object_key",
    )
    .bind(order_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha256_hex_of_digest(&Sha256::digest(bytes))
}

fn sha256_hex_of_digest(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The receipt key a stored file is expected under.
fn key(order_id: Uuid, bytes: &[u8], ext: &str) -> String {
    format!("receipts/{order_id}/{}.{ext}", sha256_hex(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_are_checked_stored_and_sent_with_the_confirmation() {
    let app = AdminApp::start_with_relay(false).await;
    let gateway = Gateway::start(&app).await;
    let store = Gateway::store(&app).await;
    let trader = app.person(Role::Trader, &[]).await;

    // Not yet assigned: nothing is confirmable, nothing is stored.
    let waiting = gateway.payin(&store, "waiting", "1500").await;
    let (status, body) =
        post_receipt(&gateway, &waiting.token, Some("application/pdf"), pdf()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_confirmable")),
        "{body}"
    );
    let (status, location, _) = {
        let (content_type, body) = form("r.pdf", "application/pdf", &pdf());
        post_form(&gateway, &waiting.token, &content_type, body).await
    };
    assert_eq!(
        (status, location.as_deref()),
        (303, Some(format!("/pay/{}", waiting.token).as_str())),
        "the form goes back to the page, which says why"
    );
    assert!(gateway
        .receipts
        .keys(waiting.order_id)
        .await
        .unwrap()
        .is_empty());

    // Refusals on an assigned order: too large, wrong type by bytes or by declaration.
    let by_json = gateway.payin(&store, "by-json", "1500").await;
    assign(&app, &store, &trader, &by_json, "+79005550001").await;
    let refusals: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            Some("image/png"),
            png(5 * MIB + 1),
            413,
            "receipt_too_large",
        ),
        (Some("image/png"), png(12 * MIB), 413, "receipt_too_large"),
        (
            Some("image/gif"),
            b"GIF89a\x01\0\x01\0".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
        (
            Some("image/png"),
            b"GIF89a\x01\0\x01\0".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
        (
            Some("application/pdf"),
            png(100),
            415,
            "unsupported_receipt_type",
        ),
        (
            Some("text/html"),
            b"<html></html>".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
        (
            None,
            b"MZ\x90\0\x03".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
        (Some("image/png"), Vec::new(), 422, "empty_receipt"),
    ];
    for (content_type, bytes, status, code) in refusals {
        let len = bytes.len();
        let (got, body) = post_receipt(&gateway, &by_json.token, content_type, bytes).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{content_type:?}, {len} bytes: {body}"
        );
    }
    // Beyond what the server reads at all (20 MiB) it answers 413 at once, from Content-Length,
    // and closes the connection: a client still sending may see that as a reset instead.
    match gateway
        .client
        .post(format!(
            "{}/api/v1/payment/{}/receipt",
            gateway.base, by_json.token
        ))
        .header("content-type", "image/png")
        .body(png(30 * MIB))
        .send()
        .await
    {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    let form_refusals: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("image/png", png(5 * MIB + 1), 413, "receipt_too_large"),
        (
            "image/jpeg",
            b"%PDF-1.4\n".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
        (
            "application/octet-stream",
            b"plain text".to_vec(),
            415,
            "unsupported_receipt_type",
        ),
    ];
    for (content_type, bytes, status, code) in form_refusals {
        let (form_type, body) = form("receipt", content_type, &bytes);
        let (got, _, html) = post_form(&gateway, &by_json.token, &form_type, body).await;
        assert_eq!(got, status, "{content_type}: {html}");
        assert!(
            html.contains(&format!(r#"data-code="{code}""#))
                && html.contains("Back to the payment"),
            "{html}"
        );
    }
    assert!(
        gateway
            .receipts
            .keys(by_json.order_id)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored for refused uploads"
    );
    assert!(receipt_rows(&app, by_json.order_id).await.is_empty());

    // The JSON variant: a PNG, stored and indexed, its key in the answer.
    let image = png(2 * MIB);
    let (status, body) =
        post_receipt(&gateway, &by_json.token, Some("image/png"), image.clone()).await;
    assert_eq!(status, 202, "{body}");
    let json_key = key(by_json.order_id, &image, "png");
    assert_eq!(body["receipt_key"], json!(json_key));
    assert_eq!(body["status"], "confirmation_received");
    assert_eq!(gateway.receipts.get(&json_key).await.unwrap(), image);
    let rows = receipt_rows(&app, by_json.order_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2),
        (json_key.as_str(), "image/png", image.len() as i64)
    );
    assert_eq!(sha256_hex_of_digest(&rows[0].3), sha256_hex(&image));
    // Sent again: the same key, still one row.
    let (status, again) =
        post_receipt(&gateway, &by_json.token, Some("image/png"), image.clone()).await;
    assert_eq!((status, &again["receipt_key"]), (202, &json!(json_key)));
    assert_eq!(receipt_rows(&app, by_json.order_id).await.len(), 1);

    // The page's form: a PDF (the browser may not know the type: the bytes decide).
    let by_form = gateway.payin(&store, "by-form", "1500").await;
    assign(&app, &store, &trader, &by_form, "+79005550002").await;
    // Larger than the router-wide body limit of the other routes (16 KiB).
    let mut document = pdf();
    document.extend(std::iter::repeat_n(b'%', 3 * MIB));
    let (form_type, body) = form("receipt.pdf", "application/octet-stream", &document);
    let (status, location, _) = post_form(&gateway, &by_form.token, &form_type, body).await;
    assert_eq!(
        (status, location),
        (303, Some(format!("/pay/{}?confirmed=1", by_form.token)))
    );
    let form_key = key(by_form.order_id, &document, "pdf");
    assert_eq!(
        gateway.receipts.keys(by_form.order_id).await.unwrap(),
        vec![form_key.clone()]
    );
    assert_eq!(
        receipt_rows(&app, by_form.order_id).await[0].1,
        "application/pdf"
    );
    let page = gateway
        .client
        .get(format!(
            "{}/pay/{}?confirmed=1",
            gateway.base, by_form.token
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Your confirmation was received"),
        "the page says so while the trader book catches up: {page}"
    );

    // The form without a file (the browser still sends the empty part), and an old-style
    // url-encoded form: confirmations without a receipt.
    let no_file = gateway.payin(&store, "no-file", "1500").await;
    assign(&app, &store, &trader, &no_file, "+79005550003").await;
    let (form_type, body) = form("", "application/octet-stream", b"");
    let (status, _, _) = post_form(&gateway, &no_file.token, &form_type, body).await;
    assert_eq!(status, 303);
    let plain = gateway.payin(&store, "plain", "1500").await;
    assign(&app, &store, &trader, &plain, "+79005550004").await;
    let (status, _, _) = post_form(
        &gateway,
        &plain.token,
        "application/x-www-form-urlencoded",
        Vec::new(),
    )
    .await;
    assert_eq!(status, 303);
    assert!(receipt_rows(&app, no_file.order_id).await.is_empty());

    // The commands: one CLIENT_CONFIRMED per confirmation, keyed by trader, with the receipt key.
    let commands = RecordConsumer::subscribe(
        &app.broker,
        app.state.schemas.clone(),
        &unique_group("receipts"),
        &[TRADER_COMMANDS],
    )
    .unwrap();
    let mut seen: HashMap<Uuid, Vec<TraderCommand>> = HashMap::new();
    while seen.values().map(Vec::len).sum::<usize>() < 5 {
        let next = tokio::time::timeout(Duration::from_secs(30), commands.next::<TraderCommand>())
            .await
            .expect("commands arrive")
            .unwrap();
        assert_eq!(next.key, trader.trader_id.unwrap().to_string());
        let command = next.value.unwrap();
        assert_eq!(command.kind, TraderCommandKind::ClientConfirmed);
        assert_eq!(command.actor_role.as_deref(), Some("customer"));
        seen.entry(command.order_id.unwrap().0)
            .or_default()
            .push(command);
    }
    commands.close().ok();
    assert!(!seen.contains_key(&waiting.order_id));
    let json_commands = &seen[&by_json.order_id];
    assert_eq!(json_commands.len(), 2, "sent twice");
    assert_eq!(json_commands[0].command_id, json_commands[1].command_id);
    assert_eq!(
        json_commands[0].receipt_key.as_deref(),
        Some(json_key.as_str())
    );
    assert_eq!(
        seen[&by_form.order_id][0].receipt_key.as_deref(),
        Some(form_key.as_str())
    );
    assert_eq!(seen[&no_file.order_id][0].receipt_key, None);
    assert_eq!(seen[&plain.order_id][0].receipt_key, None);
    app.stop().await;
}
