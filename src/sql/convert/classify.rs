//! Statements that are not queries, classified by kind.

use pg_query::protobuf::{self as pb, node::Node as N};

use super::super::kind::{SetStatement, SetValue, StatementKind, TransactionKind};

/// Classify a statement that is not a `SELECT`.
pub(super) fn classify(node: &N) -> StatementKind {
    use StatementKind as K;
    match node {
        N::SelectStmt(_) => K::Select,
        N::InsertStmt(_) => K::Insert,
        N::UpdateStmt(_) => K::Update,
        N::DeleteStmt(_) => K::Delete,
        N::MergeStmt(_) => K::Merge,
        N::TruncateStmt(_) => K::Truncate,
        N::CreateTableAsStmt(c) => {
            if c.objtype == pb::ObjectType::ObjectMatview as i32 {
                K::Ddl("CREATE MATERIALIZED VIEW")
            } else {
                K::SelectInto {
                    temporary: c
                        .into
                        .as_ref()
                        .and_then(|i| i.rel.as_ref())
                        .is_some_and(is_temp),
                }
            }
        }
        N::TransactionStmt(t) => K::Transaction(transaction_kind(t.kind())),
        N::VariableSetStmt(v) => variable_set(v),
        N::VariableShowStmt(v) => K::Show(v.name.to_ascii_lowercase()),
        N::CopyStmt(c) => K::Copy { from: c.is_from },
        N::ListenStmt(_) => K::Listen,
        N::UnlistenStmt(_) => K::Unlisten,
        N::NotifyStmt(_) => K::Notify,
        N::PrepareStmt(_) => K::Prepare,
        N::ExecuteStmt(_) => K::Execute,
        N::DeallocateStmt(d) => K::Deallocate {
            name: (!d.name.is_empty()).then(|| d.name.clone()),
        },
        N::ExplainStmt(e) => {
            let analyze = e.options.iter().any(|o| match &o.node {
                Some(N::DefElem(d)) => d.defname == "analyze",
                _ => false,
            });
            if analyze {
                // EXPLAIN ANALYZE runs the statement, which may write.
                K::Utility("EXPLAIN ANALYZE")
            } else {
                K::Explain
            }
        }
        N::CallStmt(_) => K::Call,
        N::DoStmt(_) => K::Do,
        N::LockStmt(_) => K::Lock,
        N::DiscardStmt(d) => K::Discard {
            all: d.target() == pb::DiscardMode::DiscardAll,
        },
        N::DeclareCursorStmt(_) | N::FetchStmt(_) | N::ClosePortalStmt(_) => K::Cursor,
        N::VacuumStmt(v) => K::Utility(if v.is_vacuumcmd { "VACUUM" } else { "ANALYZE" }),
        N::ClusterStmt(_) => K::Utility("CLUSTER"),
        N::ReindexStmt(_) => K::Utility("REINDEX"),
        N::CheckPointStmt(_) => K::Utility("CHECKPOINT"),
        N::LoadStmt(_) => K::Utility("LOAD"),
        N::RefreshMatViewStmt(_) => K::Utility("REFRESH MATERIALIZED VIEW"),
        N::ConstraintsSetStmt(_) => K::Utility("SET CONSTRAINTS"),
        N::AlterSystemStmt(_) => K::Utility("ALTER SYSTEM"),
        N::CreateStmt(c) if c.relation.as_ref().is_some_and(is_temp) => {
            K::Ddl("CREATE TEMPORARY TABLE")
        }
        N::CreateStmt(_) => K::Ddl("CREATE TABLE"),
        N::CreateSchemaStmt(_) => K::Ddl("CREATE SCHEMA"),
        N::ViewStmt(v) if v.view.as_ref().is_some_and(is_temp) => K::Ddl("CREATE TEMPORARY VIEW"),
        N::ViewStmt(_) => K::Ddl("CREATE VIEW"),
        N::IndexStmt(_) => K::Ddl("CREATE INDEX"),
        N::CreateFunctionStmt(_) => K::Ddl("CREATE FUNCTION"),
        N::CreateSeqStmt(c) if c.sequence.as_ref().is_some_and(is_temp) => {
            K::Ddl("CREATE TEMPORARY SEQUENCE")
        }
        N::CreateSeqStmt(_) => K::Ddl("CREATE SEQUENCE"),
        N::AlterSeqStmt(_) => K::Ddl("ALTER SEQUENCE"),
        N::CreateEnumStmt(_) | N::CompositeTypeStmt(_) | N::CreateRangeStmt(_) => {
            K::Ddl("CREATE TYPE")
        }
        N::CreateDomainStmt(_) => K::Ddl("CREATE DOMAIN"),
        N::AlterTableStmt(_) => K::Ddl("ALTER TABLE"),
        N::AlterEnumStmt(_) => K::Ddl("ALTER TYPE"),
        N::AlterDomainStmt(_) => K::Ddl("ALTER DOMAIN"),
        N::AlterFunctionStmt(_) => K::Ddl("ALTER FUNCTION"),
        N::RenameStmt(_) => K::Ddl("ALTER … RENAME"),
        N::AlterObjectSchemaStmt(_) => K::Ddl("ALTER … SET SCHEMA"),
        N::AlterOwnerStmt(_) => K::Ddl("ALTER … OWNER"),
        N::DropStmt(_) => K::Ddl("DROP"),
        N::CommentStmt(_) => K::Ddl("COMMENT"),
        N::GrantStmt(_) => K::Ddl("GRANT/REVOKE"),
        N::GrantRoleStmt(_) => K::Ddl("GRANT/REVOKE role"),
        N::AlterDefaultPrivilegesStmt(_) => K::Ddl("ALTER DEFAULT PRIVILEGES"),
        N::CreatePolicyStmt(_) => K::Ddl("CREATE POLICY"),
        N::AlterPolicyStmt(_) => K::Ddl("ALTER POLICY"),
        N::CreateTrigStmt(_) => K::Ddl("CREATE TRIGGER"),
        N::RuleStmt(_) => K::Ddl("CREATE RULE"),
        N::CreateExtensionStmt(_) => K::Ddl("CREATE EXTENSION"),
        N::AlterExtensionStmt(_) | N::AlterExtensionContentsStmt(_) => K::Ddl("ALTER EXTENSION"),
        N::CreateRoleStmt(_) => K::Ddl("CREATE ROLE"),
        N::AlterRoleStmt(_) | N::AlterRoleSetStmt(_) => K::Ddl("ALTER ROLE"),
        N::DropRoleStmt(_) => K::Ddl("DROP ROLE"),
        N::CreatePublicationStmt(_) => K::Ddl("CREATE PUBLICATION"),
        N::AlterPublicationStmt(_) => K::Ddl("ALTER PUBLICATION"),
        N::CreateSubscriptionStmt(_) => K::Ddl("CREATE SUBSCRIPTION"),
        N::AlterSubscriptionStmt(_) => K::Ddl("ALTER SUBSCRIPTION"),
        N::DropSubscriptionStmt(_) => K::Ddl("DROP SUBSCRIPTION"),
        N::CreatedbStmt(_) => K::Ddl("CREATE DATABASE"),
        N::DropdbStmt(_) => K::Ddl("DROP DATABASE"),
        N::AlterDatabaseStmt(_)
        | N::AlterDatabaseSetStmt(_)
        | N::AlterDatabaseRefreshCollStmt(_) => K::Ddl("ALTER DATABASE"),
        N::ReplicaIdentityStmt(_) => K::Ddl("ALTER TABLE … REPLICA IDENTITY"),
        N::SecLabelStmt(_) => K::Ddl("SECURITY LABEL"),
        N::DropOwnedStmt(_) => K::Ddl("DROP OWNED"),
        N::ReassignOwnedStmt(_) => K::Ddl("REASSIGN OWNED"),
        _ => K::Ddl("DDL"),
    }
}

