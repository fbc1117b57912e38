//! The HTTP calls the simulated people make, each through the public API a real client uses:
//! the gateway (store API keys), the payment page (JSON and its HTML form with a receipt) and
//! the management API (logins, API keys, the trader's orders).

use crate::sse::EventStream;
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::time::Duration;

/// The two HTTP surfaces of a running JivaPay.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: reqwest::Client,
    /// e.g. `http://127.0.0.1:8080` (gateway and payment pages)
    pub ingest: String,
    /// e.g. `http://127.0.0.1:8081` (management API)
    pub admin: String,
}

/// A pay-in the gateway accepted.
#[derive(Debug, Clone)]
pub struct Created {
    pub order_id: String,
    pub token: String,
}

/// A PNG of one pixel: the smallest receipt the payment page accepts (checked by magic bytes).
pub const RECEIPT_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

impl Api {
    /// A client for `ingest` and `admin` with connection reuse sized for load.
    pub fn new(ingest: &str, admin: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            ingest: ingest.trim_end_matches('/').to_owned(),
            admin: admin.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST /api/auth/{role}/login`: the bearer token.
    pub async fn login(&self, role: &str, login: &str, password: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/auth/{role}/login", self.admin))
            .json(&json!({"login": login, "password": password}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("login of {role} {login:?} refused ({status}): {body}"))
    }

    /// Every store of the merchant behind `token`, each with a fresh API key: (store id, key).
    pub async fn store_keys(&self, merchant_token: &str) -> anyhow::Result<Vec<(String, String)>> {
        let stores: Value = self
            .client
            .get(format!("{}/api/stores", self.admin))
            .bearer_auth(merchant_token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = Vec::new();
        for store in stores.as_array().context("a list of stores")? {
            let id = store["id"].as_str().context("store id")?.to_owned();
            let key: Value = self
                .client
                .post(format!("{}/api/stores/{id}/api-keys", self.admin))
                .bearer_auth(merchant_token)
                .json(&json!({}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            keys.push((id, key["key"].as_str().context("api key")?.to_owned()));
        }
        Ok(keys)
    }

    /// `POST /api/v1/payins` as the store owning `key`.
    pub async fn create_payin(
        &self,
        key: &str,
        external_order_id: &str,
        amount: &str,
        currency: &str,
        method: &str,
    ) -> anyhow::Result<Created> {
        let response = self
            .client
            .post(format!("{}/api/v1/payins", self.ingest))
            .header("x-api-key", key)
            .json(&json!({
                "external_order_id": external_order_id,
                "amount": amount,
                "currency": currency,
                "payment_method": method,
            }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("pay-in refused ({status}): {body}");
        }
        let token = body["payment_url"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .context("payment_url")?
            .to_owned();
        Ok(Created {
            order_id: body["order_id"].as_str().context("order_id")?.to_owned(),
            token,
        })
    }

    /// `GET /api/v1/payment/{token}/events`: the payment as the payer sees it, as it changes.
    pub async fn payment_events(&self, token: &str) -> anyhow::Result<EventStream> {
        EventStream::open(
            self.client
                .get(format!("{}/api/v1/payment/{token}/events", self.ingest)),
        )
        .await
    }

    /// "I have paid" through the JSON endpoint.
    pub async fn confirm_payment(&self, token: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("{}/api/v1/payment/{token}/confirm", self.ingest))
            .send()
            .await?;
        match response.status().as_u16() {
            202 => Ok(()),
            status => bail!("confirmation refused ({status})"),
        }
    }

    /// "I have paid" through the HTML page's form, with a receipt file (multipart, like a
    /// browser sends it). The page answers with a redirect back to itself.
    pub async fn confirm_with_receipt(&self, token: &str) -> anyhow::Result<()> {
        const BOUNDARY: &str = "jivapay-loadgen-5b0f2c";
        let mut body = Vec::with_capacity(RECEIPT_PNG.len() + 256);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"receipt\"; filename=\"receipt.png\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(RECEIPT_PNG);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let response = self
            .client
            .post(format!("{}/pay/{token}/confirm", self.ingest))
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if response.status().is_redirection() && location.contains("confirmed=1") {
            Ok(())
        } else {
            bail!("form confirmation refused ({})", response.status())
        }
    }

    /// `GET /api/trader/orders/events`: the trader's open orders, then their changes.
    pub async fn trader_events(&self, token: &str) -> anyhow::Result<EventStream> {
        EventStream::open(
            self.client
                .get(format!("{}/api/trader/orders/events", self.admin))
                .bearer_auth(token),
        )
        .await
    }

    /// The trader confirms the money arrived.
    pub async fn trader_confirm(&self, token: &str, order_id: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!(
                "{}/api/trader/orders/{order_id}/confirm",
                self.admin
            ))
            .bearer_auth(token)
            .send()
            .await?;
        match response.status().as_u16() {
            202 => Ok(()),
            status => bail!("trader confirmation refused ({status})"),
        }
    }
}
