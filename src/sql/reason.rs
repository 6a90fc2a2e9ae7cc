//! Why a statement is not cacheable, written for the user who asks (the admin
//! command shows [`Reason`]'s `Display`).

use std::fmt;

use crate::catalog::Volatility;

use super::kind::StatementKind;

/// Why a statement is not served from the cache.
///
/// Each variant's text completes "not cacheable: …". Names are shown
/// schema-qualified where the catalog resolved them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// PostgreSQL's parser rejected the text; the origin answers with its error.
    ParseError(String),
    /// More than one statement in one query string.
    MultipleStatements(usize),
    /// An empty query string.
    Empty,
    /// Not a query (`INSERT`, `SET`, `BEGIN`, DDL, …).
    NotAQuery(StatementKind),
    /// `SELECT … INTO` creates a table.
    SelectInto,
    /// A data-modifying `WITH`.
    DataModifyingCte,
    /// `FOR UPDATE` and friends lock rows at the origin.
    Locking(&'static str),
    /// A construct the analyzer does not understand or does not cache yet;
    /// the text completes "uses …".
    Unsupported(String),
    /// `SELECT` without `FROM` reads no table.
    NoTable,
    /// The session's `search_path` is not known, so names cannot be resolved.
    UnknownSearchPath,
    /// The session has temporary objects, which an unqualified name may denote.
    SessionTempObjects(String),
    /// No such relation (the origin will report the error).
    UnknownTable(String),
    /// The name exists in several schemas of the search_path: which one
    /// PostgreSQL uses depends on schema privileges of the user.
    AmbiguousTable {
        name: String,
        schemas: Vec<String>,
    },
    /// The same table name or alias twice in one `FROM`.
    DuplicateTableName(String),
    SystemCatalog(String),
    View(String),
    MaterializedView(String),
    ForeignTable(String),
    Sequence(String),
    PartitionedTable(String),
    /// A table with inheritance children (their rows are read too).
    InheritanceParent(String),
    OtherRelation(String),
    TemporaryTable(String),
    UnloggedTable(String),
    RowLevelSecurity(String),
    /// No primary key and replica identity is not `FULL`.
    NoPrimaryKey(String),
    /// Stored generated columns are not in the change stream (before 18).
    GeneratedColumns(String),
    /// No publication configured or found.
    NoPublication,
    /// The table is not in the proxy's publication.
    NotPublished {
        table: String,
        publication: String,
    },
    /// The publication filters the table's rows or columns.
    PublicationFilter {
        table: String,
        publication: String,
    },
    /// The publication omits a kind of change (`"deletes"`, …).
    PublicationOmits {
        publication: String,
        action: &'static str,
    },
    UnknownColumn(String),
    AmbiguousColumn(String),
    /// `ctid`, `xmin`, … change without appearing in the change stream.
    SystemColumn(String),
    /// A stable or volatile function call.
    NonImmutableFunction {
        name: String,
        volatility: Volatility,
    },
    /// A stable or volatile operator.
    NonImmutableOperator {
        name: String,
        volatility: Volatility,
    },
    /// A stable or volatile cast.
    NonImmutableCast {
        from: String,
        to: String,
        volatility: Volatility,
    },
    /// A literal or parameter converted by a type input function that is not
    /// immutable (`'now'::timestamptz`, dates under `DateStyle`).
    NonImmutableInput {
        type_name: String,
        function: String,
        volatility: Volatility,
    },
    /// `CURRENT_DATE`, `CURRENT_TIMESTAMP`, `LOCALTIME`, ….
    SqlValueFunction(&'static str),
    /// No function or operator with this name and arguments.
    UnknownFunction(String),
    UnknownOperator(String),
    UnknownType(String),
    /// Types could not be determined with certainty.
    UncertainTypes(String),
    /// A set-returning function in the target list.
    SetReturningFunction(String),
    /// A window function or a procedure called as a function.
    NotAPlainFunction(String),
    /// `FULL` joins.
    OuterJoin(&'static str),
    /// `JOIN … USING` or `NATURAL JOIN`.
    JoinUsing,
    /// Tables not connected by an equality of columns.
    CrossJoin(String),
    /// A sub-select in `FROM` or in an expression.
    Subquery,
    /// `UNION`/`INTERSECT`/`EXCEPT`.
    SetOperation,
    /// `VALUES` as a query.
    Values,
    /// A `WITH` query.
    Cte,
}

fn volatility_word(v: Volatility) -> &'static str {
    match v {
        Volatility::Immutable => "immutable",
        Volatility::Stable => "stable",
        Volatility::Volatile => "volatile",
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason as R;
        match self {
            R::ParseError(msg) => write!(
                f,
                "the statement does not parse ({msg}); the origin answers"
            ),
            R::MultipleStatements(n) => write!(f, "the query string holds {n} statements"),
            R::Empty => f.write_str("the query string is empty"),
            R::NotAQuery(kind) => write!(f, "{kind} statements are not cached"),
            R::SelectInto => f.write_str("SELECT … INTO creates a table"),
            R::DataModifyingCte => f.write_str("a WITH clause modifies data"),
            R::Locking(what) => write!(f, "{what} locks rows at the origin"),
            R::Unsupported(what) => write!(f, "uses {what}, which the analyzer does not cache"),
            R::NoTable => f.write_str("reads no table"),
            R::UnknownSearchPath => {
                f.write_str("the session's search_path is not known, so names cannot be resolved")
            }
            R::SessionTempObjects(name) => write!(
                f,
                "the session has temporary objects, so the unqualified name {name} may refer to one"
            ),
            R::UnknownTable(name) => write!(f, "relation {name} does not exist"),
            R::AmbiguousTable { name, schemas } => write!(
                f,
                "{name} exists in several schemas of the search_path ({}); which one is read \
                 depends on the user's schema privileges",
                schemas.join(", ")
            ),
            R::DuplicateTableName(name) => write!(f, "table name {name} is used twice in FROM"),
            R::SystemCatalog(name) => write!(f, "reads system catalog {name}"),
            R::View(name) => write!(f, "reads view {name}: views are not cached"),
            R::MaterializedView(name) => {
                write!(
                    f,
                    "reads materialized view {name}: its changes are not replicated"
                )
            }
            R::ForeignTable(name) => write!(
                f,
                "reads foreign table {name}: its changes are not replicated"
            ),
            R::Sequence(name) => write!(f, "reads sequence {name}"),
            R::PartitionedTable(name) => {
                write!(f, "reads partitioned table {name}: not cached yet")
            }
            R::InheritanceParent(name) => write!(
                f,
                "table {name} has inheritance children whose rows are read too (use ONLY)"
            ),
            R::OtherRelation(name) => write!(f, "reads relation {name}, which is not a table"),
            R::TemporaryTable(name) => write!(f, "reads temporary table {name}"),
            R::UnloggedTable(name) => {
                write!(
                    f,
                    "reads unlogged table {name}: its changes are not replicated"
                )
            }
            R::RowLevelSecurity(name) => write!(f, "table {name} has row-level security"),
            R::NoPrimaryKey(name) => write!(
                f,
                "table {name} has no primary key and its replica identity is not FULL"
            ),
            R::GeneratedColumns(name) => write!(
                f,
                "table {name} has generated columns, which logical replication does not send"
            ),
            R::NoPublication => f.write_str("no publication is configured for the cache"),
            R::NotPublished { table, publication } => {
                write!(f, "table {table} is not in publication {publication}")
            }
            R::PublicationFilter { table, publication } => write!(
                f,
                "publication {publication} publishes table {table} with a row filter or column list"
            ),
            R::PublicationOmits {
                publication,
                action,
            } => write!(f, "publication {publication} does not publish {action}"),
            R::UnknownColumn(name) => write!(f, "column {name} was not found"),
            R::AmbiguousColumn(name) => write!(f, "column reference {name} is ambiguous"),
            R::SystemColumn(name) => write!(f, "reads system column {name}"),
            R::NonImmutableFunction { name, volatility } => {
                write!(
                    f,
                    "calls {} function {name}()",
                    volatility_word(*volatility)
                )
            }
            R::NonImmutableOperator { name, volatility } => {
                write!(f, "uses {} operator {name}", volatility_word(*volatility))
            }
            R::NonImmutableCast {
                from,
                to,
                volatility,
            } => write!(
                f,
                "uses a {} cast from {from} to {to}",
                volatility_word(*volatility)
            ),
            R::NonImmutableInput {
                type_name,
                function,
                volatility,
            } => write!(
                f,
                "converts a literal or parameter to {type_name} with {} input function {function}() \
                 (its value may depend on the time or session settings)",
                volatility_word(*volatility)
            ),
            R::SqlValueFunction(name) => {
                write!(
                    f,
                    "uses {name}, whose value depends on the transaction or session"
                )
            }
            R::UnknownFunction(name) => write!(f, "no function matches {name}()"),
            R::UnknownOperator(name) => write!(f, "no operator matches {name}"),
            R::UnknownType(name) => write!(f, "type {name} does not exist"),
            R::UncertainTypes(what) => {
                write!(f, "the types of {what} cannot be determined with certainty")
            }
            R::SetReturningFunction(name) => write!(f, "calls set-returning function {name}()"),
            R::NotAPlainFunction(name) => write!(
                f,
                "calls {name}(), which is not a plain function or aggregate"
            ),
            R::OuterJoin(kind) => write!(
                f,
                "uses a {kind} join; only inner, LEFT and RIGHT joins are cached"
            ),
            R::JoinUsing => {
                f.write_str("uses JOIN … USING or NATURAL JOIN; only JOIN … ON is cached")
            }
            R::CrossJoin(tables) => write!(
                f,
                "{tables} are not joined by an equality of columns (a cross or non-equi join)"
            ),
            R::Subquery => f.write_str("uses a subquery; subqueries are not cached yet"),
            R::SetOperation => f.write_str("uses UNION, INTERSECT or EXCEPT; not cached yet"),
            R::Values => f.write_str("is a VALUES list"),
            R::Cte => f.write_str("uses WITH; common table expressions are not cached yet"),
        }
    }
}

impl Reason {
    /// A short stable name of the variant, for metrics labels and tests.
    pub fn code(&self) -> &'static str {
        use Reason as R;
        match self {
            R::ParseError(_) => "parse_error",
            R::MultipleStatements(_) => "multiple_statements",
            R::Empty => "empty",
            R::NotAQuery(_) => "not_a_query",
            R::SelectInto => "select_into",
            R::DataModifyingCte => "data_modifying_cte",
            R::Locking(_) => "locking",
            R::Unsupported(_) => "unsupported",
            R::NoTable => "no_table",
            R::UnknownSearchPath => "unknown_search_path",
            R::SessionTempObjects(_) => "session_temp_objects",
            R::UnknownTable(_) => "unknown_table",
            R::AmbiguousTable { .. } => "ambiguous_table",
            R::DuplicateTableName(_) => "duplicate_table_name",
            R::SystemCatalog(_) => "system_catalog",
            R::View(_) => "view",
            R::MaterializedView(_) => "materialized_view",
            R::ForeignTable(_) => "foreign_table",
            R::Sequence(_) => "sequence",
            R::PartitionedTable(_) => "partitioned_table",
            R::InheritanceParent(_) => "inheritance_parent",
            R::OtherRelation(_) => "other_relation",
            R::TemporaryTable(_) => "temporary_table",
            R::UnloggedTable(_) => "unlogged_table",
            R::RowLevelSecurity(_) => "row_level_security",
            R::NoPrimaryKey(_) => "no_primary_key",
            R::GeneratedColumns(_) => "generated_columns",
            R::NoPublication => "no_publication",
            R::NotPublished { .. } => "not_published",
            R::PublicationFilter { .. } => "publication_filter",
            R::PublicationOmits { .. } => "publication_omits",
            R::UnknownColumn(_) => "unknown_column",
            R::AmbiguousColumn(_) => "ambiguous_column",
            R::SystemColumn(_) => "system_column",
            R::NonImmutableFunction { .. } => "non_immutable_function",
            R::NonImmutableOperator { .. } => "non_immutable_operator",
            R::NonImmutableCast { .. } => "non_immutable_cast",
            R::NonImmutableInput { .. } => "non_immutable_input",
            R::SqlValueFunction(_) => "sql_value_function",
            R::UnknownFunction(_) => "unknown_function",
            R::UnknownOperator(_) => "unknown_operator",
            R::UnknownType(_) => "unknown_type",
            R::UncertainTypes(_) => "uncertain_types",
            R::SetReturningFunction(_) => "set_returning_function",
            R::NotAPlainFunction(_) => "not_a_plain_function",
            R::OuterJoin(_) => "outer_join",
            R::JoinUsing => "join_using",
            R::CrossJoin(_) => "cross_join",
            R::Subquery => "subquery",
            R::SetOperation => "set_operation",
            R::Values => "values",
            R::Cte => "cte",
        }
    }
}
