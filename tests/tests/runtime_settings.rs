//! A setting changed through the management API reaches a running component's view of the
//! settings without a restart; seeded defaults are there from the start.

use jivapay_admin::auth::Role;
use jivapay_platform::runtime_settings::RuntimeSettings;
use jivapay_tests::admin::AdminApp;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_setting_takes_effect_without_a_restart() {
    let app = AdminApp::start().await;
    let stop = CancellationToken::new();
    let settings = RuntimeSettings::start(&app.broker, app.state.schemas.clone(), stop.clone())
        .await
        .unwrap();
    let window = "orders.payment_window_secs";
    // Defaults are published in catalogue order; wait for the last one.
    let last = "callbacks.allow_private_addresses";
    assert!(
        settings
            .wait_until(last, Duration::from_secs(5), |s| s.boolean(last).is_some())
            .await,
        "the seeded defaults are published"
    );
    assert_eq!(settings.duration(window), Some(Duration::from_secs(900)));
    assert_eq!(
        settings
            .decimal("fraud.review_threshold")
            .map(|d| d.to_string()),
        Some("300000.00".into())
    );
    assert_eq!(
        settings.boolean("callbacks.allow_private_addresses"),
        Some(false)
    );
    assert_eq!(
        settings
            .seconds_list("callbacks.retry_schedule_secs")
            .map(|l| l.len()),
        Some(8)
    );

    let admin = app.person(Role::Admin, &["*:*:*"]).await;
    let (status, body) = app
        .put(
            &admin,
            &format!("/api/settings/{window}"),
            json!({"value": 600}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        settings
            .wait_until(window, Duration::from_secs(2), |s| s.duration(window)
                == Some(Duration::from_secs(600)))
            .await,
        "the running reader sees the new value"
    );
    stop.cancel();
    app.stop().await;
}
