//! Faults injected while the workload runs: the change stream's walsender
//! terminated, a proxy connection closed in the middle of a pipeline, the
//! origin restarted (through a hook). None may cause a wrong answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use super::RestartHook;
use super::outcome::{Conn, Outcome};
use super::values::quote;
use super::workload::{Shared, Target, bump, lock, lost};
use crate::rng::Rng;

pub(super) async fn faults(shared: Arc<Shared>) {
    let mut rng = Rng::stream(shared.options.seed, 300);
    let app = "faults";
    let mut admin = match Conn::connect(&shared.config(Target::Origin, 0, app)).await {
        Ok(conn) => conn,
        Err(e) => {
            shared.error(format!("{app}: origin: {e}"));
            return;
        }
    };
    let restart: Option<RestartHook> = shared.options.restart_origin.clone();
    let mut injected = 0u64;
    while !shared.stop_writes.load(Ordering::Relaxed) {
        let wait = Duration::from_millis(rng.between(2000, 5000) as u64) * shared.options.calm;
        shared.pause(wait, &shared.stop_writes).await;
        if shared.stop_writes.load(Ordering::Relaxed) {
            break;
        }
        let weights = [4, 4, if restart.is_some() { 1 } else { 0 }];
        // The first two faults are one of each of the first two kinds.
        let kind = match injected {
            0 => 0,
            1 => 1,
            _ => rng.weighted(&weights),
        };
        injected += 1;
        match kind {
            0 => {
                let filter = match &shared.options.fault_slot {
                    Some(slot) => format!("slot_name = {}", quote(slot)),
                    None => "slot_name LIKE 'pgcache%'".to_owned(),
                };
                let sql = format!(
                    "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots \
                     WHERE {filter} AND active_pid IS NOT NULL"
                );
                match admin.simple(&sql).await {
                    Ok(Outcome::Rows { rows, .. }) => {
                        let n: u64 = rows
                            .first()
                            .and_then(|r| r.first())
                            .and_then(|c| c.as_ref())
                            .and_then(|b| std::str::from_utf8(b).ok())
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        shared
                            .counters
                            .walsender_terminations
                            .fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(other) => shared.error(format!("{app}: {sql}: {other}")),
                    Err(e) => lost(&shared, app, &e),
                }
            }
            1 => drop_pipeline(&shared, &mut rng).await,
            _ => {
                if let Some(hook) = &restart {
                    *lock(&shared.last_restart) = Some(Instant::now());
                    hook().await;
                    *lock(&shared.last_restart) = Some(Instant::now());
                    bump(&shared.counters.origin_restarts);
                }
            }
        }
        if admin.client.is_closed() {
            match Conn::connect(&shared.config(Target::Origin, 0, app)).await {
                Ok(conn) => admin = conn,
                Err(e) => {
                    shared.error(format!("{app}: cannot reconnect to the origin: {e}"));
                    return;
                }
            }
        }
    }
}

/// Send a pipelined batch of statements on a new proxy connection (reads,
/// sometimes a transaction with a write) and close the socket before all
/// replies are read. The proxy must go on serving other connections.
async fn drop_pipeline(shared: &Shared, rng: &mut Rng) {
    let app = "fault-pipeline";
    let conn = match Conn::connect(&shared.config(Target::Proxy, 0, app)).await {
        Ok(conn) => Arc::new(conn),
        Err(e) => {
            if !shared.restarting() {
                shared.error(format!("{app}: cannot connect to the proxy: {e}"));
            }
            return;
        }
    };
    let mut tasks = JoinSet::new();
    let in_transaction = rng.chance(1, 4);
    if in_transaction {
        let c = Arc::clone(&conn);
        let sql = format!(
            "BEGIN; UPDATE {}.t_int SET n = n WHERE id = {}",
            shared.s(),
            shared.pools.int_key(rng)
        );
        tasks.spawn(async move {
            let _ = c.client.batch_execute(&sql).await;
        });
    }
    let n = rng.between(4, 24);
    for _ in 0..n {
        let si = rng.index(shared.shapes.len());
        let shape = &shared.shapes[si];
        let values = shape.values[rng.index(shape.values.len())].clone();
        let c = Arc::clone(&conn);
        if rng.chance(1, 2) {
            let sql = shape.literal_sql(&values);
            tasks.spawn(async move {
                let _ = c.client.simple_query(&sql).await;
            });
        } else {
            let sql = shape.sql.clone();
            tasks.spawn(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let _ = c.client.query(sql.as_str(), &params).await;
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(rng.between(0, 6) as u64)).await;
    conn.kill();
    tasks.shutdown().await;
    bump(&shared.counters.pipelines_dropped);
    // Other connections are still served.
    let probe = async {
        let conn = Conn::connect(&shared.config(Target::Proxy, 0, "fault-probe")).await?;
        match conn.simple("SELECT 1").await {
            Ok(Outcome::Rows { .. }) => Ok(()),
            Ok(other) => Err(other.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    if let Err(e) = probe.await
        && !shared.restarting()
    {
        shared.error(format!(
            "the proxy does not answer after a dropped pipeline: {e}"
        ));
    }
}
