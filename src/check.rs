//! `pgcache check`: does the origin meet the prerequisites for change data
//! capture (logical replication), and if not, what to run to fix it.
//!
//! [`run`] connects with the proxy's own credentials, gathers [`OriginFacts`]
//! with a couple of catalog queries, and [`evaluate`] — a pure function, so it
//! is unit-tested without a server — turns them into a [`CheckReport`].

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::config::Config;

/// Everything `pgcache check` found, one item per prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub items: Vec<CheckItem>,
}

/// One prerequisite: whether it holds, what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to run or change when `ok` is false (may span several lines).
    pub fix: Option<String>,
}

impl CheckReport {
    /// Every prerequisite holds.
    pub fn all_ok(&self) -> bool {
        self.items.iter().all(|item| item.ok)
    }
}

impl fmt::Display for CheckReport {
    /// One line per item (`ok` or `FAIL`, name, detail), the fix indented below.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let status = if item.ok { "ok" } else { "FAIL" };
            writeln!(f, "{status:<4}  {}: {}", item.name, item.detail)?;
            if let Some(fix) = &item.fix {
                let mut lines = fix.lines();
                if let Some(first) = lines.next() {
                    writeln!(f, "      fix: {first}")?;
                }
                for line in lines {
                    writeln!(f, "           {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Why `pgcache check` could not produce a report.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// The origin settings could not be turned into connection parameters
    /// (e.g. an unreadable passfile).
    Config { reason: String },
    /// Connecting to the origin failed.
    Connect {
        host: String,
        port: u16,
        user: String,
        database: String,
        reason: String,
    },
    /// A catalog query failed.
    Query { what: &'static str, reason: String },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Config { reason } => {
                write!(f, "invalid origin settings: {reason}")
            }
            CheckError::Connect {
                host,
                port,
                user,
                database,
                reason,
            } => {
                let place = if host.starts_with('/') {
                    format!("the Unix socket in {host} (port {port})")
                } else {
                    format!("{host}:{port}")
                };
                write!(
                    f,
                    "could not connect to the origin at {place} as user {user:?}, database \
                     {database:?}: {reason} (check [origin] in pgcache.toml and that the server \
                     accepts this user from this host)"
                )
            }
            CheckError::Query { what, reason } => {
                write!(f, "could not read {what} from the origin: {reason}")
            }
        }
    }
}

impl std::error::Error for CheckError {}

/// One row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub name: String,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// Database of a logical slot.
    pub database: Option<String>,
    /// A connection is using it right now.
    pub active: bool,
}

/// What the origin told us, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginFacts {
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i32,
    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    pub wal_level: String,
    pub max_replication_slots: i32,
    pub replication_slots: Vec<SlotInfo>,
    pub max_wal_senders: i32,
    /// Rows in `pg_stat_replication`.
    pub active_wal_senders: i32,
    /// `current_user`.
    pub user: String,
    /// `current_database()`.
    pub database: String,
    pub is_superuser: bool,
    pub has_replication: bool,
    /// `has_database_privilege(current_user, current_database(), 'CREATE')`.
    pub can_create_in_database: bool,
}

/// Connect to the origin with the proxy's own credentials and check the CDC
/// prerequisites.
pub async fn run(config: &Config) -> Result<CheckReport, CheckError> {
    let facts = gather(config).await?;
    Ok(evaluate(&facts))
}

/// Connect to the origin and read the [`OriginFacts`].
pub async fn gather(config: &Config) -> Result<OriginFacts, CheckError> {
    let origin = &config.origin;
    let pg_config = origin.pg_config().map_err(|e| CheckError::Config {
        reason: e.to_string(),
    })?;
    let connect_error = |reason: String| CheckError::Connect {
        host: origin.host.clone(),
        port: origin.port,
        user: origin.user.clone(),
        database: origin.database.clone(),
        reason,
    };
    let (client, connection) = connect_origin(&pg_config, origin.connect_timeout)
        .await
        .map_err(connect_error)?;
    let facts = read_facts(&client).await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
    facts
}

