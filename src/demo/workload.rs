//! The demo workload: `clients` concurrent connections running a read-mostly
//! mix against the sample schema for a fixed time, and its summary.

use std::fmt;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

use crate::check::describe_pg_error;
use crate::rng::Rng;

/// Rows in `products` (ids 1..=PRODUCTS); must match `schema.sql`.
pub(crate) const PRODUCTS: i32 = 2000;
/// Rows in `customers` (ids 1..=CUSTOMERS); must match `schema.sql`.
pub(crate) const CUSTOMERS: i32 = 1000;

/// Longest a single statement may take before it counts as an error.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const POINT_SQL: &str = "SELECT name, price FROM products WHERE id = $1";
const RANGE_SQL: &str =
    "SELECT id, name, price FROM products WHERE id BETWEEN $1 AND $2 ORDER BY id";
const JOIN_SQL: &str = "SELECT o.id, c.name, o.product_id, o.quantity, o.created_at \
     FROM orders o JOIN customers c ON c.id = o.customer_id \
     WHERE o.customer_id = $1 ORDER BY o.created_at DESC LIMIT 20";
const INSERT_SQL: &str =
    "INSERT INTO orders (customer_id, product_id, quantity) VALUES ($1, $2, $3)";
const UPDATE_SQL: &str = "UPDATE products \
     SET price = CASE WHEN price > 400 THEN round(price / 2, 2) ELSE round(price * 1.01, 2) END \
     WHERE id = $1";

/// The kinds of statement the workload runs, with their share of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SELECT name, price FROM products WHERE id = $1`, extended protocol, prepared once.
    PointPrepared,
    /// The same point select with the key inlined, simple protocol.
    PointSimple,
    /// A short range of products by id.
    Range,
    /// A customer's latest orders, `orders JOIN customers`.
    Join,
    /// `INSERT INTO orders …`.
    InsertOrder,
    /// `UPDATE products SET price = …`.
    UpdatePrice,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::PointPrepared,
        Kind::PointSimple,
        Kind::Range,
        Kind::Join,
        Kind::InsertOrder,
        Kind::UpdatePrice,
    ];

    /// Relative weight in the mix (sums to 100).
    fn weight(self) -> u64 {
        match self {
            Kind::PointPrepared => 50,
            Kind::PointSimple => 20,
            Kind::Range => 8,
            Kind::Join => 12,
            Kind::InsertOrder => 6,
            Kind::UpdatePrice => 4,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::PointPrepared => "point select (prepared)",
            Kind::PointSimple => "point select (simple)",
            Kind::Range => "range select",
            Kind::Join => "orders JOIN customers",
            Kind::InsertOrder => "insert order",
            Kind::UpdatePrice => "update price",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::PointPrepared => 0,
            Kind::PointSimple => 1,
            Kind::Range => 2,
            Kind::Join => 3,
            Kind::InsertOrder => 4,
            Kind::UpdatePrice => 5,
        }
    }

    /// The kind for a number in `0..100`.
    fn pick(roll: u64) -> Kind {
        let mut acc = 0;
        for kind in Kind::ALL {
            acc += kind.weight();
            if roll < acc {
                return kind;
            }
        }
        Kind::PointPrepared
    }
}

/// Which statements a workload phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// The reads of the mix only (point, range and join selects).
    ReadsOnly,
    /// Every kind, writes included.
    WithWrites,
}

impl Mix {
    /// The range of rolls for [`Kind::pick`]: reads come first in `Kind::ALL`.
    fn rolls(self) -> u64 {
        match self {
            Mix::ReadsOnly => Kind::ALL
                .iter()
                .filter(|k| !matches!(k, Kind::InsertOrder | Kind::UpdatePrice))
                .map(|k| k.weight())
                .sum(),
            Mix::WithWrites => 100,
        }
    }
}

