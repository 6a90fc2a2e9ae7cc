//! The project's own SQL AST: what the rest of pgcache reads instead of
//! pg_query's protobuf tree.
//!
//! It covers the queries the cache can serve and a little around them, so the
//! analysis can explain why something is not cacheable. A construct the
//! converter does not fully understand never becomes a guess here: the
//! statement becomes [`Statement::Unsupported`].
//!
//! Identifiers are stored as PostgreSQL's parser leaves them: unquoted names
//! lower-cased, quoted names verbatim.

use super::kind::StatementKind;

/// One statement of a query string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Statement {
    /// A query (`SELECT`, `VALUES`, set operations) fully converted.
    Query(Box<SqlQuery>),
    /// A statement of this kind whose details the converter does not
    /// understand, with the construct it stopped at (e.g. "window functions").
    Unsupported {
        kind: StatementKind,
        construct: String,
    },
    /// Anything that is not a query: classified by kind only.
    Other(StatementKind),
}

impl Statement {
    /// The statement's kind, for routing.
    pub fn kind(&self) -> &StatementKind {
        match self {
            Statement::Query(_) => &StatementKind::Select,
            Statement::Unsupported { kind, .. } | Statement::Other(kind) => kind,
        }
    }
}

/// A possibly schema-qualified name (`schema.name`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub schema: Option<String>,
    pub name: String,
}

impl ObjectName {
    /// An unqualified name.
    pub fn bare(name: impl Into<String>) -> ObjectName {
        ObjectName {
            schema: None,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A complete query: common table expressions, a body, and the clauses that
/// apply to the body's result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SqlQuery {
    pub with: Option<With>,
    pub body: SetExpr,
    pub order_by: Vec<OrderBy>,
    /// `LIMIT n` / `FETCH FIRST n ROWS`; `LIMIT ALL` is `None`.
    pub limit: Option<Expr>,
    /// `FETCH FIRST n ROWS WITH TIES`.
    pub limit_with_ties: bool,
    pub offset: Option<Expr>,
    pub locking: Vec<Locking>,
}

/// `WITH [RECURSIVE] name AS (…), …`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct With {
    pub recursive: bool,
    pub ctes: Vec<Cte>,
}

/// One common table expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cte {
    pub name: String,
    pub columns: Vec<String>,
    pub body: CteBody,
}

/// What a common table expression contains.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CteBody {
    Query(Box<SqlQuery>),
    /// `INSERT`/`UPDATE`/`DELETE`/`MERGE` (a data-modifying CTE).
    Modifying(StatementKind),
}

/// The body of a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SetExpr {
    Select(Box<Select>),
    /// `VALUES (…), (…)`.
    Values(Vec<Vec<Expr>>),
    /// `left UNION|INTERSECT|EXCEPT [ALL] right`.
    SetOperation {
        op: SetOperator,
        all: bool,
        left: Box<SqlQuery>,
        right: Box<SqlQuery>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetOperator {
    Union,
    Intersect,
    Except,
}

/// One `SELECT … FROM … WHERE … GROUP BY … HAVING …` block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Select {
    pub distinct: Distinct,
    pub targets: Vec<SelectItem>,
    /// The `FROM` items; several items are a comma (cross) join.
    pub from: Vec<TableRef>,
    pub selection: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Distinct {
    None,
    /// `SELECT DISTINCT`.
    All,
    /// `SELECT DISTINCT ON (exprs)`.
    On(Vec<Expr>),
}

/// One entry of the target list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SelectItem {
    /// `*`
    Wildcard,
    /// `t.*` (or `s.t.*`): the qualifier's parts.
    QualifiedWildcard(Vec<String>),
    /// `expr [AS alias]`.
    Expr { expr: Expr, alias: Option<String> },
}

/// `AS alias (col, …)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableAlias {
    pub name: String,
    pub columns: Vec<String>,
}

