//! The HTTP client's resolver: the send-time half of the callback-URL policy
//! (`jivapay_core::callback_url`). It resolves with the system resolver and refuses forbidden
//! addresses, so a connection only ever goes to a vetted address, even if the name resolves
//! differently from a moment before (DNS rebinding).

use jivapay_core::callback_url::{check_addresses, resolve};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct GuardedResolver {
    /// `callbacks.allow_private_addresses`, kept current by the sender.
    pub allow_private: Arc<AtomicBool>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private.load(Ordering::Relaxed);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve(&host, 0).await?;
            if !allow {
                check_addresses(&host, &addresses)?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}
