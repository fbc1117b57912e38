//! The payment page itself: server-rendered HTML, no front-end build. It reloads itself the
//! moment the order moves on (the payment's event stream) while a requisite is being found or
//! the trader is confirming, shows the requisite and a countdown
//! while the customer can pay, and says so when the payment is complete or has expired.

use super::receipts::MAX_RECEIPT_BYTES;
use super::view::{load, PaymentView};
use crate::state::IngestState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jivapay_domain::OrderStatus;
use jivapay_platform::http::path::Path;
use std::collections::HashMap;

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A page that is waiting for the order to move on, and how it learns that it did.
struct Live<'a> {
    token: &'a str,
    /// The status the page shows; any other one makes it reload.
    status: &'a str,
    /// Reload period for browsers without JavaScript.
    fallback_secs: u32,
}

impl Live<'_> {
    /// The payment's event stream (see [`super::events`]) reloads the page as soon as the
    /// status changes; without JavaScript a plain timed refresh does.
    fn head(&self) -> String {
        format!(
            r#"<noscript><meta http-equiv="refresh" content="{}"></noscript>"#,
            self.fallback_secs
        )
    }

    fn script(&self) -> String {
        format!(
            r#"<script>
(function(){{var shown="{status}";var stream=new EventSource("/api/v1/payment/{token}/events");
stream.addEventListener("payment",function(e){{if(JSON.parse(e.data).status!==shown){{stream.close();location.reload();}}}});}})();
</script>"#,
            status = esc(self.status),
            token = esc(self.token)
        )
    }
}

fn layout(title: &str, live: Option<Live>, body: &str) -> String {
    let refresh = live.as_ref().map(Live::head).unwrap_or_default();
    let script = live.as_ref().map(Live::script).unwrap_or_default();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}}