/// `CREATE TEMP …` / `INTO TEMP …`, or a name in `pg_temp`.
pub(super) fn is_temp(r: &pb::RangeVar) -> bool {
    r.relpersistence == "t" || r.schemaname == "pg_temp" || r.schemaname.starts_with("pg_temp_")
}

fn transaction_kind(kind: pb::TransactionStmtKind) -> TransactionKind {
    use pb::TransactionStmtKind as T;
    match kind {
        T::TransStmtCommit => TransactionKind::Commit,
        T::TransStmtRollback => TransactionKind::Rollback,
        T::TransStmtSavepoint => TransactionKind::Savepoint,
        T::TransStmtRelease => TransactionKind::Release,
        T::TransStmtRollbackTo => TransactionKind::RollbackToSavepoint,
        T::TransStmtPrepare => TransactionKind::PrepareTransaction,
        T::TransStmtCommitPrepared => TransactionKind::CommitPrepared,
        T::TransStmtRollbackPrepared => TransactionKind::RollbackPrepared,
        T::TransStmtBegin | T::TransStmtStart | T::Undefined => TransactionKind::Begin,
    }
}

fn variable_set(v: &pb::VariableSetStmt) -> StatementKind {
    use pb::VariableSetKind as V;
    let name = v.name.to_ascii_lowercase();
    match v.kind() {
        V::VarReset => StatementKind::Reset(Some(name)),
        V::VarResetAll => StatementKind::Reset(None),
        kind => {
            let value = match kind {
                V::VarSetDefault => SetValue::Default,
                V::VarSetCurrent => SetValue::FromCurrent,
                V::VarSetValue => set_values(&v.args).map_or(SetValue::Other, SetValue::Values),
                _ => SetValue::Other,
            };
            StatementKind::Set(SetStatement {
                name,
                value,
                local: v.is_local,
            })
        }
    }
}

fn set_values(args: &[pb::Node]) -> Option<Vec<String>> {
    args.iter()
        .map(|a| match &a.node {
            Some(N::AConst(c)) => match &c.val {
                Some(pb::a_const::Val::Sval(s)) => Some(s.sval.clone()),
                Some(pb::a_const::Val::Ival(i)) => Some(i.ival.to_string()),
                Some(pb::a_const::Val::Fval(f)) => Some(f.fval.clone()),
                Some(pb::a_const::Val::Boolval(b)) => {
                    Some(if b.boolval { "on" } else { "off" }.to_owned())
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}
