//! The proxy: accepts clients and relays each session to the origin.
//!
//! [`serve`] owns the accept loop and shutdown; each accepted client runs in
//! its own task ([`session`]). Shutdown has two phases, broadcast to every
//! session through a watch channel:
//!
//! - **Draining** — the listener is closed; idle sessions are told `57P01` and
//!   closed, busy ones are closed as soon as their statement completes.
//! - **Closing** — `shutdown.timeout` has passed: running statements are
//!   cancelled at the origin and every remaining session is closed.

mod cached;
mod cancel;
mod lookup;
mod origin;
mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

use crate::admin::Metrics;
use crate::config::{CdcMode, Config};
use cancel::CancelMap;
use origin::OriginTarget;

/// Shutdown phase broadcast to sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Draining,
    Closing,
}

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    /// Where to connect, resolved once from the configuration.
    pub(crate) origin: OriginTarget,
    pub(crate) cancel: Arc<CancelMap>,
    pub(crate) phase: watch::Receiver<Phase>,
    /// The result cache, when `cache.mode` is not `off`.
    pub(crate) cache: Option<Arc<cached::CacheRuntime>>,
}

/// How long sessions get to say goodbye once the drain timeout has expired.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Serve clients accepted on `listener` until `shutdown` resolves, then stop
/// accepting, let in-flight statements finish (up to `config.shutdown.timeout`)
/// and return once every session has ended.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let cache = cached::CacheRuntime::new(&config, Arc::clone(&metrics));
    let maintenance = cache.as_ref().map(|rt| {
        let stream = (config.cdc.mode == CdcMode::On).then(|| {
            tokio::spawn(crate::cdc::run(
                Arc::clone(rt) as Arc<dyn crate::cdc::Target>,
                config.cdc.clone(),
                config.origin.clone(),
                Arc::clone(&metrics),
                Arc::clone(&rt.fence_wanted),
            ))
        });
        let lookups = rt
            .take_lookup_jobs()
            .map(|jobs| tokio::spawn(lookup::run(Arc::clone(rt), config.origin.clone(), jobs)));
        (
            tokio::spawn(Arc::clone(rt).maintain(config.origin.clone())),
            tokio::spawn(Arc::clone(rt).clock()),
            stream,
            lookups,
        )
    });
    let shared = Arc::new(Shared {
        cache,
        origin: OriginTarget::from_config(&config.origin),
        config: Arc::clone(&config),
        metrics,
        cancel: Arc::new(CancelMap::default()),
        phase: phase_rx,
    });
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let mut sessions = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    next_id += 1;
                    let span = info_span!(
                        "session",
                        id = next_id,
                        %peer,
                        user = tracing::field::Empty,
                        database = tracing::field::Empty,
                    );
                    let permit = Arc::clone(&slots).try_acquire_owned().ok();
                    sessions.spawn(
                        session::run(stream, peer, Arc::clone(&shared), permit).instrument(span),
                    );
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off briefly
                    // instead of spinning; established sessions carry on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }

    drop(listener);
    info!(
        sessions = sessions.len(),
        "shutting down: draining sessions"
    );
    let _ = phase_tx.send(Phase::Draining);
    let drained = tokio::time::timeout(config.shutdown.timeout, join_all(&mut sessions)).await;
    if drained.is_err() {
        warn!(
            sessions = sessions.len(),
            "shutdown timeout expired: cancelling running statements"
        );
        let _ = phase_tx.send(Phase::Closing);
        if tokio::time::timeout(CLOSE_GRACE, join_all(&mut sessions))
            .await
            .is_err()
        {
            sessions.abort_all();
            join_all(&mut sessions).await;
        }
    }
    if let Some((catalog, clock, stream, lookups)) = maintenance {
        catalog.abort();
        clock.abort();
        for task in [stream, lookups].into_iter().flatten() {
            task.abort();
        }
    }
    info!("all sessions closed");
    Ok(())
}

async fn join_all(sessions: &mut JoinSet<()>) {
    while sessions.join_next().await.is_some() {}
}