.card{{border:1px solid #d0d7de;border-radius:12px;padding:1.25rem;margin:1rem 0}}
.amount{{font-size:2rem;font-weight:700}} .number{{font-family:monospace;font-size:1.4rem;letter-spacing:.05em}}
.muted{{color:#57606a}} button{{font-size:1.1rem;padding:.7rem 1.2rem;border-radius:8px;border:0;background:#1f6feb;color:#fff;cursor:pointer}}
button:disabled{{background:#8c959f;cursor:default}} .error{{color:#cf222e}} label{{display:block;margin:.25rem 0}}
</style></head><body><h1>{title}</h1>{body}{script}</body></html>"#,
        title = esc(title)
    )
}

fn amount(view: &PaymentView) -> String {
    let value = view
        .amount
        .map(|a| a.to_string())
        .unwrap_or_else(|| "—".into());
    format!(
        r#"<div class="amount" id="amount">{} {}</div>"#,
        esc(&value),
        esc(&view.currency)
    )
}

fn render(view: &PaymentView, token: &str, just_confirmed: bool) -> String {
    // An unknown name (none is stored) renders as closed, like every terminal status.
    match view.status.parse::<OrderStatus>().ok() {
        Some(OrderStatus::Created) => layout(
            "Preparing your payment",
            Some(Live {
                token,
                status: &view.status,
                fallback_secs: 2,
            }),
            &format!(
                r#"{}<p class="muted" id="state">Finding a way for you to pay… this page updates by itself.</p>"#,
                amount(view)
            ),
        ),
        Some(OrderStatus::Assigned) if view.can_confirm && !just_confirmed => {
            let requisite = view.requisite.as_ref();
            let field = |label: &str, value: &str, id: &str| {
                format!(
                    r#"<p><span class="muted">{}</span><br><span id="{id}" class="{}">{}</span></p>"#,
                    esc(label),
                    if id == "number" { "number" } else { "" },
                    esc(value)
                )
            };
            let details = requisite
                .map(|r| {
                    format!(
                        "{}{}{}",
                        field(
                            &format!("{} ({})", view.payment_method, r.kind),
                            &r.number,
                            "number"
                        ),
                        field("Recipient", &r.holder_name, "holder"),
                        field("Bank", r.bank.as_deref().unwrap_or("—"), "bank")
                    )
                })
                .unwrap_or_default();
            layout(
                "Pay by bank transfer",
                None,
                &format!(
                    r#"{amount}<div class="card">{details}</div>
<p class="muted">Time left: <strong id="countdown" data-seconds="{secs}">{mm}:{ss:02}</strong> (until {until} UTC)</p>
<form id="paid-form" method="post" action="/pay/{token}/confirm" enctype="multipart/form-data">
<label for="receipt" class="muted">Receipt (optional): PNG, JPEG or PDF, up to {max_mib} MB</label>
<p><input id="receipt" name="receipt" type="file" accept="image/png,image/jpeg,application/pdf,.png,.jpg,.jpeg,.pdf"></p>
<p id="receipt-error" class="error" hidden></p>
<button id="paid" type="submit">I have paid</button></form>
<script>
(function(){{var el=document.getElementById('countdown');var s=+el.dataset.seconds;
setInterval(function(){{if(s>0)s--;el.textContent=Math.floor(s/60)+':'+String(s%60).padStart(2,'0');if(s===0)location.reload();}},1000);
var form=document.getElementById('paid-form'),file=document.getElementById('receipt'),err=document.getElementById('receipt-error');
form.addEventListener('submit',function(e){{var f=file.files[0];
if(f&&f.size>{max_bytes}){{e.preventDefault();err.textContent='The receipt is too large: at most {max_mib} MB.';err.hidden=false;return;}}
document.getElementById('paid').disabled=true;}});
file.addEventListener('change',function(){{err.hidden=true;}});}})();
</script>"#,
                    amount = amount(view),
                    secs = view.seconds_left,
                    mm = view.seconds_left / 60,
                    ss = view.seconds_left % 60,
                    until = view.expires_at.format("%H:%M:%S"),
                    token = esc(token),
                    max_mib = MAX_RECEIPT_BYTES / (1024 * 1024),
                    max_bytes = MAX_RECEIPT_BYTES,
                ),
            )
        }
        Some(OrderStatus::ClientConfirmed | OrderStatus::Assigned) => layout(
            "Thank you — checking your payment",
            Some(Live {
                token,
                status: &view.status,
                fallback_secs: 3,
            }),
            &format!(
                r#"{}<p id="state">{}We are waiting for the recipient to confirm that the money arrived. This page updates by itself.</p>"#,
                amount(view),
                if just_confirmed {
                    "Your confirmation was received. "
                } else {
                    ""
                }
            ),
        ),
        Some(OrderStatus::Completed) => layout(
            "Payment received",
            None,
            &format!(
                r#"{}<p id="state">The payment is complete. You can close this page.</p>"#,
                amount(view)
            ),
        ),
        Some(OrderStatus::Expired) => layout(
            "This payment has expired",
            None,
            r#"<p id="state">The time to pay has run out. Please start a new payment from the shop.</p>"#,
        ),
        Some(OrderStatus::Disputed) => layout(
            "Payment under review",
            None,
            r#"<p id="state">The payment is being checked by our support team.</p>"#,
        ),
        Some(OrderStatus::Review) => layout(
            "Payment under review",
            None,
            r#"<p id="state">This payment is being reviewed. The shop will let you know.</p>"#,
        ),
        _ => layout(
            "This payment is closed",
            None,
            r#"<p id="state">This payment can no longer be made. Please return to the shop.</p>"#,
        ),
    }
}

/// The answer to a form whose receipt (or request) was refused: why, and a way back.
pub(crate) fn refused(token: &str, code: &str, message: &str) -> String {
    layout(
        "Your confirmation was not sent",
        None,
        &format!(
            r#"<p id="state" class="error" data-code="{code}">{message}</p>
<p><a id="back" href="/pay/{token}">Back to the payment</a></p>"#,
            code = esc(code),
            message = esc(message),
            token = esc(token),
        ),
    )
}

pub async fn page(
    State(state): State<IngestState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match load(&state, &token).await {
        Ok(view) => Html(render(&view, &token, query.contains_key("confirmed"))).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => (
            StatusCode::NOT_FOUND,
            Html(layout(
                "Payment not found",
                None,
                "<p>This payment link is not valid.</p>",
            )),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
