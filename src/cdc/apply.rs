//! Transaction assembly: what each committed transaction of the change
//! stream means for the cache.
//!
//! Pure state machine, fed the stream's messages in order: `Begin`, the
//! pgoutput payloads in between, `Commit`. At each commit it hands back the
//! tables the transaction changed (rows inserted, updated, deleted or
//! truncated) and the relation definitions the stream sent that differ from
//! the ones it sent before. The caller applies a [`Committed`] as one step,
//! so readers see the origin commit by commit, never half a transaction.

use std::collections::HashMap;

use bytes::Bytes;

use super::error::DecodeError;
use super::pgoutput::{self, LogicalMessage, Relation};
use crate::catalog::Oid;

/// Why the stream cannot be applied (the caller drops the stream and starts
/// over; the cache forgets everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    Decode(DecodeError),
    /// A change arrived outside `Begin` … `Commit`, or a transaction began
    /// inside another.
    OutOfTransaction(&'static str),
    /// A message pgcache does not request (streamed or two-phase
    /// transactions).
    Unexpected(&'static str),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Decode(e) => write!(f, "undecodable pgoutput message: {e}"),
            ApplyError::OutOfTransaction(what) => {
                write!(f, "{what} outside a transaction of the change stream")
            }
            ApplyError::Unexpected(what) => write!(f, "unexpected {what} message"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// One committed transaction, as the cache needs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Tables whose rows changed, each once.
    pub tables: Vec<Oid>,
    /// Relation definitions that are new to this stream or differ from the
    /// one it sent before for the same table (a column added, dropped,
    /// renamed or retyped, a new replica identity).
    pub redefined: Vec<Relation>,
    /// Row changes (an insert, update or delete of one row; a truncate
    /// counts once per table).
    pub changes: u64,
    /// The transaction ran DDL (the origin's event trigger said so): any
    /// table, view, function, policy or privilege may have changed.
    pub ddl: bool,
}

/// Prefix of the logical messages the origin's DDL event trigger emits.
pub const DDL_MESSAGE_PREFIX: &str = "pgcache.ddl";

/// Assembles transactions from the stream.
#[derive(Debug, Default)]
pub struct Applier {
    open: Option<Committed>,
    relations: HashMap<Oid, Relation>,
}

impl Applier {
    pub fn new() -> Applier {
        Applier::default()
    }

    /// Whether a transaction is open (between `Begin` and `Commit`).
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// `Begin`.
    pub fn begin(&mut self) -> Result<(), ApplyError> {
        if self.open.is_some() {
            return Err(ApplyError::OutOfTransaction("Begin"));
        }
        self.open = Some(Committed::default());
        Ok(())
    }

    /// One pgoutput payload between `Begin` and `Commit` (the transport
    /// reports those two itself).
    pub fn message(&mut self, data: &Bytes) -> Result<(), ApplyError> {
        let message = pgoutput::decode(data).map_err(ApplyError::Decode)?;
        let touched = match message {
            LogicalMessage::Insert(m) => Some((m.relation, 1)),
            LogicalMessage::Update(m) => Some((m.relation, 1)),
            LogicalMessage::Delete(m) => Some((m.relation, 1)),
            LogicalMessage::Truncate(m) => {
                let txn = self.open_txn("Truncate")?;
                for oid in m.relations {
                    txn.touch(oid, 1);
                }
                None
            }
            LogicalMessage::Relation(relation) => {
                let txn = self
                    .open
                    .as_mut()
                    .ok_or(ApplyError::OutOfTransaction("Relation"))?;
                if self.relations.get(&relation.oid) != Some(&relation) {
                    txn.redefined.push(relation.clone());
                    self.relations.insert(relation.oid, relation);
                }
                None
            }
            // Types, replication origins and logical messages change no rows.
            LogicalMessage::Type(_) | LogicalMessage::Origin(_) | LogicalMessage::Message(_) => {
                None
            }
            LogicalMessage::Begin(_) => return Err(ApplyError::OutOfTransaction("Begin")),
            LogicalMessage::Commit(_) => return Err(ApplyError::Unexpected("Commit payload")),
            _ => return Err(ApplyError::Unexpected("streamed-transaction")),
        };
        if let Some((oid, n)) = touched {
            self.open_txn("a row change")?.touch(oid, n);
        }
        Ok(())
    }

    /// A transactional logical message with [`DDL_MESSAGE_PREFIX`] (the
    /// transport reports messages itself).
    pub fn ddl(&mut self) -> Result<(), ApplyError> {
        self.open_txn("a DDL message")?.ddl = true;
        Ok(())
    }

    /// `Commit`: the transaction, ready to apply.
    pub fn commit(&mut self) -> Result<Committed, ApplyError> {
        self.open
            .take()
            .ok_or(ApplyError::OutOfTransaction("Commit"))
    }

    /// The stream restarted: forget the relations it sent.
    pub fn reset(&mut self) {
        self.open = None;
        self.relations.clear();
    }

    fn open_txn(&mut self, what: &'static str) -> Result<&mut Committed, ApplyError> {
        self.open.as_mut().ok_or(ApplyError::OutOfTransaction(what))
    }
}

impl Committed {
    fn touch(&mut self, oid: Oid, n: u64) {
        self.changes += n;
        // Transactions touch few tables: a linear scan beats hashing.
        if !self.tables.contains(&oid) {
            self.tables.push(oid);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cdc::fixtures::fixture;

    /// Feed a captured stream (Begin and Commit included, as the fixtures
    /// hold them) and collect the commits.
    fn run(messages: &[Bytes]) -> Vec<Committed> {
        let mut applier = Applier::new();
        let mut out = Vec::new();
        for m in messages {
            match m[0] {
                b'B' => applier.begin().unwrap(),
                b'C' => out.push(applier.commit().unwrap()),
                _ => applier.message(m).unwrap(),
            }
        }
        assert!(!applier.in_transaction());
        out
    }

    #[test]
    fn each_transaction_reports_its_tables_and_changes() {
        let commits = run(&fixture!("identity_default.hex"));
        assert_eq!(commits.len(), 4);
        let table = commits[0].tables[0];
        assert_eq!(commits[0].tables, vec![table]);
        assert_eq!(commits[0].changes, 2, "two inserts");
        assert_eq!(commits[0].redefined.len(), 1, "first sight of the table");
        for c in &commits[1..] {
            assert_eq!(c.tables, vec![table]);
            assert_eq!(c.changes, 1);
            assert!(c.redefined.is_empty(), "same definition as before");
        }
    }

    #[test]
    fn truncate_touches_every_listed_table() {
        let commits = run(&fixture!("truncate.hex"));
        assert_eq!(commits.len(), 3);
        assert_eq!(
            commits[0].tables.len(),
            3,
            "parent, other, child by cascade"
        );
        assert_eq!(commits[1].tables.len(), 1);
        assert_eq!(commits[2].tables.len(), 2);
        // The relations were sent once each in the first transaction.
        assert_eq!(commits[0].redefined.len(), 3);
        assert!(commits[1].redefined.is_empty());
    }

    #[test]
    fn changed_definition_is_reported_again() {
        let messages = fixture!("identity_default.hex");
        let mut applier = Applier::new();
        applier.begin().unwrap();
        applier.message(&messages[1]).unwrap();
        assert_eq!(applier.commit().unwrap().redefined.len(), 1);
        // The same relation with one more column.
        let mut relation = match pgoutput::decode(&messages[1]).unwrap() {
            LogicalMessage::Relation(r) => r,
            other => panic!("{other:?}"),
        };
        let mut changed = messages[1].to_vec();
        // Column count is the big-endian i16 before the columns; add a
        // column `x int4 -1` at the end.
        let count_at = 1 + 4 + relation.namespace.len() + 1 + relation.name.len() + 1 + 1;
        let count = i16::from_be_bytes([changed[count_at], changed[count_at + 1]]);
        changed[count_at..count_at + 2].copy_from_slice(&(count + 1).to_be_bytes());
        changed.extend_from_slice(&[0, b'x', 0, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff]);
        applier.begin().unwrap();
        applier.message(&Bytes::from(changed)).unwrap();
        let redefined = applier.commit().unwrap().redefined;
        assert_eq!(redefined.len(), 1);
        relation.columns.push(pgoutput::RelationColumn {
            part_of_key: false,
            name: "x".into(),
            type_oid: Oid(23),
            type_modifier: -1,
        });
        assert_eq!(redefined[0], relation);
    }

    #[test]
    fn ddl_marks_the_transaction() {
        let mut applier = Applier::new();
        assert!(applier.ddl().is_err(), "outside a transaction");
        applier.begin().unwrap();
        applier.ddl().unwrap();
        let committed = applier.commit().unwrap();
        assert!(committed.ddl);
        assert!(committed.tables.is_empty());
        applier.begin().unwrap();
        assert!(!applier.commit().unwrap().ddl);
    }

    #[test]
    fn changes_outside_a_transaction_are_errors() {
        let messages = fixture!("identity_default.hex");
        let mut applier = Applier::new();
        assert_eq!(
            applier.message(&messages[2]),
            Err(ApplyError::OutOfTransaction("a row change"))
        );
        assert!(applier.commit().is_err());
        applier.begin().unwrap();
        assert!(applier.begin().is_err());
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut applier = Applier::new();
        applier.begin().unwrap();
        for bad in [&b""[..], b"I", b"I\0\0", b"Z123", b"T\0\0\0\x05\0"] {
            assert!(
                matches!(
                    applier.message(&Bytes::copy_from_slice(bad)),
                    Err(ApplyError::Decode(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn streamed_transactions_are_refused() {
        let messages = fixture!("stream.hex");
        let start = messages
            .iter()
            .find(|m| m[0] == b'S')
            .expect("a Stream Start");
        let mut applier = Applier::new();
        applier.begin().unwrap();
        assert!(matches!(
            applier.message(start),
            Err(ApplyError::Unexpected(_))
        ));
    }
}
