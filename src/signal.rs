//! Process signals: SIGINT (Ctrl-C) and SIGTERM both ask for a graceful stop.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves when the process receives SIGINT or SIGTERM. If a handler cannot
/// be installed (it can only fail before the runtime has signal support),
/// the other signal still works; with neither, it never resolves.
pub async fn terminate() {
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        Some(()) = async { term.as_mut()?.recv().await } => {}
        Some(()) = async { int.as_mut()?.recv().await } => {}
        else => std::future::pending::<()>().await,
    }
}
