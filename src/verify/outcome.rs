//! Running one read on one connection and what came back, in a form two
//! connections' answers can be compared in: column names and types, every
//! cell's bytes (text or binary), the row count, or the error's SQLSTATE.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use super::shapes::{Protocol, Shape};
use super::values::{Raw, Value, render_binary};
use crate::check::describe_pg_error;

/// SQLSTATE of "cached plan must not change result type".
const CACHED_PLAN_CHANGED: &str = "0A000";

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Longest one statement may take before the tester gives up on it (a
/// hang guard: the workload's statements take milliseconds).
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A result column: its name and, for binary results, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: Option<Type>,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Rows {
        columns: Vec<Column>,
        /// Text (simple protocol) or binary bytes of each cell; `None` is NULL.
        rows: Vec<Vec<Option<Vec<u8>>>>,
        binary: bool,
    },
    /// An error the server (or the client library, code `client`) reported;
    /// the connection is still usable.
    Error { code: String, message: String },
}

impl Outcome {
    /// Same answer: equal columns and bytes, or errors with the same SQLSTATE.
    pub(crate) fn same(&self, other: &Outcome) -> bool {
        match (self, other) {
            (
                Outcome::Rows {
                    columns: c1,
                    rows: r1,
                    binary: b1,
                },
                Outcome::Rows {
                    columns: c2,
                    rows: r2,
                    binary: b2,
                },
            ) => c1 == c2 && r1 == r2 && b1 == b2,
            (Outcome::Error { code: a, .. }, Outcome::Error { code: b, .. }) => a == b,
            _ => false,
        }
    }

    /// Same kind of answer (rows, or an error with the same SQLSTATE): the
    /// comparison of reads calling volatile functions.
    pub(crate) fn same_status(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Rows { .. }, Outcome::Rows { .. }) => true,
            (Outcome::Error { code: a, .. }, Outcome::Error { code: b, .. }) => a == b,
            _ => false,
        }
    }

    pub(crate) fn row_count(&self) -> usize {
        match self {
            Outcome::Rows { rows, .. } => rows.len(),
            Outcome::Error { .. } => 0,
        }
    }
}

/// At most this many rows of a result are written into a report.
const SHOWN_ROWS: usize = 12;

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Error { code, message } => write!(f, "ERROR {code}: {message}"),
            Outcome::Rows {
                columns,
                rows,
                binary,
            } => {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                writeln!(
                    f,
                    "{} row(s), {} columns ({})",
                    rows.len(),
                    if *binary { "binary" } else { "text" },
                    names.join(", ")
                )?;
                for row in rows.iter().take(SHOWN_ROWS) {
                    let cells: Vec<String> = row
                        .iter()
                        .zip(columns)
                        .map(|(cell, col)| match (cell, &col.ty) {
                            (None, _) => "NULL".to_owned(),
                            (Some(bytes), Some(ty)) => render_binary(ty, bytes),
                            (Some(bytes), None) => String::from_utf8_lossy(bytes).into_owned(),
                        })
                        .collect();
                    writeln!(f, "      ({})", cells.join(", "))?;
                }
                if rows.len() > SHOWN_ROWS {
                    writeln!(f, "      … {} more", rows.len() - SHOWN_ROWS)?;
                }
                Ok(())
            }
        }
    }
}

/// Why a read has no outcome: the connection is gone (or hung).
#[derive(Debug, Clone)]
pub(crate) enum Lost {
    Closed(String),
    Timeout(String),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Closed(m) => write!(f, "connection lost: {m}"),
            Lost::Timeout(m) => write!(f, "no answer within {STATEMENT_TIMEOUT:?}: {m}"),
        }
    }
}

