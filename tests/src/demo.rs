//! The demo data (`jivapay seed --demo`) as the process tests use it: seeded into a test
//! database, and a demo merchant signed in to a running `jivapay all` with his first store.

use crate::process::{command, Running};
use serde_json::{json, Value};
use std::path::Path;

/// The demo accounts' password in tests.
pub const DEMO_PASSWORD: &str = "demo-password-123";

/// Seeds the demo data into the database at `url` (bounded by the command's own checks).
pub fn seed(binary: &Path, url: &str) {
    let env = [
        ("JIVAPAY__DATABASE__URL", url),
        ("JIVAPAY__SEED__DEMO_PASSWORD", DEMO_PASSWORD),
    ];
    let seeded = command(binary, &["seed", "--demo"], &env)
        .output()
        .expect("jivapay seed runs");
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
}

/// A demo merchant signed in through the management API, with his first store.
pub struct Merchant {
    pub client: reqwest::Client,
    pub admin: String,
    pub token: String,
    pub store: String,
}

impl Merchant {
    pub async fn sign_in(app: &Running, login: &str) -> Self {
        let client = reqwest::Client::new();
        let admin = app.admin.clone();
        let signed_in: Value = client
            .post(format!("{admin}/api/auth/merchant/login"))
            .json(&json!({"login": login, "password": DEMO_PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = signed_in["token"].as_str().expect("signed in").to_owned();
        let mut merchant = Self {
            client,
            admin,
            token,
            store: String::new(),
        };
        let stores = merchant.get("/api/stores").await;
        merchant.store = stores[0]["id"].as_str().expect("a store").to_owned();
        merchant
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.admin));
        let response = response.bearer_auth(&self.token).send().await.unwrap();
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let request = self.client.post(format!("{}{path}", self.admin));
        let response = request
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// A new API key of his store.
    pub async fn api_key(&self) -> String {
        let path = format!("/api/stores/{}/api-keys", self.store);
        let key = self.post(&path, json!({})).await;
        key["key"].as_str().expect("an API key").to_owned()
    }
}