/// What one client (or all of them, merged) recorded.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Successful statement durations, one list per kind in `Kind::ALL` order.
    pub durations: [Vec<Duration>; 6],
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Recorded {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }

    fn merge(&mut self, other: Recorded) {
        for (mine, theirs) in self.durations.iter_mut().zip(other.durations) {
            mine.extend(theirs);
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Count and latency percentiles of one statement kind.
#[derive(Debug, Clone, PartialEq)]
pub struct KindSummary {
    pub kind: Kind,
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

/// What the workload did, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub elapsed: Duration,
    pub clients: usize,
    pub total: usize,
    pub kinds: Vec<KindSummary>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Summary {
    pub fn queries_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.total as f64 / secs
        } else {
            0.0
        }
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of `sorted`; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Turn what was recorded into counts and percentiles.
pub fn summarize(mut recorded: Recorded, elapsed: Duration, clients: usize) -> Summary {
    let mut kinds = Vec::new();
    for kind in Kind::ALL {
        let durations = &mut recorded.durations[kind.index()];
        durations.sort_unstable();
        kinds.push(KindSummary {
            kind,
            count: durations.len(),
            p50: percentile(durations, 50.0),
            p95: percentile(durations, 95.0),
            p99: percentile(durations, 99.0),
        });
    }
    Summary {
        elapsed,
        clients,
        total: kinds.iter().map(|k| k.count).sum(),
        kinds,
        errors: recorded.errors,
        first_error: recorded.first_error,
    }
}

/// `1.23 ms`, `456 µs`, `2.5 s`.
pub(crate) struct Latency(pub Duration);

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_secs_f64() * 1e6;
        let text = if micros < 1000.0 {
            format!("{micros:.0} µs")
        } else if micros < 1e6 {
            format!("{:.2} ms", micros / 1e3)
        } else {
            format!("{:.2} s", micros / 1e6)
        };
        f.pad(&text)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Workload: {} queries in {:.1} s from {} client{} ({:.0} queries/s), {} error{}",
            self.total,
            self.elapsed.as_secs_f64(),
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.queries_per_second(),
            self.errors,
            if self.errors == 1 { "" } else { "s" },
        )?;
        writeln!(
            f,
            "  {:<24} {:>8} {:>10} {:>10} {:>10}",
            "statement", "count", "p50", "p95", "p99"
        )?;
        for k in &self.kinds {
            writeln!(
                f,
                "  {:<24} {:>8} {:>10} {:>10} {:>10}",
                k.kind.label(),
                k.count,
                Latency(k.p50).to_string(),
                Latency(k.p95).to_string(),
                Latency(k.p99).to_string(),
            )?;
        }
        if let Some(first) = &self.first_error {
            writeln!(f, "  first error: {first}")?;
        }
        Ok(())
    }
}

/// Run the workload: `clients` connections made with `config` to a database
/// holding [`SAMPLE_SCHEMA`](super::SAMPLE_SCHEMA), each running statements
/// back to back until `duration` has passed. Failures are counted in the
/// summary, not returned.
pub async fn run(
    config: tokio_postgres::Config,
    clients: usize,
    duration: Duration,
    mix: Mix,
) -> Summary {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(client_loop(config.clone(), deadline, Rng::seeded(), mix));
    }
    let mut recorded = Recorded::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(client) => recorded.merge(client),
            Err(e) => recorded.error(format!("workload client task failed: {e}")),
        }
    }
    summarize(recorded, started.elapsed(), clients)
}

struct Prepared {
    point: Statement,
    range: Statement,
    join: Statement,
    insert: Statement,
    update: Statement,
}

async fn prepare(client: &Client) -> Result<Prepared, tokio_postgres::Error> {
    Ok(Prepared {
        point: client.prepare(POINT_SQL).await?,
        range: client.prepare(RANGE_SQL).await?,
        join: client.prepare(JOIN_SQL).await?,
        insert: client.prepare(INSERT_SQL).await?,
        update: client.prepare(UPDATE_SQL).await?,
    })
}

async fn client_loop(
    config: tokio_postgres::Config,
    deadline: Instant,
    mut rng: Rng,
    mix: Mix,
) -> Recorded {
    let mut recorded = Recorded::default();
    let connected = tokio::time::timeout(STATEMENT_TIMEOUT, config.connect(NoTls)).await;
    let (client, connection) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            recorded.error(format!("connect: {}", describe_pg_error(&e)));
            return recorded;
        }
        Err(_) => {
            recorded.error(format!(
                "connect: no answer within {} s",
                STATEMENT_TIMEOUT.as_secs()
            ));
            return recorded;
        }
    };
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "workload connection ended");
        }
    });

    let statements = match tokio::time::timeout(STATEMENT_TIMEOUT, prepare(&client)).await {
        Ok(Ok(statements)) => statements,
        Ok(Err(e)) => {
            recorded.error(format!("prepare: {}", describe_pg_error(&e)));
            return recorded;
        }
        Err(_) => {
            recorded.error(format!(
                "prepare: no answer within {} s",
                STATEMENT_TIMEOUT.as_secs()
            ));
            return recorded;
        }
    };

    while Instant::now() < deadline && !client.is_closed() {
        let kind = Kind::pick(rng.below(mix.rolls()));
        let start = Instant::now();
        let outcome = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            execute(&client, &statements, kind, &mut rng),
        )
        .await;
        match outcome {
            Ok(Ok(())) => recorded.durations[kind.index()].push(start.elapsed()),
            Ok(Err(e)) => recorded.error(format!("{}: {}", kind.label(), describe_pg_error(&e))),
            Err(_) => recorded.error(format!(
                "{}: no answer within {} s",
                kind.label(),
                STATEMENT_TIMEOUT.as_secs()
            )),
        }
    }
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
    recorded
}

