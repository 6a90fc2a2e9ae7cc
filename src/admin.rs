//! Admin HTTP endpoint and the process's metrics.
//!
//! `/metrics` serves Prometheus text exposition, `/healthz` answers `ok`.
//! Metrics are plain atomics from `prometheus-client`; recording one never
//! blocks or allocates, so the proxy's hot path can count freely.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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
    /// Cacheable statements answered from the cache.
    pub cache_hits: Counter,
    /// Cacheable statements forwarded to the origin while caching is on.
    pub cache_misses: Counter,
    /// Entries filled from the origin's reply (`ok`) or given up (`failed`).
    pub cache_populations: Family<PopulationLabels, Counter>,
    /// Lookups narrowing join entries after their capture, by result:
    /// `narrowed`, `changed` (a change to the table came first),
    /// `failed` (refused, unreadable or no connection), `queue_full`.
    pub cache_lookups: Family<LookupLabels, Counter>,
    /// Joined entries whose rows were read to keep them in place (ADR
    /// 018), by result: `joined`, `refused` (the rows do not give a result
    /// this can keep), `failed` (refused by the origin, no connection),
    /// `full` (too many joined entries of a table), `queue_full`.
    pub cache_joins: Family<LookupLabels, Counter>,
    /// Entries evicted to stay within `cache.max_memory`.
    pub cache_evictions: Counter,
    pub cache_entries: Gauge,
    pub cache_rows: Gauge,
    pub cache_memory_bytes: Gauge,
    /// Time from a request's arrival to its reply queued for the client.
    pub cache_hit_duration: Histogram,
    /// Time from forwarding a cacheable request to the origin's ReadyForQuery.
    pub cache_miss_duration: Histogram,
    /// Origin catalog loads completed (at start, after DDL through the proxy,
    /// periodically); caching starts after the first.
    pub cache_catalog_loads: Counter,
    /// The change stream is connected and streaming (1) or not (0).
    pub cdc_stream_up: Gauge,
    /// Cached results are being served (1): the stream is up and within
    /// `cdc.max_lag` of the origin. 0: every statement is forwarded.
    pub cdc_serving: Gauge,
    /// WAL position (bytes) through which every committed change has been applied.
    pub cdc_applied_lsn: Gauge,
    /// The origin's WAL insert position as last read (bytes).
    pub cdc_origin_lsn: Gauge,
    /// How long the oldest origin position not yet applied has been known.
    pub cdc_lag_seconds: Gauge<f64, AtomicU64>,
    /// Transactions and row changes applied.
    pub cdc_transactions: Counter,
    pub cdc_changes: Counter,
    /// Cached results updated in place, and live ones dropped (ADR 017).
    pub cdc_entries_updated: Counter,
    pub cdc_entries_dropped: Family<DropLabels, Counter>,
    /// Times the change stream was (re)started after the first.
    pub cdc_restarts: Counter,
    /// Commit time of the last applied transaction (Unix seconds, origin clock).
    pub cdc_last_commit_timestamp_seconds: Gauge<f64, AtomicU64>,
    /// Reads the cache's own counters at scrape time.
    cache_source: OnceLock<Arc<dyn CacheSource>>,
    evictions_seen: AtomicU64,
}

/// Label of `cache_populations`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PopulationLabels {
    pub result: &'static str,
}

/// Label of `cdc_entries_dropped`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: &'static str,
}

/// Label of `cache_lookups`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub result: &'static str,
}

