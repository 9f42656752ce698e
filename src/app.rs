//! The composition root: turns a validated [`Config`] into handlers, a chain and listeners, and runs
//! them until shutdown. Only `main` calls it; nothing imports it.
//!
//! PLACEHOLDER (owned by the lead, who replaces this body when the handlers and the server land): for
//! now [`run`] only logs that nothing is wired up and waits for shutdown, so that the process edge
//! (CLI, config, tracing, runtime, signals) can be built and tested on its own.

use anyhow::Result;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The running service.
pub struct App {
    config: Config,
}

/// Runs dnsveil with `config` until `shutdown` is cancelled. Each message on `reload` asks for a
/// reload (SIGHUP).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> Result<()> {
    let app = App { config };
    tracing::warn!(
        listen = ?app.config.server.listen,
        "no handlers yet: this build does not serve DNS (placeholder app::run)"
    );
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = reload.recv() => tracing::info!("reload requested; nothing to reload yet"),
        }
    }
    tracing::info!("shut down");
    Ok(())
}
