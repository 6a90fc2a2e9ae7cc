//! An in-process proxy: `pgcache::proxy::serve` on a listener bound to
//! `127.0.0.1:0`, stopped through a oneshot channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pgcache::admin::Metrics;
use pgcache::config::{AdminConfig, Config, OriginConfig, ShutdownConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{HANG_GUARD, origin, within};

/// Configuration for a test proxy listening on `listen` and relaying to the
/// shared origin: the defaults, except a long shutdown timeout (60 s), so a
/// test waiting for `serve` to return notices when sessions are not closed
/// promptly, and no admin endpoint (tests read [`Proxy::metrics`] directly).
pub fn base_config(listen: SocketAddr) -> Config {
    let origin = origin();
    let defaults = Config::default();
    Config {
        listen: listen.to_string(),
        origin: OriginConfig {
            host: origin.addr().ip().to_string(),
            port: origin.port(),
            database: "postgres".into(),
            user: super::origin::SUPERUSER.into(),
            connect_timeout: Duration::from_secs(10),
            ..defaults.origin
        },
        shutdown: ShutdownConfig {
            timeout: Duration::from_secs(60),
        },
        admin: AdminConfig { listen: None },
        ..defaults
    }
}

/// A running in-process proxy. Dropping it asks `serve` to stop.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Proxy {
    /// A proxy to the shared origin with [`base_config`].
    pub async fn start() -> Proxy {
        Self::start_with(|_| {}).await
    }

    /// A proxy with the cache on (`auto`, every cacheable shape admitted at
    /// once) and no change stream (only writes through the proxy invalidate,
    /// and an entry is served from the next request on), after `tweak`;
    /// returns once the origin's catalog is loaded.
    pub async fn start_cached(tweak: impl FnOnce(&mut Config)) -> Proxy {
        Self::start_cache(|c| {
            c.cdc.mode = pgcache::config::CdcMode::Off;
            tweak(c);
        })
        .await
    }

    /// A proxy with the cache on, maintained by the change stream, after
    /// `tweak`; returns once the stream serves.
    pub async fn start_streaming(tweak: impl FnOnce(&mut Config)) -> Proxy {
        Self::start_cache(tweak).await
    }

    /// Returns once the origin's catalog is loaded and, with the change
    /// stream on, once the stream serves (its start reloads the catalog:
    /// two loads).
    async fn start_cache(tweak: impl FnOnce(&mut Config)) -> Proxy {
        let mut stream = false;
        let proxy = Self::start_with(|c| {
            c.cache.mode = pgcache::config::CacheMode::Auto;
            c.cache.admit_after = 1;
            tweak(c);
            stream = c.cdc.mode == pgcache::config::CdcMode::On;
        })
        .await;
        let metrics = Arc::clone(&proxy.metrics);
        super::eventually(Duration::from_secs(30), "cache ready", move || {
            let m = Arc::clone(&metrics);
            async move {
                if stream {
                    m.cdc_serving.get() == 1 && m.cache_catalog_loads.get() >= 2
                } else {
                    m.cache_catalog_loads.get() >= 1
                }
            }
        })
        .await;
        proxy
    }

    /// A proxy whose configuration `tweak` may change first.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mut config = base_config(addr);
        tweak(&mut config);
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pgcache::proxy::serve(
            listener,
            config.clone(),
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Proxy {
            addr,
            metrics,
            config,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// tokio-postgres settings for this proxy (`user=postgres dbname=postgres`).
    pub fn pg_config(&self, application_name: &str) -> tokio_postgres::Config {
        super::pg_config(self.addr, application_name)
    }

    /// Connect through the proxy as `postgres`; panics on failure.
    pub async fn connect(&self, application_name: &str) -> tokio_postgres::Client {
        super::connect(&self.pg_config(application_name))
            .await
            .unwrap_or_else(|e| panic!("connect through the proxy: {e:?}"))
    }

    /// Signal shutdown without waiting for `serve` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether `serve` has returned.
    pub fn has_returned(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait (hang guard `limit`) for `serve` to return and hand back its result.
    pub async fn join(&mut self, limit: Duration) -> std::io::Result<()> {
        let task = self.task.take().expect("serve already joined");
        within(limit, "proxy::serve to return", task)
            .await
            .expect("proxy::serve panicked")
    }

    /// Signal shutdown and wait for `serve` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        self.join(HANG_GUARD).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