/// What the metrics read from the cache when scraped.
pub trait CacheSource: Send + Sync {
    fn entries(&self) -> u64;
    fn rows(&self) -> i64;
    fn memory_bytes(&self) -> u64;
    fn evictions(&self) -> u64;
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
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_populations: Family::default(),
            cache_lookups: Family::default(),
            cache_joins: Family::default(),
            cache_evictions: Counter::default(),
            cache_entries: Gauge::default(),
            cache_rows: Gauge::default(),
            cache_memory_bytes: Gauge::default(),
            cache_hit_duration: Histogram::new(exponential_buckets(1e-6, 3.0, 14)),
            cache_miss_duration: Histogram::new(exponential_buckets(1e-5, 3.0, 14)),
            cache_catalog_loads: Counter::default(),
            cdc_stream_up: Gauge::default(),
            cdc_serving: Gauge::default(),
            cdc_applied_lsn: Gauge::default(),
            cdc_origin_lsn: Gauge::default(),
            cdc_lag_seconds: Gauge::default(),
            cdc_transactions: Counter::default(),
            cdc_changes: Counter::default(),
            cdc_entries_updated: Counter::default(),
            cdc_entries_dropped: Family::default(),
            cdc_restarts: Counter::default(),
            cdc_last_commit_timestamp_seconds: Gauge::default(),
            cache_source: OnceLock::new(),
            evictions_seen: AtomicU64::new(0),
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
        registry.register(
            "cache_hits",
            "Statements answered from the cache",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Cacheable statements forwarded to the origin while caching is on",
            m.cache_misses.clone(),
        );
        registry.register(
            "cache_populations",
            "Cache entries filled from the origin's reply (ok) or given up (failed)",
            m.cache_populations.clone(),
        );
        registry.register(
            "cache_lookups",
            "Lookups narrowing join entries after their capture, by result \
             (narrowed, changed, failed, queue_full)",
            m.cache_lookups.clone(),
        );
        registry.register(
            "cache_joins",
            "Joined entries whose rows were read to keep them in place, by result \
             (joined, refused, failed, full, queue_full)",
            m.cache_joins.clone(),
        );
        registry.register(
            "cache_evictions",
            "Cache entries evicted to stay within cache.max_memory",
            m.cache_evictions.clone(),
        );
        registry.register(
            "cache_entries",
            "Cache entries held",
            m.cache_entries.clone(),
        );
        registry.register(
            "cache_rows",
            "Rows held by cache entries",
            m.cache_rows.clone(),
        );
        registry.register(
            "cache_memory_bytes",
            "Bytes held by cache entries (bounded by cache.max_memory)",
            m.cache_memory_bytes.clone(),
        );
        registry.register(
            "cache_hit_duration_seconds",
            "Time to answer a statement from the cache, in the proxy",
            m.cache_hit_duration.clone(),
        );
        registry.register(
            "cache_miss_duration_seconds",
            "Time from forwarding a cacheable statement to the origin's reply completing",
            m.cache_miss_duration.clone(),
        );
        registry.register(
            "cache_catalog_loads",
            "Origin catalog loads completed (caching starts after the first)",
            m.cache_catalog_loads.clone(),
        );
        registry.register(
            "cdc_stream_up",
            "The change stream is connected and streaming",
            m.cdc_stream_up.clone(),
        );
        registry.register(
            "cdc_serving",
            "Cached results are served (stream up and within cdc.max_lag); 0 forwards everything",
            m.cdc_serving.clone(),
        );
        registry.register(
            "cdc_applied_lsn",
            "WAL position through which every committed change has been applied",
            m.cdc_applied_lsn.clone(),
        );
        registry.register(
            "cdc_origin_lsn",
            "The origin's WAL insert position as last read",
            m.cdc_origin_lsn.clone(),
        );
        registry.register(
            "cdc_lag_seconds",
            "How long the oldest origin WAL position not yet applied has been known",
            m.cdc_lag_seconds.clone(),
        );
        registry.register(
            "cdc_transactions",
            "Committed transactions applied from the change stream",
            m.cdc_transactions.clone(),
        );
        registry.register(
            "cdc_changes",
            "Row changes applied from the change stream (a truncate counts once per table)",
            m.cdc_changes.clone(),
        );
        registry.register(
            "cdc_entries_updated",
            "Cached results the change stream updated in place (one per result and transaction)",
            m.cdc_entries_updated.clone(),
        );
        registry.register(
            "cdc_entries_dropped",
            "Results kept up to date in place that a change could not be applied to, by reason",
            m.cdc_entries_dropped.clone(),
        );
        registry.register(
            "cdc_restarts",
            "Times the change stream was restarted after a failure (cached results dropped each time)",
            m.cdc_restarts.clone(),
        );
        registry.register(
            "cdc_last_commit_timestamp_seconds",
            "Commit time (origin clock, Unix seconds) of the last applied transaction",
            m.cdc_last_commit_timestamp_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Read the cache's counters at each scrape (set once).
    pub fn set_cache_source(&self, source: Arc<dyn CacheSource>) {
        let _ = self.cache_source.set(source);
    }

    fn refresh(&self) {
        let Some(source) = self.cache_source.get() else {
            return;
        };
        self.cache_entries
            .set(i64::try_from(source.entries()).unwrap_or(i64::MAX));
        self.cache_rows.set(source.rows().max(0));
        self.cache_memory_bytes
            .set(i64::try_from(source.memory_bytes()).unwrap_or(i64::MAX));
        let evictions = source.evictions();
        let seen = self.evictions_seen.swap(evictions, Ordering::Relaxed);
        self.cache_evictions.inc_by(evictions.saturating_sub(seen));
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.refresh();
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