/// A connection of the tester and the statements it prepared.
pub(crate) struct Conn {
    pub(crate) client: Client,
    prepared: HashMap<usize, Statement>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Conn {
    pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<Conn, String> {
        let connecting = tokio::time::timeout(STATEMENT_TIMEOUT, config.connect(NoTls));
        let (client, connection) = match connecting.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(describe_pg_error(&e)),
            Err(_) => return Err(format!("no connection within {STATEMENT_TIMEOUT:?}")),
        };
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            client,
            prepared: HashMap::new(),
            connection,
        })
    }

    /// Close the socket at once, whatever is in flight.
    pub(crate) fn kill(&self) {
        self.connection.abort();
    }

    /// Run statements whose results do not matter (settings, writes).
    pub(crate) async fn batch(&self, sql: &str) -> Result<Result<(), Outcome>, Lost> {
        let run = self.client.batch_execute(sql);
        match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(e)) => self.failed(&e).map(Err),
            Err(_) => Err(Lost::Timeout(sql.to_owned())),
        }
    }

    /// A simple query's rows as an outcome (of a single statement).
    pub(crate) async fn simple(&self, sql: &str) -> Result<Outcome, Lost> {
        let mut sets = self.simple_sets(sql).await?;
        Ok(if sets.len() == 1 {
            sets.remove(0)
        } else {
            // Several statements: their rows one after the other.
            let mut all = Outcome::Rows {
                columns: Vec::new(),
                rows: Vec::new(),
                binary: false,
            };
            for set in sets {
                match (&mut all, set) {
                    (
                        Outcome::Rows { columns, rows, .. },
                        Outcome::Rows {
                            columns: c,
                            rows: r,
                            ..
                        },
                    ) => {
                        columns.extend(c);
                        rows.extend(r);
                    }
                    (_, error) => return Ok(error),
                }
            }
            all
        })
    }

    /// Each statement's result of a simple query string, or its error.
    pub(crate) async fn simple_sets(&self, sql: &str) -> Result<Vec<Outcome>, Lost> {
        let run = self.client.simple_query(sql);
        let messages = match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => return self.failed(&e).map(|o| vec![o]),
            Err(_) => return Err(Lost::Timeout(sql.to_owned())),
        };
        let mut sets = Vec::new();
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) => {
                    columns = cols
                        .iter()
                        .map(|c| Column {
                            name: c.name().to_owned(),
                            ty: None,
                        })
                        .collect();
                }
                SimpleQueryMessage::Row(row) => {
                    let cells = (0..row.len())
                        .map(|i| row.get(i).map(|v| v.as_bytes().to_vec()))
                        .collect();
                    rows.push(cells);
                }
                SimpleQueryMessage::CommandComplete(_) => {
                    sets.push(Outcome::Rows {
                        columns: std::mem::take(&mut columns),
                        rows: std::mem::take(&mut rows),
                        binary: false,
                    });
                }
                _ => {}
            }
        }
        if sets.is_empty() {
            sets.push(Outcome::Rows {
                columns,
                rows,
                binary: false,
            });
        }
        Ok(sets)
    }

    /// `SELECT set_config($1, $2, false)` (extended protocol); it must work.
    pub(crate) async fn set_config(&self, name: &str, value: &str) -> Result<(), String> {
        let sql = "SELECT set_config($1, $2, false)";
        let params: [&(dyn ToSql + Sync); 2] = [&name, &value];
        let run = self.client.query(sql, &params);
        match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "{sql} ({name}, {value}): {}",
                describe_pg_error(&e)
            )),
            Err(_) => Err(format!("{sql}: no answer within {STATEMENT_TIMEOUT:?}")),
        }
    }

    /// Forget the prepared statements (after `DISCARD ALL`).
    pub(crate) fn forget_prepared(&mut self) {
        self.prepared.clear();
    }

    /// Run `shape` with `values` the way `protocol` says; statements for
    /// [`Protocol::Prepared`] are prepared once per connection (and again
    /// after the origin refused to run one whose result type changed).
    pub(crate) async fn read(
        &mut self,
        index: usize,
        shape: &Shape,
        values: &[Value],
        protocol: Protocol,
    ) -> Result<Outcome, Lost> {
        if protocol != Protocol::Prepared {
            return self.read_shared(shape, values, protocol).await;
        }
        let statement = match self.prepared.get(&index) {
            Some(statement) => statement.clone(),
            None => {
                let prepare = self.client.prepare(&shape.sql);
                match tokio::time::timeout(STATEMENT_TIMEOUT, prepare).await {
                    Ok(Ok(statement)) => {
                        self.prepared.insert(index, statement.clone());
                        statement
                    }
                    Ok(Err(e)) => return self.failed(&e),
                    Err(_) => return Err(Lost::Timeout(shape.sql.clone())),
                }
            }
        };
        let described = statement
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                ty: Some(c.type_().clone()),
            })
            .collect();
        let params = params(values);
        let run = self.client.query(&statement, &params);
        let outcome = self.rows(
            tokio::time::timeout(STATEMENT_TIMEOUT, run).await,
            shape,
            Some(described),
        )?;
        if matches!(&outcome, Outcome::Error { code, .. } if code == CACHED_PLAN_CHANGED) {
            // "cached plan must not change result type": the statement
            // stays unusable; a client prepares it again.
            self.prepared.remove(&index);
        }
        Ok(outcome)
    }

    /// [`Conn::read`] without a statement prepared earlier (so reads can be
    /// pipelined on one connection).
    pub(crate) async fn read_shared(
        &self,
        shape: &Shape,
        values: &[Value],
        protocol: Protocol,
    ) -> Result<Outcome, Lost> {
        let params = params(values);
        let result = match protocol {
            Protocol::Simple => return self.simple(&shape.literal_sql(values)).await,
            Protocol::Prepared | Protocol::Fresh => {
                let run = self.client.query(shape.sql.as_str(), &params);
                tokio::time::timeout(STATEMENT_TIMEOUT, run).await
            }
            Protocol::Typed => {
                let typed: Vec<(&(dyn ToSql + Sync), Type)> = values
                    .iter()
                    .map(|v| (v as &(dyn ToSql + Sync), v.pg_type()))
                    .collect();
                let run = self.client.query_typed(&shape.sql, &typed);
                tokio::time::timeout(STATEMENT_TIMEOUT, run).await
            }
        };
        self.rows(result, shape, None)
    }

    /// Binary rows as an outcome.
    fn rows(
        &self,
        result: Result<
            Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
            tokio::time::error::Elapsed,
        >,
        shape: &Shape,
        described: Option<Vec<Column>>,
    ) -> Result<Outcome, Lost> {
        let rows = match result {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return self.failed(&e),
            Err(_) => return Err(Lost::Timeout(shape.sql.clone())),
        };
        // Without a prepared statement the columns are known only from rows.
        let columns = rows
            .first()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| Column {
                        name: c.name().to_owned(),
                        ty: Some(c.type_().clone()),
                    })
                    .collect()
            })
            .or(described)
            .unwrap_or_default();
        let mut cells = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut out = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                match row.try_get::<_, Option<Raw>>(i) {
                    Ok(cell) => out.push(cell.map(|r| r.0)),
                    Err(e) => return self.failed(&e),
                }
            }
            cells.push(out);
        }
        Ok(Outcome::Rows {
            columns,
            rows: cells,
            binary: true,
        })
    }

    /// An error as an outcome, unless the connection is gone.
    fn failed(&self, e: &tokio_postgres::Error) -> Result<Outcome, Lost> {
        if let Some(db) = e.as_db_error() {
            // A FATAL error ends the session: the next statement will find
            // the connection closed; this one still has its answer.
            return Ok(Outcome::Error {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            });
        }
        if self.client.is_closed() || e.is_closed() {
            return Err(Lost::Closed(describe_pg_error(e)));
        }
        Ok(Outcome::Error {
            code: "client".to_owned(),
            message: describe_pg_error(e),
        })
    }
}
