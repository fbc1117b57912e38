//! Reading the server-sent event streams (the payment's and the trader's orders') the way a
//! client app does: one long-lived response, one JSON document per event.

use anyhow::{bail, Context};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::time::Duration;

/// How long one stream may stay open before the reader gives up on it (the servers end
/// theirs sooner; a reader then opens a new one).
const STREAM_TIMEOUT: Duration = Duration::from_secs(3600);

type Events = Pin<Box<dyn Stream<Item = anyhow::Result<(String, Value)>> + Send>>;

/// An open event stream.
pub struct EventStream {
    events: Events,
}

impl EventStream {
    /// Sends `request` and checks that the answer is an event stream.
    pub async fn open(request: reqwest::RequestBuilder) -> anyhow::Result<Self> {
        let response = request
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(STREAM_TIMEOUT)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("event stream refused ({status}): {body}");
        }
        let events = response.bytes_stream().eventsource().map(|event| {
            let event = event.context("event stream broken")?;
            let data = serde_json::from_str(&event.data)
                .with_context(|| format!("event {} is not JSON", event.event))?;
            Ok((event.event, data))
        });
        Ok(Self {
            events: Box::pin(events),
        })
    }

    /// The next event (name, data); `None` once the server ended the stream.
    pub async fn next(&mut self) -> Option<anyhow::Result<(String, Value)>> {
        self.events.next().await
    }
}
