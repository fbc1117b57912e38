//! Ctrl-C or SIGTERM (what an orchestrator sends) starts a graceful shutdown.

use tokio_util::sync::CancellationToken;

/// A token that is cancelled on the first Ctrl-C or SIGTERM.
pub fn signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        drop(ctrl_c.await);
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        drop(ctrl_c.await);
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}
