//! Admin HTTP endpoint and the process's metrics.
//!
//! `/metrics` serves Prometheus text exposition, `/healthz` answers `ok`.
//! Metrics are plain atomics from `prometheus-client`; recording one never
//! blocks or allocates, so the proxy's hot path can count freely.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Every metric pgcache exports. Names are listed in `docs/metrics.md`.
pub struct Metrics {
    registry: Registry,
    /// Client connections accepted (including ones refused later).
    pub client_connections: Counter,
    /// Client sessions currently open.
    pub client_connections_active: Gauge,
    /// Client connections refused because `limits.max_connections` was reached.
    pub client_connections_refused: Counter,
    /// Attempts to reach the origin that failed (refused, timed out, unresolvable).
    pub origin_connect_failures: Counter,
    /// Malformed or oversized frontend messages (answered with 08P01).
    pub protocol_errors: Counter,
    /// CancelRequests received; `cancel_requests_forwarded` those that matched a session.
    pub cancel_requests: Counter,
    pub cancel_requests_forwarded: Counter,
    /// Bytes relayed client → origin and origin → client.
    pub client_bytes_received: Counter,
    pub client_bytes_sent: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pgcache");
        let m = Metrics {
            client_connections: Counter::default(),
            client_connections_active: Gauge::default(),
            client_connections_refused: Counter::default(),
            origin_connect_failures: Counter::default(),
            protocol_errors: Counter::default(),
            cancel_requests: Counter::default(),
            cancel_requests_forwarded: Counter::default(),
            client_bytes_received: Counter::default(),
            client_bytes_sent: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "client_connections",
            "Client connections accepted",
            m.client_connections.clone(),
        );
        registry.register(
            "client_connections_active",
            "Client sessions currently open",
            m.client_connections_active.clone(),
        );
        registry.register(
            "client_connections_refused",
            "Client connections refused at limits.max_connections",
            m.client_connections_refused.clone(),
        );
        registry.register(
            "origin_connect_failures",
            "Failed attempts to connect to the origin",
            m.origin_connect_failures.clone(),
        );
        registry.register(
            "protocol_errors",
            "Malformed or oversized frontend messages",
            m.protocol_errors.clone(),
        );
        registry.register(
            "cancel_requests",
            "CancelRequests received",
            m.cancel_requests.clone(),
        );
        registry.register(
            "cancel_requests_forwarded",
            "CancelRequests matched to a session and forwarded to the origin",
            m.cancel_requests_forwarded.clone(),
        );
        registry.register(
            "client_received_bytes",
            "Bytes received from clients",
            m.client_bytes_received.clone(),
        );
        registry.register(
            "client_sent_bytes",
            "Bytes sent to clients",
            m.client_bytes_sent.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serve `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