/// One of the proxy's own connections to the origin (catalog, check), with
/// its connection task. The whole attempt, authentication included, is
/// bounded (tokio-postgres applies `connect_timeout` per address only).
pub async fn connect_origin(
    pg_config: &tokio_postgres::Config,
    connect_timeout: Duration,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), String> {
    let limit = connect_timeout.max(Duration::from_secs(1)) * 2;
    let (client, connection) = tokio::time::timeout(limit, pg_config.connect(NoTls))
        .await
        .map_err(|_| format!("no answer within {} s", limit.as_secs()))?
        .map_err(|e| describe_pg_error(&e))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "origin connection of the proxy ended");
        }
    });
    Ok((client, connection))
}

const FACTS_SQL: &str = "\
SELECT current_setting('server_version_num')::int4,
       current_setting('server_version'),
       current_setting('wal_level'),
       current_setting('max_replication_slots')::int4,
       current_setting('max_wal_senders')::int4,
       (SELECT count(*) FROM pg_stat_replication)::int4,
       current_user::text,
       current_database()::text,
       coalesce(r.rolsuper, false),
       coalesce(r.rolreplication, false),
       has_database_privilege(current_user, current_database(), 'CREATE')
FROM (SELECT 1) AS one
LEFT JOIN pg_roles r ON r.rolname = current_user";

const SLOTS_SQL: &str = "\
SELECT slot_name::text, slot_type, database::text, active
FROM pg_replication_slots
ORDER BY slot_name";

async fn read_facts(client: &Client) -> Result<OriginFacts, CheckError> {
    let query_error = |what: &'static str| {
        move |e: tokio_postgres::Error| CheckError::Query {
            what,
            reason: describe_pg_error(&e),
        }
    };
    const SETTINGS: &str = "settings and role attributes";
    let row = client
        .query_one(FACTS_SQL, &[])
        .await
        .map_err(query_error(SETTINGS))?;
    let mut facts = OriginFacts {
        server_version_num: column(&row, 0, SETTINGS)?,
        server_version: column(&row, 1, SETTINGS)?,
        wal_level: column(&row, 2, SETTINGS)?,
        max_replication_slots: column(&row, 3, SETTINGS)?,
        replication_slots: Vec::new(),
        max_wal_senders: column(&row, 4, SETTINGS)?,
        active_wal_senders: column(&row, 5, SETTINGS)?,
        user: column(&row, 6, SETTINGS)?,
        database: column(&row, 7, SETTINGS)?,
        is_superuser: column(&row, 8, SETTINGS)?,
        has_replication: column(&row, 9, SETTINGS)?,
        can_create_in_database: column(&row, 10, SETTINGS)?,
    };
    const SLOTS: &str = "pg_replication_slots";
    let rows = client
        .query(SLOTS_SQL, &[])
        .await
        .map_err(query_error(SLOTS))?;
    for row in &rows {
        facts.replication_slots.push(SlotInfo {
            name: column(row, 0, SLOTS)?,
            slot_type: column(row, 1, SLOTS)?,
            database: column(row, 2, SLOTS)?,
            active: column(row, 3, SLOTS)?,
        });
    }
    Ok(facts)
}

fn column<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &'static str,
) -> Result<T, CheckError> {
    row.try_get(index).map_err(|e| CheckError::Query {
        what,
        reason: describe_pg_error(&e),
    })
}

/// Judge the facts: one [`CheckItem`] per prerequisite, with a fix for each
/// that fails.
pub fn evaluate(facts: &OriginFacts) -> CheckReport {
    CheckReport {
        items: vec![
            check_version(facts),
            check_wal_level(facts),
            check_slots(facts),
            check_wal_senders(facts),
            check_replication_role(facts),
            check_publication_privilege(facts),
        ],
    }
}

fn item(name: &str, ok: bool, detail: String, fix: Option<String>) -> CheckItem {
    CheckItem {
        name: name.to_string(),
        ok,
        detail,
        fix: if ok { None } else { fix },
    }
}

