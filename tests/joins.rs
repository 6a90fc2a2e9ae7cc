//! Joins under the change stream: cached join results follow writes made
//! directly on the origin to any of their tables, whichever side of the join
//! a changed row is on, under concurrent writers, in the simple and the
//! extended protocol; readers never see half a transaction.
//!
//! Every check compares the proxy's answer with the origin's. While writers
//! run, a difference must vanish within the staleness bound: the reader first
//! retries briefly while the writers go on, then pauses them (they take a
//! shared lock around each write; the reader takes it exclusively) and waits
//! until the proxy gives the origin's now fixed answer. Once the writers stop
//! and the stream has caught up, every answer must be the origin's at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;
use tokio_postgres::{Client, Statement};

use crate::support::cache::{Cell, caught_up, setup};
use crate::support::{Proxy, connect_direct, simple_rows};

/// How long a stale answer may be served while the writers are paused.
const CONVERGE: Duration = Duration::from_secs(20);

/// How long a reader retries while the writers go on before pausing them.
const UNPAUSED: Duration = Duration::from_millis(100);

/// How long a statement may take to become a hit.
const WARM: Duration = Duration::from_secs(20);

/// Rows as text (NULL → `None`).
type Rows = Vec<Vec<Option<String>>>;

/// SplitMix64 with a fixed seed: every run makes the same choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let width = u64::try_from(hi - lo + 1).expect("empty range");
        lo + i32::try_from(self.below(width)).expect("range fits i32")
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let n = u64::try_from(items.len()).expect("length");
        items[usize::try_from(self.below(n)).expect("index")]
    }
}

/// One statement with at most one parameter, `$1`, an `int4`.
#[derive(Clone, Debug)]
struct Probe {
    sql: &'static str,
    arg: Option<i32>,
}

impl Probe {
    /// One probe per argument (`sql` has `$1`), or one without (`args` empty).
    fn each(sql: &'static str, args: &[i32]) -> Vec<Probe> {
        assert_eq!(sql.contains("$1"), !args.is_empty(), "{sql}");
        if args.is_empty() {
            return vec![Probe { sql, arg: None }];
        }
        args.iter().map(|&a| Probe { sql, arg: Some(a) }).collect()
    }

    fn one(sql: &'static str, arg: i32) -> Probe {
        Probe {
            sql,
            arg: Some(arg),
        }
    }

    /// The statement with the argument written as a literal.
    fn literal(&self) -> String {
        match self.arg {
            Some(a) => self.sql.replace("$1", &a.to_string()),
            None => self.sql.to_owned(),
        }
    }
}

/// How a probe is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Simple query, the argument as a literal; text results.
    Literal,
    /// Prepared once, executed with the argument bound in binary; binary
    /// results, decoded below.
    Prepared,
}

const FORMS: [Form; 2] = [Form::Literal, Form::Prepared];

fn describe(probe: &Probe, form: Form) -> String {
    match form {
        Form::Literal => format!("[literal] {}", probe.literal()),
        Form::Prepared => format!("[prepared, $1 = {:?}] {}", probe.arg, probe.sql),
    }
}

/// A session (through the proxy or straight to the origin) with every probe
/// statement prepared.
struct Reader {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Reader {
    async fn new(client: Client, probes: &[Probe]) -> Reader {
        let mut prepared = HashMap::new();
        for probe in probes {
            if !prepared.contains_key(probe.sql) {
                let statement = client
                    .prepare(probe.sql)
                    .await
                    .unwrap_or_else(|e| panic!("prepare {}: {e}", probe.sql));
                prepared.insert(probe.sql, statement);
            }
        }
        Reader { client, prepared }
    }