/// A `FROM` item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TableRef {
    Table {
        name: ObjectName,
        alias: Option<TableAlias>,
        /// `ONLY t`: without inheritance children.
        only: bool,
    },
    Join(Box<Join>),
    Subquery {
        query: Box<SqlQuery>,
        alias: Option<TableAlias>,
        lateral: bool,
    },
}

/// `left [kind] JOIN right constraint`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Join {
    pub kind: JoinKind,
    pub left: TableRef,
    pub right: TableRef,
    pub constraint: JoinConstraint,
    pub alias: Option<TableAlias>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JoinConstraint {
    On(Expr),
    Using(Vec<String>),
    Natural,
    /// `CROSS JOIN` (or `JOIN … ON TRUE` written without a condition).
    None,
}

/// `ORDER BY expr [ASC|DESC] [NULLS FIRST|LAST]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderBy {
    pub expr: Expr,
    pub direction: SortDirection,
    pub nulls: NullsOrder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortDirection {
    Default,
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NullsOrder {
    Default,
    First,
    Last,
}

/// `FOR UPDATE|NO KEY UPDATE|SHARE|KEY SHARE [OF t, …] [NOWAIT|SKIP LOCKED]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Locking {
    pub strength: LockStrength,
    pub tables: Vec<ObjectName>,
    pub wait: LockWait,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockStrength {
    Update,
    NoKeyUpdate,
    Share,
    KeyShare,
}

impl LockStrength {
    pub fn sql(self) -> &'static str {
        match self {
            LockStrength::Update => "FOR UPDATE",
            LockStrength::NoKeyUpdate => "FOR NO KEY UPDATE",
            LockStrength::Share => "FOR SHARE",
            LockStrength::KeyShare => "FOR KEY SHARE",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockWait {
    Block,
    NoWait,
    SkipLocked,
}

/// A constant as the parser produced it (`A_Const`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Literal {
    /// An integer that fits `int4` (the scanner's `ICONST`).
    Integer(i32),
    /// Any other number, as written (the scanner's `FCONST`): integers that do
    /// not fit `int4` (and `-2147483648`), decimals, exponents. Its type is
    /// `int4` or `int8` when it is an integer that fits, else `numeric` (see
    /// [`Literal::type_class`]).
    Numeric(String),
    /// A string constant: of type `unknown` until context gives it one.
    String(String),
    /// `B'…'` / `X'…'`, as the parser keeps it (`b…` / `x…`).
    BitString(String),
    Boolean(bool),
    Null,
}

/// The type a literal has before context coerces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiteralType {
    Int4,
    Int8,
    Numeric,
    /// A string literal, resolved from context (`unknown` in PostgreSQL).
    Unknown,
    Bit,
    Bool,
    Null,
}

impl Literal {
    /// The type PostgreSQL's `make_const` gives this constant.
    pub fn type_class(&self) -> LiteralType {
        match self {
            Literal::Integer(_) => LiteralType::Int4,
            Literal::Numeric(text) => numeric_type(text),
            Literal::String(_) => LiteralType::Unknown,
            Literal::BitString(_) => LiteralType::Bit,
            Literal::Boolean(_) => LiteralType::Bool,
            Literal::Null => LiteralType::Null,
        }
    }
}

/// The type `make_const` gives an `FCONST`: an integer that fits `int8` is
/// `int4` when it also fits `int4` (only `-2147483648` can: the grammar
/// folds the minus into `2147483648`), else `int8`; anything else `numeric`.
pub(crate) fn numeric_type(text: &str) -> LiteralType {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return LiteralType::Numeric;
    }
    match text.parse::<i64>() {
        Ok(i) if i32::try_from(i).is_ok() => LiteralType::Int4,
        Ok(_) => LiteralType::Int8,
        Err(_) => LiteralType::Numeric,
    }
}

/// An operator name, possibly qualified (`OPERATOR(pg_catalog.=)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperatorName {
    pub schema: Option<String>,
    pub name: String,
}