/// Informational, except below 10 where there is no logical replication at all.
fn check_version(facts: &OriginFacts) -> CheckItem {
    let version = format!("PostgreSQL {}", facts.server_version);
    let num = facts.server_version_num;
    if num < 100_000 {
        return item(
            "server version",
            false,
            format!("{version}: logical replication (publications, pgoutput) needs 10 or later"),
            Some("upgrade PostgreSQL (14 or later recommended)".to_string()),
        );
    }
    let detail = if num < 140_000 {
        format!(
            "{version} (works; 14 or later is recommended, it streams large in-progress \
             transactions instead of spilling them to disk)"
        )
    } else {
        version
    };
    item("server version", true, detail, None)
}

fn check_wal_level(facts: &OriginFacts) -> CheckItem {
    let ok = facts.wal_level == "logical";
    let detail = if ok {
        "wal_level is logical".to_string()
    } else {
        format!(
            "wal_level is {}; logical decoding needs logical",
            facts.wal_level
        )
    };
    item(
        "wal_level",
        ok,
        detail,
        Some(
            "as a superuser: ALTER SYSTEM SET wal_level = logical;\n\
             then restart PostgreSQL (wal_level only changes at server start)"
                .to_string(),
        ),
    )
}

fn check_slots(facts: &OriginFacts) -> CheckItem {
    let max = facts.max_replication_slots;
    let used = i32::try_from(facts.replication_slots.len()).unwrap_or(i32::MAX);
    let free = max.saturating_sub(used);
    let ok = free >= 1;
    let detail = format!(
        "{used} of max_replication_slots = {max} in use, {} free (pgcache needs 1)",
        free.max(0)
    );
    let mut fix = format!(
        "as a superuser: ALTER SYSTEM SET max_replication_slots = {};\n\
         then restart PostgreSQL",
        max.max(used).saturating_add(1)
    );
    let inactive: Vec<&SlotInfo> = facts
        .replication_slots
        .iter()
        .filter(|slot| !slot.active)
        .collect();
    if inactive.is_empty() {
        if used > 0 {
            fix.push_str(&format!(
                "\n(all {used} existing slots are in use, so none can be dropped)"
            ));
        }
    } else {
        fix.push_str(
            "\nor drop a slot nobody needs any more (its consumer loses its place); \
             these are not in use right now:",
        );
        for slot in inactive {
            let place = match &slot.database {
                Some(db) => format!("{} slot on database {db}", slot.slot_type),
                None => format!("{} slot", slot.slot_type),
            };
            fix.push_str(&format!(
                "\n  SELECT pg_drop_replication_slot({});  -- {place}",
                quote_literal(&slot.name)
            ));
        }
    }
    item("replication slots", ok, detail, Some(fix))
}

fn check_wal_senders(facts: &OriginFacts) -> CheckItem {
    let max = facts.max_wal_senders;
    let active = facts.active_wal_senders;
    let free = max.saturating_sub(active);
    let ok = free >= 1;
    let detail = format!(
        "{active} of max_wal_senders = {max} in use, {} free (pgcache needs 1)",
        free.max(0)
    );
    let fix = format!(
        "as a superuser: ALTER SYSTEM SET max_wal_senders = {};\n\
         then restart PostgreSQL",
        max.max(active).saturating_add(1).max(10)
    );
    item("WAL senders", ok, detail, Some(fix))
}

fn check_replication_role(facts: &OriginFacts) -> CheckItem {
    let user = &quote_ident(&facts.user);
    let (ok, detail) = if facts.is_superuser {
        (true, format!("role {user} is a superuser"))
    } else if facts.has_replication {
        (true, format!("role {user} has REPLICATION"))
    } else {
        (
            false,
            format!(
                "role {user} has neither REPLICATION nor superuser; replication connections \
                 need one of them"
            ),
        )
    };
    let fix = format!("as a superuser: ALTER ROLE {user} REPLICATION;");
    item("replication privilege", ok, detail, Some(fix))
}

