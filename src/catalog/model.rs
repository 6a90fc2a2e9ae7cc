//! The catalog objects a [`Snapshot`](super::Snapshot) holds, one struct per
//! kind, with the `pg_catalog` columns they come from.

use std::fmt;

/// A PostgreSQL object identifier (`oid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(pub u32);

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A `pg_namespace` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub oid: Oid,
    pub name: String,
}

/// `pg_class.relkind` of the relations the snapshot keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelKind {
    /// `r`: an ordinary table, the only kind that is cached.
    Table,
    /// `p`: a partitioned table (its rows live in the partitions).
    PartitionedTable,
    /// `v`
    View,
    /// `m`
    MaterializedView,
    /// `f`
    ForeignTable,
    /// `S`
    Sequence,
    /// Any other relkind (`c` composite type, `t` TOAST table, indexes).
    Other(u8),
}

impl RelKind {
    /// From the `relkind` byte.
    pub fn from_byte(b: u8) -> RelKind {
        match b {
            b'r' => RelKind::Table,
            b'p' => RelKind::PartitionedTable,
            b'v' => RelKind::View,
            b'm' => RelKind::MaterializedView,
            b'f' => RelKind::ForeignTable,
            b'S' => RelKind::Sequence,
            other => RelKind::Other(other),
        }
    }
}

/// `pg_class.relpersistence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persistence {
    /// `p`: WAL-logged, replicated.
    Permanent,
    /// `u`: not WAL-logged, so never in the change stream.
    Unlogged,
    /// `t`: belongs to one session.
    Temporary,
}

impl Persistence {
    /// From the `relpersistence` byte; unknown values are treated as temporary
    /// (the most restrictive).
    pub fn from_byte(b: u8) -> Persistence {
        match b {
            b'p' => Persistence::Permanent,
            b'u' => Persistence::Unlogged,
            _ => Persistence::Temporary,
        }
    }
}

/// `pg_class.relreplident`: which old-row columns the change stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key, if there is one.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: all columns.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From the `relreplident` byte; unknown values map to `Nothing`.
    pub fn from_byte(b: u8) -> ReplicaIdentity {
        match b {
            b'd' => ReplicaIdentity::Default,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Nothing,
        }
    }
}

/// Whether (and how) a table's changes are published to the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Membership {
    /// Not in the proxy's publication (or no publication is configured).
    NotPublished,
    /// Every row and column is published.
    Published,
    /// Published with a row filter (`WHERE` in the publication, PostgreSQL 15+):
    /// the stream omits some rows' changes.
    RowFilter,
    /// Published with a column list (PostgreSQL 15+): the stream omits columns.
    ColumnList,
}

/// A `pg_attribute` row of a user column (`attnum > 0`, not dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `attnum`: position in the table, from 1, with gaps where columns were dropped.
    pub attnum: i16,
    pub type_oid: Oid,
    /// `atttypmod` (-1 when none).
    pub typmod: i32,
    /// `attcollation` (0 when the type is not collatable).
    pub collation: Oid,
    pub not_null: bool,
    /// `attgenerated <> ''`: a stored generated column, whose values logical
    /// replication does not send before PostgreSQL 18.
    pub generated: bool,
}

/// A relation (`pg_class` row) with what cacheability depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub oid: Oid,
    pub schema: Oid,
    pub name: String,
    pub kind: RelKind,
    pub persistence: Persistence,
    /// `relrowsecurity`: row-level security is enabled.
    pub row_security: bool,
    /// `relforcerowsecurity`: it applies to the owner too.
    pub force_row_security: bool,
    pub replica_identity: ReplicaIdentity,
    /// `relispartition`: this table is a partition of another.
    pub is_partition: bool,
    /// `relhassubclass`: the table has (or had) inheritance children or
    /// partitions, whose rows a query without `ONLY` reads too.
    pub has_children: bool,
    /// Writing this table may run code that writes elsewhere: triggers
    /// (foreign keys included), rules, or column defaults, constraints or
    /// index expressions that call functions outside `pg_catalog`.
    pub write_side_effects: bool,
    /// User columns in `attnum` order.
    pub columns: Vec<Column>,
    /// `attnum`s of the primary key, in key order; empty when there is none.
    pub primary_key: Vec<i16>,
    pub membership: Membership,
}

impl Table {
    /// The column called `name` (already case-folded).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// `pg_type.typtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeKind {
    Base,
    Composite,
    Domain,
    Enum,
    Pseudo,
    Range,
    Multirange,
}