impl OperatorName {
    pub fn bare(name: &str) -> OperatorName {
        OperatorName {
            schema: None,
            name: name.to_owned(),
        }
    }
}

impl std::fmt::Display for OperatorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "OPERATOR({s}.{})", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A type name as written, after the grammar's mapping of SQL-standard names
/// (`integer` → `pg_catalog.int4`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeName {
    pub name: ObjectName,
    /// Type modifiers (`varchar(20)` → `[20]`).
    pub modifiers: Vec<Expr>,
    /// Number of array dimensions (`int[]` → 1).
    pub array_dims: u32,
}

/// `IS [NOT] TRUE|FALSE|UNKNOWN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoolTest {
    IsTrue,
    IsNotTrue,
    IsFalse,
    IsNotFalse,
    IsUnknown,
    IsNotUnknown,
}

/// The SQL-standard niladic functions that are grammar, not `pg_proc` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlValueFunction {
    CurrentDate,
    CurrentTime,
    CurrentTimestamp,
    LocalTime,
    LocalTimestamp,
    /// Any of the above with a precision, or a name PostgreSQL may add.
    Other,
}

impl SqlValueFunction {
    pub fn sql(self) -> &'static str {
        match self {
            SqlValueFunction::CurrentDate => "CURRENT_DATE",
            SqlValueFunction::CurrentTime => "CURRENT_TIME",
            SqlValueFunction::CurrentTimestamp => "CURRENT_TIMESTAMP",
            SqlValueFunction::LocalTime => "LOCALTIME",
            SqlValueFunction::LocalTimestamp => "LOCALTIMESTAMP",
            SqlValueFunction::Other => "a SQL value function",
        }
    }
}

/// A function call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunctionCall {
    pub name: ObjectName,
    pub args: Vec<Expr>,
    /// `count(*)`.
    pub star: bool,
    /// `count(DISTINCT x)`.
    pub distinct: bool,
    /// `f(VARIADIC arr)`.
    pub variadic: bool,
    /// `agg(x ORDER BY y)`.
    pub order_by: Vec<OrderBy>,
    /// `agg(x) FILTER (WHERE …)`.
    pub filter: Option<Box<Expr>>,
}