async fn execute(
    client: &Client,
    statements: &Prepared,
    kind: Kind,
    rng: &mut Rng,
) -> Result<(), tokio_postgres::Error> {
    match kind {
        Kind::PointPrepared => {
            let id = rng.skewed_key(PRODUCTS);
            client.query_opt(&statements.point, &[&id]).await?;
        }
        Kind::PointSimple => {
            let id = rng.skewed_key(PRODUCTS);
            client
                .simple_query(&format!("SELECT name, price FROM products WHERE id = {id}"))
                .await?;
        }
        Kind::Range => {
            let low = rng.uniform_key(PRODUCTS - 20);
            let high = low + 20;
            client.query(&statements.range, &[&low, &high]).await?;
        }
        Kind::Join => {
            let customer = rng.skewed_key(CUSTOMERS);
            client.query(&statements.join, &[&customer]).await?;
        }
        Kind::InsertOrder => {
            let customer = rng.uniform_key(CUSTOMERS);
            let product = rng.skewed_key(PRODUCTS);
            let quantity = 1 + rng.below(5) as i32;
            client
                .execute(&statements.insert, &[&customer, &product, &quantity])
                .await?;
        }
        Kind::UpdatePrice => {
            let id = rng.skewed_key(PRODUCTS);
            client.execute(&statements.update, &[&id]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentile_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 50.0), ms(50));
        assert_eq!(percentile(&sorted, 95.0), ms(95));
        assert_eq!(percentile(&sorted, 99.0), ms(99));
        assert_eq!(percentile(&sorted, 100.0), ms(100));
        assert_eq!(percentile(&sorted, 0.0), ms(1));
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn summarize_counts_sorts_and_keeps_first_error() {
        let mut a = Recorded::default();
        a.durations[Kind::PointPrepared.index()] = vec![ms(3), ms(1), ms(2)];
        a.error("first".into());
        let mut b = Recorded::default();
        b.durations[Kind::Join.index()] = vec![ms(10)];
        b.error("second".into());
        a.merge(b);
        let summary = summarize(a, Duration::from_secs(2), 2);
        assert_eq!(summary.total, 4);
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.first_error.as_deref(), Some("first"));
        let point = &summary.kinds[Kind::PointPrepared.index()];
        assert_eq!((point.count, point.p50, point.p99), (3, ms(2), ms(3)));
        assert_eq!(summary.kinds[Kind::Join.index()].p95, ms(10));
        assert!((summary.queries_per_second() - 2.0).abs() < 1e-9);
        let text = summary.to_string();
        assert!(text.contains("4 queries in 2.0 s from 2 clients (2 queries/s), 2 errors"));
        assert!(text.contains("first error: first"));
    }

    #[test]
    fn mix_covers_every_kind_and_weights_sum_to_100() {
        assert_eq!(Kind::ALL.iter().map(|k| k.weight()).sum::<u64>(), 100);
        for (i, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        assert_eq!(Kind::pick(0), Kind::PointPrepared);
        assert_eq!(Kind::pick(99), Kind::UpdatePrice);
    }

    #[test]
    fn keys_stay_in_range_and_are_skewed() {
        let mut rng = Rng::new(42);
        let mut low = 0;
        for _ in 0..10_000 {
            let key = rng.skewed_key(PRODUCTS);
            assert!((1..=PRODUCTS).contains(&key));
            if key <= PRODUCTS / 8 {
                low += 1;
            }
            let uniform = rng.uniform_key(CUSTOMERS);
            assert!((1..=CUSTOMERS).contains(&uniform));
        }
        // u³ < 1/8 ⇔ u < 1/2: about half the draws land in the lowest eighth.
        assert!((4_000..6_000).contains(&low), "{low}");
    }

    #[test]
    fn latency_formatting() {
        assert_eq!(Latency(Duration::from_micros(250)).to_string(), "250 µs");
        assert_eq!(Latency(Duration::from_micros(1_500)).to_string(), "1.50 ms");
        assert_eq!(Latency(Duration::from_millis(2_500)).to_string(), "2.50 s");
    }

    #[test]
    fn schema_matches_key_ranges() {
        let schema = super::super::SAMPLE_SCHEMA;
        assert!(schema.contains(&format!("generate_series(1, {PRODUCTS})")));
        assert!(schema.contains(&format!("generate_series(1, {CUSTOMERS})")));
    }
}