impl TypeKind {
    /// From the `typtype` byte; unknown values map to `Pseudo`.
    pub fn from_byte(b: u8) -> TypeKind {
        match b {
            b'b' => TypeKind::Base,
            b'c' => TypeKind::Composite,
            b'd' => TypeKind::Domain,
            b'e' => TypeKind::Enum,
            b'r' => TypeKind::Range,
            b'm' => TypeKind::Multirange,
            _ => TypeKind::Pseudo,
        }
    }
}

/// `pg_proc.provolatile`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

impl Volatility {
    /// From the `provolatile` byte; unknown values map to `Volatile`.
    pub fn from_byte(b: u8) -> Volatility {
        match b {
            b'i' => Volatility::Immutable,
            b's' => Volatility::Stable,
            _ => Volatility::Volatile,
        }
    }
}

impl fmt::Display for Volatility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Volatility::Immutable => "immutable",
            Volatility::Stable => "stable",
            Volatility::Volatile => "volatile",
        })
    }
}

/// A `pg_type` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub oid: Oid,
    pub schema: Oid,
    pub name: String,
    pub kind: TypeKind,
    /// `typcategory` (`A` array, `N` numeric, `S` string, `D` date/time, …).
    pub category: u8,
    /// `typispreferred` within its category.
    pub preferred: bool,
    /// `typelem` of an array type (`category == b'A'`).
    pub element: Option<Oid>,
    /// `typarray`: the array type whose elements are this type.
    pub array: Option<Oid>,
    /// `typbasetype` of a domain.
    pub base: Option<Oid>,
    /// `typinput`'s name, for reasons shown to users.
    pub input_function: String,
    /// Volatility of `typinput`: converting a literal to this type runs it.
    pub input_volatility: Volatility,
    /// Volatility of `typoutput` (I/O conversion casts run it).
    pub output_volatility: Volatility,
    /// Labels of an enum type in sort order.
    pub enum_labels: Vec<String>,
}

/// `pg_proc.prokind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    Function,
    Aggregate,
    Window,
    Procedure,
}

impl FunctionKind {
    /// From the `prokind` byte; unknown values map to `Procedure`.
    pub fn from_byte(b: u8) -> FunctionKind {
        match b {
            b'f' => FunctionKind::Function,
            b'a' => FunctionKind::Aggregate,
            b'w' => FunctionKind::Window,
            _ => FunctionKind::Procedure,
        }
    }
}

/// A `pg_proc` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub oid: Oid,
    pub schema: Oid,
    pub name: String,
    pub kind: FunctionKind,
    pub volatility: Volatility,
    /// `proretset`: returns a set of rows.
    pub returns_set: bool,
    pub result: Oid,
    /// `proargtypes`: input argument types.
    pub args: Vec<Oid>,
    /// `pronargdefaults`: how many trailing arguments have defaults.
    pub arg_defaults: u16,
    /// `provariadic`: element type of the variadic argument, if any.
    pub variadic: Option<Oid>,
}

/// A `pg_operator` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub oid: Oid,
    pub schema: Oid,
    pub name: String,
    /// `oprleft`; `None` for a prefix operator.
    pub left: Option<Oid>,
    pub right: Oid,
    pub result: Oid,
    /// `oprcode`: the function implementing it.
    pub function: Oid,
    /// That function's volatility (operators are as volatile as their code).
    pub volatility: Volatility,
}

/// `pg_cast.castcontext`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CastContext {
    /// `i`: applied implicitly in expressions.
    Implicit,
    /// `a`: only in assignments.
    Assignment,
    /// `e`: only with an explicit cast.
    Explicit,
}

impl CastContext {
    /// From the `castcontext` byte; unknown values map to `Explicit`.
    pub fn from_byte(b: u8) -> CastContext {
        match b {
            b'i' => CastContext::Implicit,
            b'a' => CastContext::Assignment,
            _ => CastContext::Explicit,
        }
    }
}

/// A `pg_cast` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cast {
    pub source: Oid,
    pub target: Oid,
    pub context: CastContext,
    /// Volatility of the cast: of `castfunc`, or immutable for binary-coercible
    /// casts; I/O conversion casts take the stricter of the two types' I/O.
    pub volatility: Volatility,
}

/// The proxy's publication (`pg_publication` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub name: String,
    pub all_tables: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
    /// `pubviaroot`: partition changes are published as the root table's.
    pub via_root: bool,
}

impl Publication {
    /// The first change kind this publication does not publish, if any: the
    /// cache cannot follow tables whose changes it does not see.
    pub fn missing_action(&self) -> Option<&'static str> {
        if !self.insert {
            Some("inserts")
        } else if !self.update {
            Some("updates")
        } else if !self.delete {
            Some("deletes")
        } else if !self.truncate {
            Some("truncates")
        } else {
            None
        }
    }
}