fn check_publication_privilege(facts: &OriginFacts) -> CheckItem {
    let user = &quote_ident(&facts.user);
    let db = &quote_ident(&facts.database);
    let (ok, detail) = if facts.is_superuser {
        (
            true,
            format!(
                "role {user} is a superuser: it can create publications, FOR ALL TABLES included"
            ),
        )
    } else if facts.can_create_in_database {
        (
            true,
            format!(
                "role {user} has CREATE on database {db}: it can create publications FOR TABLE \
                 on tables it owns; FOR ALL TABLES requires a superuser"
            ),
        )
    } else {
        (
            false,
            format!(
                "role {user} has no CREATE privilege on database {db} and is not a superuser, \
                 so it cannot create a publication (FOR ALL TABLES would also need superuser)"
            ),
        )
    };
    let fix =
        format!("as the database owner or a superuser: GRANT CREATE ON DATABASE {db} TO {user};");
    item("publication privilege", ok, detail, Some(fix))
}

/// An SQL identifier, always double-quoted, inner double quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal, inner single quotes doubled (`E''` is not needed:
/// `standard_conforming_strings` has been on by default since 9.1).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A tokio-postgres error as one message: the server's own words for database
/// errors (`FATAL: password authentication failed …`), otherwise the error and
/// its causes (`error connecting to server: Connection refused (os error 111)`).
pub(crate) fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.to_string();
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> OriginFacts {
        OriginFacts {
            server_version_num: 150_018,
            server_version: "15.18".to_string(),
            wal_level: "logical".to_string(),
            max_replication_slots: 10,
            replication_slots: Vec::new(),
            max_wal_senders: 10,
            active_wal_senders: 0,
            user: "pgcache".to_string(),
            database: "app".to_string(),
            is_superuser: false,
            has_replication: true,
            can_create_in_database: true,
        }
    }

    fn slot(name: &str, active: bool) -> SlotInfo {
        SlotInfo {
            name: name.to_string(),
            slot_type: "logical".to_string(),
            database: Some("app".to_string()),
            active,
        }
    }

    /// The single failing item of `facts`, asserting there is exactly one.
    fn only_failure(facts: &OriginFacts) -> CheckItem {
        let report = evaluate(facts);
        let mut failing: Vec<_> = report.items.into_iter().filter(|i| !i.ok).collect();
        assert_eq!(failing.len(), 1, "{failing:#?}");
        failing.remove(0)
    }

    fn fix(item: &CheckItem) -> &str {
        item.fix.as_deref().unwrap_or_default()
    }

    #[test]
    fn healthy_origin_passes_without_fixes() {
        let report = evaluate(&healthy());
        assert!(report.all_ok(), "{report}");
        assert_eq!(report.items.len(), 6);
        assert!(report.items.iter().all(|i| i.fix.is_none()));
        let publication = &report.items[5];
        assert!(
            publication
                .detail
                .contains("FOR ALL TABLES requires a superuser")
        );
    }

    #[test]
    fn wal_level_replica_fails() {
        let facts = OriginFacts {
            wal_level: "replica".to_string(),
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "wal_level");
        assert!(item.detail.contains("replica"));
        assert!(fix(&item).contains("ALTER SYSTEM SET wal_level = logical;"));
        assert!(fix(&item).contains("restart PostgreSQL"));
    }

    #[test]
    fn no_free_slot_fails_and_lists_droppable_slots() {
        let facts = OriginFacts {
            max_replication_slots: 2,
            replication_slots: vec![slot("busy", true), slot("old'one", false)],
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "replication slots");
        assert!(
            item.detail
                .contains("2 of max_replication_slots = 2 in use, 0 free")
        );
        let fix = fix(&item);
        assert!(
            fix.contains("ALTER SYSTEM SET max_replication_slots = 3;"),
            "{fix}"
        );
        assert!(
            fix.contains("SELECT pg_drop_replication_slot('old''one');"),
            "{fix}"
        );
        assert!(
            !fix.contains("'busy'"),
            "active slots cannot be dropped: {fix}"
        );
    }

    #[test]
    fn zero_max_slots_fails() {
        let facts = OriginFacts {
            max_replication_slots: 0,
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "replication slots");
        assert!(fix(&item).contains("max_replication_slots = 1;"));
        assert!(!fix(&item).contains("pg_drop_replication_slot"));
    }

    #[test]
    fn all_slots_active_says_none_can_be_dropped() {
        let facts = OriginFacts {
            max_replication_slots: 1,
            replication_slots: vec![slot("busy", true)],
            ..healthy()
        };
        let item = only_failure(&facts);
        assert!(fix(&item).contains("none can be dropped"), "{}", fix(&item));
    }

    #[test]
    fn no_free_wal_sender_fails() {
        let facts = OriginFacts {
            max_wal_senders: 3,
            active_wal_senders: 3,
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "WAL senders");
        assert!(
            item.detail
                .contains("3 of max_wal_senders = 3 in use, 0 free")
        );
        assert!(fix(&item).contains("ALTER SYSTEM SET max_wal_senders = 10;"));
    }

    #[test]
    fn missing_replication_attribute_fails_with_quoted_role() {
        let facts = OriginFacts {
            user: "app \"user\"".to_string(),
            has_replication: false,
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "replication privilege");
        assert_eq!(
            fix(&item),
            "as a superuser: ALTER ROLE \"app \"\"user\"\"\" REPLICATION;"
        );
    }

    #[test]
    fn superuser_needs_no_replication_attribute() {
        let facts = OriginFacts {
            is_superuser: true,
            has_replication: false,
            can_create_in_database: false,
            ..healthy()
        };
        let report = evaluate(&facts);
        assert!(report.all_ok(), "{report}");
        assert!(report.items[5].detail.contains("FOR ALL TABLES included"));
    }

    #[test]
    fn missing_create_privilege_fails() {
        let facts = OriginFacts {
            can_create_in_database: false,
            database: "My DB".to_string(),
            ..healthy()
        };
        let item = only_failure(&facts);
        assert_eq!(item.name, "publication privilege");
        assert!(
            item.detail
                .contains("FOR ALL TABLES would also need superuser")
        );
        assert!(fix(&item).contains("GRANT CREATE ON DATABASE \"My DB\" TO \"pgcache\";"));
    }

    #[test]
    fn version_below_10_fails_and_below_14_is_informational() {
        let old = OriginFacts {
            server_version_num: 90_624,
            server_version: "9.6.24".to_string(),
            ..healthy()
        };
        let item = only_failure(&old);
        assert_eq!(item.name, "server version");
        assert!(fix(&item).contains("upgrade"));

        let thirteen = OriginFacts {
            server_version_num: 130_015,
            server_version: "13.15".to_string(),
            ..healthy()
        };
        let report = evaluate(&thirteen);
        assert!(report.all_ok());
        assert!(
            report.items[0]
                .detail
                .contains("14 or later is recommended")
        );
    }

    #[test]
    fn display_prints_status_and_indented_fix() {
        let facts = OriginFacts {
            wal_level: "replica".to_string(),
            ..healthy()
        };
        let text = evaluate(&facts).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok    server version: PostgreSQL 15.18");
        assert_eq!(
            lines[1],
            "FAIL  wal_level: wal_level is replica; logical decoding needs logical"
        );
        assert_eq!(
            lines[2],
            "      fix: as a superuser: ALTER SYSTEM SET wal_level = logical;"
        );
        assert_eq!(
            lines[3],
            "           then restart PostgreSQL (wal_level only changes at server start)"
        );
        assert!(lines[4].starts_with("ok    replication slots: 0 of"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn connect_error_names_what_was_tried() {
        let err = CheckError::Connect {
            host: "db.internal".to_string(),
            port: 5433,
            user: "pgcache".to_string(),
            database: "app".to_string(),
            reason: "FATAL: password authentication failed for user \"pgcache\"".to_string(),
        };
        let text = err.to_string();
        assert!(text.contains("db.internal:5433"), "{text}");
        assert!(text.contains("\"pgcache\""), "{text}");
        assert!(text.contains("password authentication failed"), "{text}");
        let socket = CheckError::Connect {
            host: "/var/run/postgresql".to_string(),
            port: 5432,
            user: "u".to_string(),
            database: "d".to_string(),
            reason: "x".to_string(),
        };
        assert!(
            socket
                .to_string()
                .contains("Unix socket in /var/run/postgresql")
        );
    }
}