    async fn read(&self, probe: &Probe, form: Form) -> Rows {
        match form {
            Form::Literal => simple_rows(&self.client, &probe.literal()).await,
            Form::Prepared => {
                let statement = &self.prepared[probe.sql];
                let rows = match probe.arg {
                    Some(a) => self.client.query(statement, &[&a]).await,
                    None => self.client.query(statement, &[]).await,
                }
                .unwrap_or_else(|e| panic!("{}: {e}", describe(probe, form)));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                row.try_get::<_, Cell>(i)
                                    .unwrap_or_else(|e| {
                                        panic!("{} column {i}: {e}", describe(probe, form))
                                    })
                                    .0
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }
}

/// A reader through the proxy and one straight to the origin.
struct Pair {
    proxy: Reader,
    origin: Reader,
}

impl Pair {
    async fn new(proxy: &Proxy, app: &str, probes: &[Probe]) -> Pair {
        Pair {
            proxy: Reader::new(proxy.connect(app).await, probes).await,
            origin: Reader::new(connect_direct(&format!("{app}_origin")).await, probes).await,
        }
    }
}

/// Writers and readers of one test: the writers' stop flag, the lock that
/// pauses them, their count of writes, and what the readers saw.
#[derive(Default)]
struct Activity {
    stop: AtomicBool,
    /// Writers hold it shared around each write; a reader takes it
    /// exclusively to pause them.
    pause: RwLock<()>,
    writes: AtomicU64,
    /// Writes the origin refused (two writers on one row, a deadlock), and
    /// the first such error.
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    checks: AtomicU64,
    /// The proxy's first answer was not the origin's (a write in between,
    /// the stream's lag, or a stale entry).
    differed: AtomicU64,
    /// Of those, the ones still different after retrying with writers on
    /// (they had to converge with the writers paused).
    paused: AtomicU64,
    /// Longest time (µs) a difference took to vanish with writers on.
    slowest: AtomicU64,
    /// Longest time (µs) a difference took to vanish with writers paused.
    slowest_paused: AtomicU64,
}

impl Activity {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Print what happened; most writes must have committed.
    fn report(&self, test: &str) {
        let failed = self.failed.load(Ordering::Relaxed);
        let first_failure = self
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        eprintln!(
            "{test}: {} checks, {} first answers differed (slowest to converge: {} µs), {} of \
             them converged only with the writers paused (slowest: {} µs); {} writes, {failed} \
             refused (first: {first_failure:?})",
            self.checks.load(Ordering::Relaxed),
            self.differed.load(Ordering::Relaxed),
            self.slowest.load(Ordering::Relaxed),
            self.paused.load(Ordering::Relaxed),
            self.slowest_paused.load(Ordering::Relaxed),
            self.writes(),
        );
        assert!(
            failed * 4 < self.writes(),
            "{test}: {failed} of {} writes refused, first: {first_failure:?}",
            self.writes()
        );
    }
}

/// The proxy's answer to `probe` is the origin's, or becomes it within the
/// staleness bound (see the module's comment).
async fn check(pair: &Pair, probe: &Probe, form: Form, activity: &Activity) {
    activity.checks.fetch_add(1, Ordering::Relaxed);
    let got = pair.proxy.read(probe, form).await;
    let want = pair.origin.read(probe, form).await;
    if got == want {
        return;
    }
    activity.differed.fetch_add(1, Ordering::Relaxed);
    let first = got;
    let start = Instant::now();
    while start.elapsed() < UNPAUSED {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let got = pair.proxy.read(probe, form).await;
        if got == pair.origin.read(probe, form).await {
            let took = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            activity.slowest.fetch_max(took, Ordering::Relaxed);
            return;
        }
    }
    activity.paused.fetch_add(1, Ordering::Relaxed);
    let _quiet = activity.pause.write().await;
    let want = pair.origin.read(probe, form).await;
    let paused = Instant::now();
    loop {
        let got = pair.proxy.read(probe, form).await;
        if got == want {
            let took = u64::try_from(paused.elapsed().as_micros()).unwrap_or(u64::MAX);
            activity.slowest_paused.fetch_max(took, Ordering::Relaxed);
            return;
        }
        assert!(
            paused.elapsed() < CONVERGE,
            "{}: the proxy still answers {got:?} while the origin (writers paused for \
             {CONVERGE:?}) answers {want:?}; first proxy answer {first:?}",
            describe(probe, form)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Read `probe` through the proxy until it is answered from the cache.
async fn warm(proxy: &Proxy, reader: &Reader, probe: &Probe, form: Form) -> Rows {
    let deadline = Instant::now() + WARM;
    let mut tries = 0;
    loop {
        let before = proxy.metrics.cache_hits.get();
        let rows = reader.read(probe, form).await;
        if proxy.metrics.cache_hits.get() > before {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became a cache hit",
            describe(probe, form)
        );
        tries += 1;
        if tries > 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every probe, in both forms, becomes a hit with the origin's answer (no
/// writer runs): the shapes are cached at all.
async fn all_cached(proxy: &Proxy, pair: &Pair, probes: &[Probe]) {
    for probe in probes {
        for form in FORMS {
            let want = pair.origin.read(probe, form).await;
            let got = warm(proxy, &pair.proxy, probe, form).await;
            assert_eq!(got, want, "{}, cached", describe(probe, form));
        }
    }
}

/// Once the stream has caught up with the stopped writers, every probe's
/// answer through the proxy is the origin's, on a first read (a miss, or an
/// entry that survived), on a second, and once cached.
async fn all_equal_origin(proxy: &Proxy, pair: &Pair, probes: &[Probe]) {
    caught_up(proxy, &pair.origin.client).await;
    for probe in probes {
        for form in FORMS {
            let want = pair.origin.read(probe, form).await;
            let first = pair.proxy.read(probe, form).await;
            assert_eq!(first, want, "{}, after the writers", describe(probe, form));
            let second = pair.proxy.read(probe, form).await;
            assert_eq!(
                second,
                want,
                "{}, read again after the writers",
                describe(probe, form)
            );
            let cached = warm(proxy, &pair.proxy, probe, form).await;
            assert_eq!(
                cached,
                want,
                "{}, cached after the writers",
                describe(probe, form)
            );
        }
    }
}

/// Entries of `probes` are cached (both forms), then `sql` commits on the
/// origin: each probe's answer through the proxy becomes the origin's new
/// one (which differs from the old) within the staleness bound, and is
/// cached again.
async fn hazard(proxy: &Proxy, pair: &Pair, what: &str, sql: &str, probes: &[Probe]) {
    let mut before = Vec::new();
    for probe in probes {
        for form in FORMS {
            let want = pair.origin.read(probe, form).await;
            let got = warm(proxy, &pair.proxy, probe, form).await;
            assert_eq!(
                got,
                want,
                "{what}: {}, cached before",
                describe(probe, form)
            );
            before.push(want);
        }
    }
    let loads = proxy.metrics.cache_catalog_loads.get();
    pair.origin
        .client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {sql}: {e}"));
    let mut old = before.into_iter();
    for probe in probes {
        for form in FORMS {
            let old = old.next().expect("one answer per probe and form");
            let want = pair.origin.read(probe, form).await;
            assert_ne!(
                want,
                old,
                "{what}: {} does not change; the case tests nothing",
                describe(probe, form)
            );
            let deadline = Instant::now() + CONVERGE;
            loop {
                let got = pair.proxy.read(probe, form).await;
                if got == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} still answers {got:?} after {sql}; the origin answers \
                     {want:?}, before it was {old:?}",
                    describe(probe, form)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let cached = warm(proxy, &pair.proxy, probe, form).await;
            assert_eq!(
                cached,
                want,
                "{what}: {}, cached again",
                describe(probe, form)
            );
        }
    }
    if proxy.metrics.cache_catalog_loads.get() != loads {
        // DDL elsewhere on the shared origin dropped every entry meanwhile:
        // a stale entry could have gone that way too.
        eprintln!("{what}: the catalog was reloaded during the case; it proved less");
    }
}

/// Run one write on the origin, inside the writers' shared lock; a failed
/// write (two writers on one row, a deadlock) is rolled back and skipped.
async fn write(direct: &Client, activity: &Activity, sql: &str) {
    let _writing = activity.pause.read().await;
    if let Err(e) = direct.batch_execute(sql).await {
        let _ = direct.batch_execute("ROLLBACK").await;
        activity.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = activity
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| {
            let why = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned());
            format!("{sql}: {why}")
        });
    }
    activity.writes.fetch_add(1, Ordering::Relaxed);
}

/// Start `count` writers on direct connections; writer `w` runs `next(rng,
/// w, i)` for its `i`-th write until the activity stops, with a short pause
/// after each unless `pace` is off.
fn start_writers(
    app: &'static str,
    count: u64,
    seed: u64,
    pace: bool,
    activity: &Arc<Activity>,
    next: fn(&mut Rng, u64, u64) -> String,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|w| {
            let activity = Arc::clone(activity);
            tokio::spawn(async move {
                let direct = connect_direct(&format!("jn_{app}_writer_{w}")).await;
                let mut rng = Rng::new(seed + w);
                let mut i = 0;
                while !activity.stopped() {
                    let sql = next(&mut rng, w, i);
                    write(&direct, &activity, &sql).await;
                    i += 1;
                    if pace {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect()
}

/// Stop the writers and wait for them.
async fn stop_writers(activity: &Activity, writers: Vec<tokio::task::JoinHandle<()>>) {
    activity.stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
}

/// Readers check every probe in both forms, round after round, while the
/// writers run (each twice in a row: the second read can be a hit); they
/// stop once the writers made `min_writes` writes and each reader made
/// `min_rounds` rounds.
async fn read_while_writing(
    proxy: &Proxy,
    app: &str,
    probes: &[Probe],
    readers: usize,
    activity: &Arc<Activity>,
    min_writes: u64,
    min_rounds: usize,
) {
    let mut tasks = Vec::new();
    for r in 0..readers {
        let pair = Pair::new(proxy, &format!("jn_{app}_reader_{r}"), probes).await;
        let probes = probes.to_vec();
        let activity = Arc::clone(activity);
        tasks.push(tokio::spawn(async move {
            let mut rounds = 0;
            while rounds < min_rounds || activity.writes() < min_writes {
                // Each reader walks the probes from its own starting point.
                let start = (r * probes.len() / readers.max(1) + rounds) % probes.len();
                for k in 0..probes.len() {
                    let probe = &probes[(start + k) % probes.len()];
                    for form in FORMS {
                        check(&pair, probe, form, &activity).await;
                        check(&pair, probe, form, &activity).await;
                    }
                }
                rounds += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("reader");
    }
}

/// Two writers (`write` makes each statement) and two readers checking
/// `probes` run together; then, the writers stopped, every probe's answer
/// is the origin's. The cache must have served reads since the writers
/// started.
async fn concurrently(
    proxy: &Proxy,
    pair: &Pair,
    name: &'static str,
    probes: &[Probe],
    seed: u64,
    write: fn(&mut Rng, u64, u64) -> String,
) {
    let started = Instant::now();
    let hits_before = proxy.metrics.cache_hits.get();
    let joined = || {
        proxy
            .metrics
            .cache_joins
            .get_or_create(&pgcache::admin::LookupLabels { result: "joined" })
            .get()
    };
    let joined_before = joined();
    let activity = Arc::new(Activity::default());
    let writers = start_writers(name, 2, seed, true, &activity, write);
    read_while_writing(proxy, name, probes, 2, &activity, 300, 2).await;
    stop_writers(&activity, writers).await;
    activity.report(name);
    let hits = proxy.metrics.cache_hits.get() - hits_before;
    let concurrent = started.elapsed();
    all_equal_origin(proxy, pair, probes).await;
    assert!(
        proxy.metrics.cache_hits.get() > hits_before,
        "{name}: no read came from the cache"
    );
    // Entries dropped by the writers were captured again and kept in place
    // from their rows (ADR 018).
    assert!(
        joined() > joined_before,
        "{name}: no join was kept in place"
    );
    eprintln!(
        "{name}: {hits} hits while the writers ran ({concurrent:?}), final checks in {:?}",
        started.elapsed() - concurrent
    );
}

// ---------------------------------------------------------------------------
// A shop: customers, products, orders, order items. The items table has
// `REPLICA IDENTITY FULL` (the stream sends whole old rows), the others the
// default (old rows carry the key only).

const SHOP_SCHEMA: &str = "\
    DROP TABLE IF EXISTS jn_customers, jn_products, jn_orders, jn_order_items CASCADE; \
    CREATE TABLE jn_customers (id int PRIMARY KEY, name text, country text); \
    CREATE TABLE jn_products (id int PRIMARY KEY, name text, price numeric); \
    CREATE TABLE jn_orders (id int PRIMARY KEY, customer_id int NOT NULL, status text); \
    CREATE TABLE jn_order_items (id int PRIMARY KEY, order_id int NOT NULL, \
        product_id int NOT NULL, qty int); \
    ALTER TABLE jn_order_items REPLICA IDENTITY FULL; \
    INSERT INTO jn_customers SELECT g, 'customer ' || g, \
        (ARRAY['FR', 'DE', 'US', 'JP', 'BR'])[g % 5 + 1] FROM generate_series(1, 50) g; \
    INSERT INTO jn_products SELECT g, 'product ' || g, round(g * 1.37, 2) \
        FROM generate_series(1, 40) g; \
    INSERT INTO jn_orders SELECT g, g % 50 + 1, 'new' FROM generate_series(1, 200) g; \
    INSERT INTO jn_order_items SELECT g, g % 200 + 1, g % 40 + 1, g % 7 + 1 \
        FROM generate_series(1, 600) g";

/// An order and its customer.
const ORDER_CUSTOMER: &str = "SELECT o.id, o.status, c.id, c.name, c.country \
     FROM jn_orders o JOIN jn_customers c ON c.id = o.customer_id WHERE o.id = $1";
/// One to many: an order's items.
const ORDER_ITEMS: &str = "SELECT o.id, i.id, i.product_id, i.qty \
     FROM jn_orders o JOIN jn_order_items i ON i.order_id = o.id \
     WHERE o.id = $1 ORDER BY i.id";
/// Many to one, by the key of the many side.
const ITEM_ORDER: &str = "SELECT i.id, i.qty, o.id, o.status \
     FROM jn_order_items i JOIN jn_orders o ON o.id = i.order_id WHERE i.id = $1";
/// Three tables.
const ORDER_PRODUCTS: &str = "SELECT o.id, i.id, p.name, p.price, i.qty \
     FROM jn_orders o JOIN jn_order_items i ON i.order_id = o.id \
     JOIN jn_products p ON p.id = i.product_id \
     WHERE o.id = $1 ORDER BY i.id";
/// Four tables.
const CUSTOMER_PURCHASES: &str = "SELECT c.name, o.id, o.status, i.id, i.qty, p.name, p.price \
     FROM jn_customers c JOIN jn_orders o ON o.customer_id = c.id \
     JOIN jn_order_items i ON i.order_id = o.id \
     JOIN jn_products p ON p.id = i.product_id \
     WHERE c.id = $1 ORDER BY o.id, i.id";
/// A comma join with the equalities in WHERE.
const COMMA_JOIN: &str = "SELECT o.id, c.name, i.id, i.qty \
     FROM jn_orders o, jn_customers c, jn_order_items i \
     WHERE c.id = o.customer_id AND i.order_id = o.id AND o.id = $1 ORDER BY i.id";
/// A filter on a column of the other side that is not a key, LIMIT.
const FRENCH_ORDERS: &str = "SELECT o.id, o.status, c.name \
     FROM jn_orders o JOIN jn_customers c ON c.id = o.customer_id \
     WHERE c.country = 'FR' AND o.id >= $1 ORDER BY o.id LIMIT 5";
/// DISTINCT over three tables.
const PRODUCT_COUNTRIES: &str = "SELECT DISTINCT c.country \
     FROM jn_customers c JOIN jn_orders o ON o.customer_id = c.id \
     JOIN jn_order_items i ON i.order_id = o.id \
     WHERE i.product_id = $1 ORDER BY c.country";
/// An aggregate, grouped by order.
const CUSTOMER_TOTALS: &str = "SELECT o.id, sum(i.qty * p.price), count(*) \
     FROM jn_orders o JOIN jn_order_items i ON i.order_id = o.id \
     JOIN jn_products p ON p.id = i.product_id \
     WHERE o.customer_id = $1 GROUP BY o.id ORDER BY o.id";
/// A join by the value of a column that is not a key.
const CUSTOMER_ITEMS: &str = "SELECT o.id, i.id, i.qty \
     FROM jn_orders o JOIN jn_order_items i ON i.order_id = o.id \
     WHERE o.customer_id = $1 ORDER BY o.id, i.id";
/// A self-join: the other orders of an order's customer.
const SAME_CUSTOMER: &str = "SELECT a.id, b.id, b.status \
     FROM jn_orders a JOIN jn_orders b ON b.customer_id = a.customer_id \
     WHERE a.id = $1 ORDER BY b.id";

fn shop_probes() -> Vec<Probe> {
    let statements: [(&'static str, &[i32]); 11] = [
        (ORDER_CUSTOMER, &[7, 8, 42]),
        (ORDER_ITEMS, &[7, 9, 100]),
        (ITEM_ORDER, &[6, 206]),
        (ORDER_PRODUCTS, &[7, 42]),
        (CUSTOMER_PURCHASES, &[3, 4]),
        (COMMA_JOIN, &[8, 100]),
        (FRENCH_ORDERS, &[1, 60]),
        (PRODUCT_COUNTRIES, &[5, 7]),
        (CUSTOMER_TOTALS, &[3, 5]),
        (CUSTOMER_ITEMS, &[3]),
        (SAME_CUSTOMER, &[7, 8]),
    ];
    statements
        .iter()
        .flat_map(|(sql, args)| Probe::each(sql, args))
        .collect()
}

/// Deterministic cases, on the seeded rows: order n belongs to customer
/// n % 50 + 1; customer c's country is [FR, DE, US, JP, BR][c % 5]; item n
/// is of order n % 200 + 1 and product n % 40 + 1.
async fn shop_hazards(proxy: &Proxy, pair: &Pair) {
    let one = Probe::one;
    hazard(
        proxy,
        pair,
        "customer 8 of order 7 is renamed",
        "UPDATE jn_customers SET name = 'renamed' WHERE id = 8",
        &[one(ORDER_CUSTOMER, 7)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "item 206 moves from order 7 to order 9",
        "UPDATE jn_order_items SET order_id = 9 WHERE id = 206",
        &[
            one(ORDER_ITEMS, 7),
            one(ORDER_ITEMS, 9),
            one(ORDER_PRODUCTS, 7),
            one(ITEM_ORDER, 206),
        ],
    )
    .await;
    hazard(
        proxy,
        pair,
        "order 8 moves from customer 9 to customer 3",
        "UPDATE jn_orders SET customer_id = 3 WHERE id = 8",
        &[
            one(ORDER_CUSTOMER, 8),
            one(COMMA_JOIN, 8),
            one(CUSTOMER_PURCHASES, 3),
            one(CUSTOMER_TOTALS, 3),
            one(CUSTOMER_ITEMS, 3),
            one(SAME_CUSTOMER, 8),
        ],
    )
    .await;
    hazard(
        proxy,
        pair,
        "the price of product 7 (items 6 and 406 of order 7) changes",
        "UPDATE jn_products SET price = price + 1 WHERE id = 7",
        &[one(ORDER_PRODUCTS, 7)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "order 42's key changes to 1042",
        "UPDATE jn_orders SET id = 1042 WHERE id = 42",
        &[one(ORDER_CUSTOMER, 42), one(ORDER_PRODUCTS, 42)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "order 1042's key changes back to 42",
        "UPDATE jn_orders SET id = 42 WHERE id = 1042",
        &[one(ORDER_CUSTOMER, 42), one(ORDER_PRODUCTS, 42)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "item 99 of order 100 is deleted",
        "DELETE FROM jn_order_items WHERE id = 99",
        &[one(ORDER_ITEMS, 100), one(COMMA_JOIN, 100)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "customer 10 (of order 9, among the first French orders) moves to DE",
        "UPDATE jn_customers SET country = 'DE' WHERE id = 10",
        &[one(FRENCH_ORDERS, 1)],
    )
    .await;
    hazard(
        proxy,
        pair,
        "order 7 (customer 8, JP) gets an item of product 5 (so far bought in DE only)",
        "INSERT INTO jn_order_items VALUES (5000, 7, 5, 1)",
        &[one(PRODUCT_COUNTRIES, 5), one(ORDER_ITEMS, 7)],
    )
    .await;
}

/// Orders, customers and products the probes read (or that join with them).
const HOT_ORDERS: [i32; 10] = [7, 8, 9, 42, 100, 2, 52, 3, 53, 102];
const HOT_CUSTOMERS: [i32; 8] = [3, 4, 5, 8, 9, 43, 1, 10];
const HOT_PRODUCTS: [i32; 6] = [5, 7, 8, 10, 3, 4];
const COUNTRIES: [&str; 5] = ["FR", "DE", "US", "JP", "BR"];

fn shop_order(rng: &mut Rng) -> i32 {
    if rng.below(2) == 0 {
        rng.pick(&HOT_ORDERS)
    } else {
        rng.range(1, 200)
    }
}

fn shop_customer(rng: &mut Rng) -> i32 {
    if rng.below(2) == 0 {
        rng.pick(&HOT_CUSTOMERS)
    } else {
        rng.range(1, 50)
    }
}

fn shop_product(rng: &mut Rng) -> i32 {
    if rng.below(2) == 0 {
        rng.pick(&HOT_PRODUCTS)
    } else {
        rng.range(1, 40)
    }
}

/// One write of a shop writer (`i`-th of writer `w`).
fn shop_write(rng: &mut Rng, w: u64, i: u64) -> String {
    // Item ids of new rows: each writer its own range.
    let new_item = 1_000_000 * (w + 1) + i;
    // Most writes change orders or add items only: what the statements read
    // of those is narrowed to rows, so other rows' entries stay.
    if rng.below(4) != 0 {
        let o = shop_order(rng);
        return match rng.below(4) {
            0 => format!("UPDATE jn_orders SET status = 'status {w}.{i}' WHERE id = {o}"),
            1 => format!(
                "UPDATE jn_orders SET customer_id = {} WHERE id = {o}",
                shop_customer(rng)
            ),
            2 => format!(
                "UPDATE jn_orders SET id = CASE WHEN id > 100000 THEN id - 100000 \
                 ELSE id + 100000 END WHERE id IN ({o}, {o} + 100000)"
            ),
            _ => format!(
                "INSERT INTO jn_order_items VALUES ({new_item}, {o}, {}, {})",
                shop_product(rng),
                rng.range(1, 9)
            ),
        };
    }
    match rng.below(12) {
        0 => format!(
            "UPDATE jn_customers SET name = 'customer {w}.{i}', country = '{}' WHERE id = {}",
            rng.pick(&COUNTRIES),
            shop_customer(rng)
        ),
        1 => format!(
            "UPDATE jn_products SET price = price + {} WHERE id = {}",
            rng.pick(&["0.25", "-0.25", "1.10"]),
            shop_product(rng)
        ),
        2 => format!(
            "INSERT INTO jn_order_items VALUES ({new_item}, {}, {}, {})",
            shop_order(rng),
            shop_product(rng),
            rng.range(1, 9)
        ),
        3 => format!(
            "DELETE FROM jn_order_items WHERE id = \
             (SELECT min(id) FROM jn_order_items WHERE order_id = {})",
            shop_order(rng)
        ),
        4 => format!(
            "UPDATE jn_order_items SET order_id = {} WHERE id = \
             (SELECT max(id) FROM jn_order_items WHERE order_id = {})",
            shop_order(rng),
            shop_order(rng)
        ),
        5 => format!(
            "UPDATE jn_orders SET customer_id = {} WHERE id = {}",
            shop_customer(rng),
            shop_order(rng)
        ),
        6 => {
            // A key moves away, or back.
            let o = shop_order(rng);
            format!(
                "UPDATE jn_orders SET id = CASE WHEN id > 100000 THEN id - 100000 \
                 ELSE id + 100000 END WHERE id IN ({o}, {o} + 100000)"
            )
        }
        7 => {
            let c = shop_customer(rng);
            format!(
                "UPDATE jn_customers SET id = CASE WHEN id > 100000 THEN id - 100000 \
                 ELSE id + 100000 END WHERE id IN ({c}, {c} + 100000)"
            )
        }
        8 => {
            let p = shop_product(rng);
            format!(
                "UPDATE jn_products SET id = CASE WHEN id > 100000 THEN id - 100000 \
                 ELSE id + 100000 END WHERE id IN ({p}, {p} + 100000)"
            )
        }
        9 => format!(
            "UPDATE jn_order_items SET id = id + 100000 WHERE id = \
             (SELECT min(id) FROM jn_order_items WHERE order_id = {})",
            shop_order(rng)
        ),
        10 => {
            let o = shop_order(rng);
            format!(
                "BEGIN; \
                 UPDATE jn_orders SET status = 'status {w}.{i}' WHERE id = {o}; \
                 UPDATE jn_customers SET name = 'buyer {w}.{i}' \
                     WHERE id = (SELECT customer_id FROM jn_orders WHERE id = {o}); \
                 INSERT INTO jn_order_items VALUES ({new_item}, {o}, {}, {}); \
                 UPDATE jn_products SET price = price + 0.5 WHERE id = {}; \
                 COMMIT",
                shop_product(rng),
                rng.range(1, 9),
                shop_product(rng)
            )
        }
        _ => {
            // An order changes hands and takes an item of another order.
            let o = shop_order(rng);
            format!(
                "BEGIN; \
                 UPDATE jn_orders SET customer_id = {}, status = 'moved {w}.{i}' WHERE id = {o}; \
                 UPDATE jn_order_items SET order_id = {o} WHERE id = \
                     (SELECT min(id) FROM jn_order_items WHERE order_id = {}); \
                 UPDATE jn_customers SET country = '{}' WHERE id = {}; \
                 COMMIT",
                shop_customer(rng),
                shop_order(rng),
                rng.pick(&COUNTRIES),
                shop_customer(rng)
            )
        }
    }
}

/// Join entries of a shop (2- to 4-table joins, comma joins, filters on the
/// other side, DISTINCT, aggregates, self-joins) follow deterministic writes
/// to each side of their joins, then concurrent writers on every table:
/// each difference from the origin converges, and once the writers stop
/// every answer is the origin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_joins_follow_concurrent_writers() {
    let started = Instant::now();
    setup(SHOP_SCHEMA).await;
    let proxy = Proxy::start_streaming(|_| {}).await;
    eprintln!("shop: proxy ready at {:?}", started.elapsed());
    let probes = shop_probes();
    let pair = Pair::new(&proxy, "jn_shop", &probes).await;
    all_cached(&proxy, &pair, &probes).await;
    shop_hazards(&proxy, &pair).await;
    let deterministic = started.elapsed();

    concurrently(&proxy, &pair, "shop", &probes, 0x5409_0000, shop_write).await;
    eprintln!(
        "shop: deterministic cases done at {deterministic:?}, all done at {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// News: authors, articles, votes.

const NEWS_SCHEMA: &str = "\
    DROP TABLE IF EXISTS jn_authors, jn_articles, jn_votes CASCADE; \
    CREATE TABLE jn_authors (id int PRIMARY KEY, name text); \
    CREATE TABLE jn_articles (id int PRIMARY KEY, author_id int, title text); \
    CREATE TABLE jn_votes (id bigint PRIMARY KEY, article_id int NOT NULL, user_id int, \
        value int); \
    INSERT INTO jn_authors SELECT g, 'author ' || g FROM generate_series(1, 10) g; \
    INSERT INTO jn_articles SELECT g, g % 10 + 1, 'article ' || g FROM generate_series(1, 60) g; \
    INSERT INTO jn_articles VALUES (61, 11, 'article 61, author to come'); \
    INSERT INTO jn_votes SELECT g, g % 60 + 1, g % 13, g % 5 - 2 FROM generate_series(1, 600) g; \
    INSERT INTO jn_votes VALUES (601, 61, 1, 1), (602, 61, 2, -1), (603, 61, 3, 1)";

const ARTICLE_AUTHOR: &str = "SELECT a.id, a.title, u.name \
     FROM jn_articles a JOIN jn_authors u ON u.id = a.author_id WHERE a.id = $1";
const ARTICLE_VOTES: &str = "SELECT a.id, v.id, v.value \
     FROM jn_articles a JOIN jn_votes v ON v.article_id = a.id WHERE a.id = $1 ORDER BY v.id";
const AUTHOR_VOTES: &str = "SELECT count(*) \
     FROM jn_articles a JOIN jn_votes v ON v.article_id = a.id WHERE a.author_id = $1";

/// Articles the probes read: seeded ones and some that writers create and
/// delete (100 to 104).
const NEWS_ARTICLES: [i32; 10] = [1, 2, 3, 11, 12, 61, 100, 101, 102, 103];
const NEWS_AUTHORS: [i32; 5] = [1, 2, 3, 5, 11];

fn news_probes() -> Vec<Probe> {
    let mut probes = Probe::each(ARTICLE_AUTHOR, &NEWS_ARTICLES);
    probes.extend(Probe::each(ARTICLE_VOTES, &NEWS_ARTICLES));
    probes.extend(Probe::each(AUTHOR_VOTES, &NEWS_AUTHORS));
    probes
}

/// One write of a news writer (`i`-th of writer `w`).
fn news_write(rng: &mut Rng, w: u64, i: u64) -> String {
    let new_vote = 10_000_000 * (w + 1) + 10 * i;
    let article = |rng: &mut Rng| {
        if rng.below(3) == 0 {
            rng.range(1, 61)
        } else {
            rng.pick(&NEWS_ARTICLES)
        }
    };
    let author = |rng: &mut Rng| rng.range(1, 12);
    // Most writes add votes or change articles only: what the statements
    // read of those is narrowed to rows, so other rows' entries stay.
    if rng.below(4) != 0 {
        let a = article(rng);
        return match rng.below(4) {
            0 | 1 => format!(
                "INSERT INTO jn_votes VALUES ({new_vote}, {a}, {}, {})",
                rng.range(1, 50),
                rng.range(-1, 1)
            ),
            2 => format!("UPDATE jn_articles SET title = 'title {w}.{i}' WHERE id = {a}"),
            _ => format!(
                "UPDATE jn_articles SET author_id = {} WHERE id = {a}",
                author(rng)
            ),
        };
    }
    match rng.below(10) {
        0 | 1 => format!(
            "INSERT INTO jn_votes VALUES ({new_vote}, {}, {}, {})",
            article(rng),
            rng.range(1, 50),
            rng.range(-1, 1)
        ),
        2 => format!(
            "DELETE FROM jn_votes WHERE id = \
             (SELECT min(id) FROM jn_votes WHERE article_id = {})",
            article(rng)
        ),
        3 => format!(
            "UPDATE jn_votes SET article_id = {} WHERE id = \
             (SELECT max(id) FROM jn_votes WHERE article_id = {})",
            article(rng),
            article(rng)
        ),
        4 => format!(
            "UPDATE jn_authors SET name = 'author {w}.{i}' WHERE id = {}",
            author(rng)
        ),
        5 => format!(
            "UPDATE jn_articles SET author_id = {} WHERE id = {}",
            author(rng),
            article(rng)
        ),
        6 => {
            let a = rng.range(100, 104);
            format!(
                "BEGIN; \
                 INSERT INTO jn_articles VALUES ({a}, {}, 'fresh {w}.{i}') \
                     ON CONFLICT (id) DO NOTHING; \
                 INSERT INTO jn_votes VALUES ({new_vote}, {a}, 1, 1), ({}, {a}, 2, -1); \
                 COMMIT",
                author(rng),
                new_vote + 1
            )
        }
        7 => {
            let a = if rng.below(4) == 0 {
                rng.range(40, 60)
            } else {
                rng.range(100, 104)
            };
            format!(
                "BEGIN; DELETE FROM jn_votes WHERE article_id = {a}; \
                 DELETE FROM jn_articles WHERE id = {a}; COMMIT"
            )
        }
        8 => format!(
            "UPDATE jn_votes SET value = value + 1, id = id + 100000000 WHERE id = \
             (SELECT min(id) FROM jn_votes WHERE article_id = {})",
            article(rng)
        ),
        _ => {
            let a = rng.pick(&NEWS_ARTICLES);
            format!(
                "UPDATE jn_articles SET id = CASE WHEN id > 100000 THEN id - 100000 \
                 ELSE id + 100000 END WHERE id IN ({a}, {a} + 100000)"
            )
        }
    }
}

/// Article, vote and author-count joins follow deterministic hazards (an
/// article's missing author inserted, a vote moving between articles, a vote
/// deleted, an author renamed under two cached articles, an article changing
/// author, a vote inserted, an article's key moving away and back, a vote's
/// key changing), then concurrent writers on all three tables: each
/// difference from the origin converges, and once the writers stop every
/// answer is the origin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn news_joins_follow_concurrent_writers() {
    let started = Instant::now();
    setup(NEWS_SCHEMA).await;
    let proxy = Proxy::start_streaming(|_| {}).await;
    eprintln!("news: proxy ready at {:?}", started.elapsed());
    let probes = news_probes();
    let pair = Pair::new(&proxy, "jn_news", &probes).await;

    // Article n's author is n % 10 + 1.
    hazard(
        &proxy,
        &pair,
        "(a) the author of article 61 appears",
        "INSERT INTO jn_authors VALUES (11, 'late author')",
        &[Probe::one(ARTICLE_AUTHOR, 61)],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(b) vote 60 moves from article 1 to article 2",
        "UPDATE jn_votes SET article_id = 2 WHERE id = 60",
        &[
            Probe::one(ARTICLE_VOTES, 1),
            Probe::one(ARTICLE_VOTES, 2),
            Probe::one(AUTHOR_VOTES, 2),
            Probe::one(AUTHOR_VOTES, 3),
        ],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(c) vote 61 of article 2 is deleted",
        "DELETE FROM jn_votes WHERE id = 61",
        &[Probe::one(ARTICLE_VOTES, 2), Probe::one(AUTHOR_VOTES, 3)],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(d) author 2 of articles 1 and 11 is renamed",
        "UPDATE jn_authors SET name = 'renamed author' WHERE id = 2",
        &[
            Probe::one(ARTICLE_AUTHOR, 1),
            Probe::one(ARTICLE_AUTHOR, 11),
        ],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(e) article 3 moves from author 4 to author 5",
        "UPDATE jn_articles SET author_id = 5 WHERE id = 3",
        &[
            Probe::one(ARTICLE_AUTHOR, 3),
            Probe::one(AUTHOR_VOTES, 4),
            Probe::one(AUTHOR_VOTES, 5),
        ],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(f) a vote for article 12 (author 3) is inserted",
        "INSERT INTO jn_votes VALUES (700, 12, 7, 1)",
        &[Probe::one(ARTICLE_VOTES, 12), Probe::one(AUTHOR_VOTES, 3)],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(g) article 12's key changes to 112, its votes stay behind",
        "UPDATE jn_articles SET id = 112 WHERE id = 12",
        &[
            Probe::one(ARTICLE_AUTHOR, 12),
            Probe::one(ARTICLE_VOTES, 12),
            Probe::one(AUTHOR_VOTES, 3),
        ],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(h) article 112's key changes back to 12",
        "UPDATE jn_articles SET id = 12 WHERE id = 112",
        &[
            Probe::one(ARTICLE_AUTHOR, 12),
            Probe::one(ARTICLE_VOTES, 12),
            Probe::one(AUTHOR_VOTES, 3),
        ],
    )
    .await;
    hazard(
        &proxy,
        &pair,
        "(i) a vote's key changes",
        "UPDATE jn_votes SET id = 5000 WHERE id = 700",
        &[Probe::one(ARTICLE_VOTES, 12)],
    )
    .await;
    let deterministic = started.elapsed();

    all_cached(&proxy, &pair, &probes).await;
    concurrently(&proxy, &pair, "news", &probes, 0x4e37_0000, news_write).await;
    eprintln!(
        "news: deterministic cases done at {deterministic:?}, all done at {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Transfers between accounts whose balances are in a joined table.

const ACCOUNTS: i32 = 20;
/// Accounts 4k+1 to 4k+4 belong to owner k+1; money moves only between
/// accounts of one owner, so each owner's total is fixed too.
const OWNERS: i32 = 5;
const START_AMOUNT: i32 = 100;

const TOTAL: &str = "SELECT sum(b.amount) FROM jn_acct a JOIN jn_bal b ON b.acct_id = a.id";
const OWNER_TOTAL: &str = "SELECT sum(b.amount) \
     FROM jn_acct a JOIN jn_bal b ON b.acct_id = a.id WHERE a.owner = $1";
const ACCOUNT: &str = "SELECT a.id, a.owner, b.amount \
     FROM jn_acct a JOIN jn_bal b ON b.acct_id = a.id WHERE a.id = $1";

/// The fixed answer of a total: all accounts' (no argument) or one owner's.
fn invariant(probe: &Probe) -> Rows {
    let total = match probe.arg {
        Some(_) => START_AMOUNT * ACCOUNTS / OWNERS,
        None => START_AMOUNT * ACCOUNTS,
    };
    vec![vec![Some(total.to_string())]]
}

/// One transaction of a transfer writer: two UPDATEs of balances of one
/// owner's accounts; every tenth moves an account's key (away or back) on
/// both sides of the join at once.
fn transfer(rng: &mut Rng, _w: u64, i: u64) -> String {
    let owner = rng.range(0, OWNERS - 1);
    let from = owner * 4 + rng.range(1, 4);
    let to = owner * 4 + rng.range(1, 4);
    if i % 10 == 9 {
        return format!(
            "BEGIN; \
             UPDATE jn_acct SET id = CASE WHEN id > 1000 THEN id - 1000 ELSE id + 1000 END \
                 WHERE id IN ({from}, {from} + 1000); \
             UPDATE jn_bal SET acct_id = CASE WHEN acct_id > 1000 THEN acct_id - 1000 \
                 ELSE acct_id + 1000 END WHERE acct_id IN ({from}, {from} + 1000); \
             COMMIT"
        );
    }
    let amount = rng.range(1, 9);
    // The lower key first: two writers do not deadlock.
    let (lo, lo_delta, hi, hi_delta) = if from < to {
        (from, -amount, to, amount)
    } else {
        (to, amount, from, -amount)
    };
    format!(
        "BEGIN; \
         UPDATE jn_bal SET amount = amount + {lo_delta} WHERE acct_id IN ({lo}, {lo} + 1000); \
         UPDATE jn_bal SET amount = amount + {hi_delta} WHERE acct_id IN ({hi}, {hi} + 1000); \
         COMMIT"
    )
}

/// Read a total through the proxy: it must be the invariant.
async fn total(
    reader: &Reader,
    pair: &Pair,
    probe: &Probe,
    form: Form,
    activity: &Activity,
    reads: u64,
) {
    let got = reader.read(probe, form).await;
    if got != invariant(probe) {
        let origin = pair.origin.read(probe, form).await;
        panic!(
            "{} after {reads} reads and {} transfers: the proxy answers {got:?}, the \
             invariant is {:?}, the origin now answers {origin:?}",
            describe(probe, form),
            activity.writes(),
            invariant(probe)
        );
    }
}

/// Sums over a join read through the proxy never show part of a transfer
/// (two UPDATEs of the balance table in one transaction, or an account's key
/// changed on both sides of the join in one transaction): the total and each
/// owner's total are always the invariant, whether served from the cache or
/// not (both happen). Point joins per account converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_across_joined_tables_is_atomic() {
    let started = Instant::now();
    setup(&format!(
        "DROP TABLE IF EXISTS jn_acct, jn_bal CASCADE; \
         CREATE TABLE jn_acct (id int PRIMARY KEY, owner int); \
         CREATE TABLE jn_bal (acct_id int PRIMARY KEY, amount int); \
         INSERT INTO jn_acct SELECT g, (g - 1) / 4 + 1 FROM generate_series(1, {ACCOUNTS}) g; \
         INSERT INTO jn_bal SELECT g, {START_AMOUNT} FROM generate_series(1, {ACCOUNTS}) g"
    ))
    .await;
    let proxy = Proxy::start_streaming(|_| {}).await;
    let mut sums = Probe::each(TOTAL, &[]);
    sums.extend((1..=OWNERS).map(|o| Probe::one(OWNER_TOTAL, o)));
    let points = Probe::each(ACCOUNT, &[1, 2, 5, 11, 20]);
    let all: Vec<Probe> = sums.iter().chain(&points).cloned().collect();
    let pair = Pair::new(&proxy, "jn_acct", &all).await;
    all_cached(&proxy, &pair, &all).await;

    let activity = Arc::new(Activity::default());
    let writers = start_writers("acct", 2, 0xacc7_0000, true, &activity, transfer);

    // Totals, read alone (so the cache's hits are theirs), each a few times
    // in a row (so a read can find the entry the one before captured): the
    // invariant on every read, never converge-tolerant. Every tenth round
    // the writers pause until a total is served from the cache (transfers
    // commit too often for an entry to outlive its fence otherwise).
    let reader = Reader::new(proxy.connect("jn_acct_sums").await, &sums).await;
    let hits = || proxy.metrics.cache_hits.get();
    let mut sum_reads = 0u64;
    let mut busy_hits = 0;
    let mut quiet_hits = 0;
    let mut round = 0;
    while activity.writes() < 400 || sum_reads < 2000 {
        let before = hits();
        for (probe, form) in sums.iter().flat_map(|p| FORMS.map(|f| (p, f))) {
            for _ in 0..3 {
                total(&reader, &pair, probe, form, &activity, sum_reads).await;
                sum_reads += 1;
            }
        }
        busy_hits += hits() - before;
        round += 1;
        if round % 10 == 0 {
            let _quiet = activity.pause.write().await;
            let probe = &sums[round / 10 % sums.len()];
            let form = FORMS[round / 10 % 2];
            let deadline = Instant::now() + WARM;
            loop {
                let before = hits();
                total(&reader, &pair, probe, form, &activity, sum_reads).await;
                sum_reads += 1;
                if hits() > before {
                    quiet_hits += 1;
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never served from the cache with the writers paused",
                    describe(probe, form)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let sum_transfers = activity.writes();
    // Point joins, while the transfers go on: converge.
    read_while_writing(&proxy, "acct", &points, 2, &activity, 2 * sum_transfers, 10).await;
    stop_writers(&activity, writers).await;
    activity.report("transfers");

    all_equal_origin(&proxy, &pair, &all).await;
    for probe in &sums {
        for form in FORMS {
            assert_eq!(
                pair.proxy.read(probe, form).await,
                invariant(probe),
                "{}, after the writers",
                describe(probe, form)
            );
        }
    }
    assert!(quiet_hits > 0, "no total was read from the cache");
    eprintln!(
        "transfers: {sum_reads} total reads during {sum_transfers} transfers, {busy_hits} \
         from the cache with the writers on, {quiet_hits} in pauses; {:?} in all",
        started.elapsed()
    );
}