/// The kind of a sub-select in an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubqueryKind {
    /// `EXISTS (…)`
    Exists,
    /// `(SELECT …)` as a value.
    Scalar,
    /// `ARRAY(SELECT …)`
    Array,
    /// `expr op ANY (SELECT …)`, including `expr IN (SELECT …)`.
    Any { expr: Box<Expr>, op: OperatorName },
    /// `expr op ALL (SELECT …)`.
    All { expr: Box<Expr>, op: OperatorName },
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// A column reference: qualifier parts (table or alias, optionally with
    /// schema) and the column name.
    Column {
        qualifier: Vec<String>,
        name: String,
    },
    Literal(Literal),
    /// `$n` (1-based). After shaping, lifted literals are parameters too,
    /// numbered after the client's own.
    Param(u32),
    /// A prefix operator (`-x`, `NOT` is [`Expr::Not`]).
    Prefix {
        op: OperatorName,
        expr: Box<Expr>,
    },
    /// A binary operator, including `LIKE` (`~~`), `ILIKE` (`~~*`) and
    /// `SIMILAR TO` (`~` with `similar_to_escape`), as PostgreSQL's parser
    /// rewrites them.
    Binary {
        op: OperatorName,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    IsBool {
        expr: Box<Expr>,
        test: BoolTest,
    },
    /// `left IS [NOT] DISTINCT FROM right`.
    IsDistinctFrom {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    /// `expr [NOT] IN (list)`.
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `expr [NOT] BETWEEN [SYMMETRIC] low AND high`.
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
        symmetric: bool,
    },
    /// `left op ANY|ALL (array)`.
    AnyAll {
        left: Box<Expr>,
        op: OperatorName,
        right: Box<Expr>,
        all: bool,
    },
    /// `NULLIF(left, right)`.
    NullIf {
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Function(FunctionCall),
    /// `expr::type`, `CAST(expr AS type)`, `type 'literal'`.
    Cast {
        expr: Box<Expr>,
        ty: TypeName,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_result: Option<Box<Expr>>,
    },
    Coalesce(Vec<Expr>),
    Greatest(Vec<Expr>),
    Least(Vec<Expr>),
    /// `ARRAY[…]` (nested brackets are nested arrays).
    Array(Vec<Expr>),
    /// `ROW(…)` or `(a, b)`.
    Row(Vec<Expr>),
    Subquery {
        kind: SubqueryKind,
        query: Box<SqlQuery>,
    },
    SqlValue(SqlValueFunction),
    /// `expr COLLATE name`.
    Collate {
        expr: Box<Expr>,
        collation: ObjectName,
    },
    /// `expr[i]`, `expr[i][j]`, `expr[lo:hi]` (either bound may be left
    /// out of a slice): one `(lower, upper)` per bracket, `lower` only in
    /// slices. Any slice bracket makes the whole subscript a slice.
    Subscript {
        expr: Box<Expr>,
        indices: Vec<(Option<Expr>, Option<Expr>)>,
        slice: bool,
    },
}

impl Expr {
    /// Call `f` on every expression of this tree, children first, `self`
    /// last. Sub-select bodies are not entered (their own clauses are theirs).
    pub fn for_each_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        match self {
            Expr::Column { .. } | Expr::Literal(_) | Expr::Param(_) | Expr::SqlValue(_) => {}
            Expr::Prefix { expr, .. }
            | Expr::Not(expr)
            | Expr::IsNull { expr, .. }
            | Expr::IsBool { expr, .. }
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. } => expr.for_each_mut(f),
            Expr::Binary { left, right, .. }
            | Expr::IsDistinctFrom { left, right, .. }
            | Expr::AnyAll { left, right, .. }
            | Expr::NullIf { left, right } => {
                left.for_each_mut(f);
                right.for_each_mut(f);
            }
            Expr::And(list)
            | Expr::Or(list)
            | Expr::Coalesce(list)
            | Expr::Greatest(list)
            | Expr::Least(list)
            | Expr::Array(list)
            | Expr::Row(list) => list.iter_mut().for_each(|e| e.for_each_mut(f)),
            Expr::InList { expr, list, .. } => {
                expr.for_each_mut(f);
                list.iter_mut().for_each(|e| e.for_each_mut(f));
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                expr.for_each_mut(f);
                low.for_each_mut(f);
                high.for_each_mut(f);
            }
            Expr::Function(call) => {
                call.args.iter_mut().for_each(|e| e.for_each_mut(f));
                call.order_by
                    .iter_mut()
                    .for_each(|o| o.expr.for_each_mut(f));
                if let Some(x) = &mut call.filter {
                    x.for_each_mut(f);
                }
            }
            Expr::Case {
                operand,
                whens,
                else_result,
            } => {
                if let Some(o) = operand {
                    o.for_each_mut(f);
                }
                for (c, r) in whens {
                    c.for_each_mut(f);
                    r.for_each_mut(f);
                }
                if let Some(e) = else_result {
                    e.for_each_mut(f);
                }
            }
            Expr::Subscript { expr, indices, .. } => {
                expr.for_each_mut(f);
                for (lower, upper) in indices {
                    lower
                        .iter_mut()
                        .chain(upper)
                        .for_each(|e| e.for_each_mut(f));
                }
            }
            Expr::Subquery { kind, .. } => match kind {
                SubqueryKind::Any { expr, .. } | SubqueryKind::All { expr, .. } => {
                    expr.for_each_mut(f)
                }
                SubqueryKind::Exists | SubqueryKind::Scalar | SubqueryKind::Array => {}
            },
        }
        f(self);
    }
}
