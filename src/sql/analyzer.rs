//! The entry point: statement text → [`Analysis`], with the two caches that
//! keep the full parse off the hit path.
//!
//! 1. Exact text (plus `standard_conforming_strings`) → the context-free
//!    part of the analysis (kinds, normalized query, parameter values).
//! 2. Scanner key ([`normalize`](super::normalize)) → a template that maps
//!    the literal tokens of any text with that key to the shape's parameters.
//!
//! The verdict depends on the session (catalog snapshot, search_path,
//! temporary objects); each query template memoizes it for the few contexts
//! it is used in. Both maps are bounded `quick_cache` caches (sharded,
//! concurrent, CLOCK-PRO-like eviction), so the analyzer is shared by all
//! sessions.

use std::sync::{Arc, Mutex};

use pg_query::ParserOptions;
use quick_cache::Equivalent;
use quick_cache::sync::Cache;

use crate::catalog::EffectivePath;

use super::ast::{LiteralType, SqlQuery, Statement};
use super::check::{self, Context};
use super::convert::{self, Lift};
use super::kind::StatementKind;
use super::normalize::{self, Scan, Source};
use super::reason::Reason;
use super::shape::{ParamValue, Shape};
use super::typing::ParamTypes;

/// Contexts remembered per query template before the oldest is dropped.
const MEMO_CONTEXTS: usize = 8;

/// Longer texts are analyzed but not remembered: the maps bound entries, not
/// bytes, and statements this long are rarely repeated verbatim.
const MAX_CACHED_TEXT: usize = 16 * 1024;

/// The analysis of one query string.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The kind of each statement, in order (empty when the text does not parse).
    pub kinds: Arc<[StatementKind]>,
    pub verdict: Verdict,
    /// Which path produced it (for metrics and tests).
    pub path: AnalysisPath,
}

/// How an analysis was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisPath {
    /// The exact text was analyzed before.
    ExactText,
    /// The scanner key matched a known shape (literal values differ).
    Normalized,
    /// Full parse.
    Parsed,
}

/// Cacheable with a shape and parameter values, or not with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Cacheable(Cacheable),
    NotCacheable(Reason),
}

/// A cacheable statement: its shape and the values of the lifted parameters
/// (`$(shape.client_params + 1)…`, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cacheable {
    pub shape: Arc<Shape>,
    pub params: Arc<[ParamValue]>,
}

impl Verdict {
    pub fn is_cacheable(&self) -> bool {
        matches!(self, Verdict::Cacheable(_))
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Verdict::NotCacheable(r) => Some(r),
            Verdict::Cacheable(_) => None,
        }
    }
}

/// The session facts the analysis depends on.
#[derive(Clone, Copy, Debug)]
pub struct Session<'a> {
    pub context: Context<'a>,
    /// The session's `standard_conforming_strings` (how backslashes in
    /// string literals are read).
    pub standard_conforming_strings: bool,
}

/// The context-free part of a query's analysis, shared by every text of one
/// shape that was seen.
#[derive(Debug)]
struct QueryTemplate {
    kinds: Arc<[StatementKind]>,
    query: Arc<SqlQuery>,
    client_params: u32,
    lifted_types: Vec<LiteralType>,
    memo: Mutex<Vec<(ContextKey, CheckResult)>>,
}

/// A memoized verdict for one context.
type CheckResult = Result<Arc<Shape>, Reason>;

#[derive(Debug, PartialEq, Eq)]
struct ContextKey {
    generation: u64,
    path: Option<EffectivePath>,
    temp: bool,
}

impl ContextKey {
    fn matches(&self, c: &Context<'_>) -> bool {
        self.generation == c.snapshot.generation()
            && self.temp == c.has_temp_objects
            && self.path.as_ref() == c.search_path
    }
}

impl QueryTemplate {
    fn verdict(&self, ctx: &Context<'_>, params: Arc<[ParamValue]>) -> Verdict {
        if let Ok(memo) = self.memo.lock()
            && let Some((_, r)) = memo.iter().find(|(k, _)| k.matches(ctx))
        {
            return match r {
                Ok(shape) => Verdict::Cacheable(Cacheable {
                    shape: Arc::clone(shape),
                    params,
                }),
                Err(reason) => Verdict::NotCacheable(reason.clone()),
            };
        }
        let types = ParamTypes {
            client: self.client_params,
            lifted: &self.lifted_types,
        };
        let result = check::check(&self.query, types, ctx).map(|c| {
            Arc::new(Shape::new(
                Arc::clone(&self.query),
                self.client_params,
                self.lifted_types.clone(),
                c.tables,
                c.maintenance,
                c.aggregates,
            ))
        });
        if let Ok(mut memo) = self.memo.lock() {
            if memo.len() >= MEMO_CONTEXTS {
                let _evicted = memo.remove(0);
            }
            memo.push((
                ContextKey {
                    generation: ctx.snapshot.generation(),
                    path: ctx.search_path.cloned(),
                    temp: ctx.has_temp_objects,
                },
                result.clone(),
            ));
        }
        match result {
            Ok(shape) => Verdict::Cacheable(Cacheable { shape, params }),
            Err(reason) => Verdict::NotCacheable(reason),
        }
    }
}

/// The context-free analysis of one exact text.
#[derive(Debug)]
enum Prepared {
    /// The verdict does not depend on the session.
    Fixed {
        kinds: Arc<[StatementKind]>,
        reason: Reason,
    },
    Query {
        template: Arc<QueryTemplate>,
        params: Arc<[ParamValue]>,
    },
}

impl Prepared {
    fn analysis(&self, ctx: &Context<'_>, path: AnalysisPath) -> Analysis {
        match self {
            Prepared::Fixed { kinds, reason } => Analysis {
                kinds: Arc::clone(kinds),
                verdict: Verdict::NotCacheable(reason.clone()),
                path,
            },
            Prepared::Query { template, params } => Analysis {
                kinds: Arc::clone(&template.kinds),
                verdict: template.verdict(ctx, Arc::clone(params)),
                path,
            },
        }
    }
}

/// How a scanner key leads to a template's parameters.
#[derive(Debug)]
struct KeyTemplate {
    template: Arc<QueryTemplate>,
    sources: Vec<Source>,
    /// Plain literal tokens that were not lifted, with their exact text.
    fixed: Vec<(usize, Box<str>)>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextKey {
    text: Box<str>,
    scs: bool,
}

#[derive(Hash)]
struct TextKeyRef<'a> {
    text: &'a str,
    scs: bool,
}

impl Equivalent<TextKey> for TextKeyRef<'_> {
    fn equivalent(&self, key: &TextKey) -> bool {
        *self.text == *key.text && self.scs == key.scs
    }
}

/// Statement text → analysis, with bounded caches; shared by all sessions.
pub struct Analyzer {
    by_text: Cache<TextKey, Arc<Prepared>>,
    by_key: Cache<Vec<u8>, Arc<KeyTemplate>>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("texts", &self.by_text.len())
            .field("keys", &self.by_key.len())
            .finish()
    }
}

impl Analyzer {
    /// An analyzer remembering up to `capacity` texts and as many scanner
    /// keys (texts longer than 16 KiB are never remembered).
    pub fn new(capacity: usize) -> Analyzer {
        let capacity = capacity.max(16);
        Analyzer {
            by_text: Cache::new(capacity),
            by_key: Cache::new(capacity),
        }
    }

    /// Analyze `sql` for `session`. Never panics; a text PostgreSQL cannot
    /// parse is [`Reason::ParseError`] (the origin reports the error).
    pub fn analyze(&self, sql: &str, session: &Session<'_>) -> Analysis {
        let scs = session.standard_conforming_strings;
        let ctx = &session.context;
        if sql.len() > MAX_CACHED_TEXT {
            return prepare(sql, scs).0.analysis(ctx, AnalysisPath::Parsed);
        }
        if let Some(p) = self.by_text.get(&TextKeyRef { text: sql, scs }) {
            return p.analysis(ctx, AnalysisPath::ExactText);
        }
        let scan = normalize::scan(sql, scs);
        if let Some(scan) = &scan
            && let Some(kt) = self.by_key.get(scan.key.as_slice())
            && let Some(params) = key_params(sql, scan, &kt)
        {
            return Analysis {
                kinds: Arc::clone(&kt.template.kinds),
                verdict: kt.template.verdict(ctx, params.into()),
                path: AnalysisPath::Normalized,
            };
        }
        let (prepared, locations) = prepare(sql, scs);
        let prepared = Arc::new(prepared);
        self.by_text.insert(
            TextKey {
                text: sql.into(),
                scs,
            },
            Arc::clone(&prepared),
        );
        if let (Some(scan), Some(locations), Prepared::Query { template, .. }) =
            (scan, locations, prepared.as_ref())
            && let Some(kt) = learn(sql, &scan, &locations, template)
        {
            self.by_key.insert(scan.key, Arc::new(kt));
        }
        prepared.analysis(ctx, AnalysisPath::Parsed)
    }

    /// Forget every remembered analysis (e.g. to bound memory after a
    /// catalog refresh; verdicts of older snapshots are never reused anyway).
    pub fn clear(&self) {
        self.by_text.clear();
        self.by_key.clear();
    }
}

/// The parameter values of `sql` through a key template, or `None` when a
/// fixed literal differs or a value has another type than the shape's.
fn key_params(sql: &str, scan: &Scan, kt: &KeyTemplate) -> Option<Vec<ParamValue>> {
    for (i, text) in &kt.fixed {
        let t = scan.tokens.get(*i)?;
        if sql.get(t.start..t.end)? != &**text {
            return None;
        }
    }
    kt.sources
        .iter()
        .zip(&kt.template.lifted_types)
        .map(|(s, ty)| normalize::value(sql, scan, *s, *ty))
        .collect()
}

/// Build a key template from a fully parsed text, if every lifted literal
/// maps to a plain literal token and the scanner path reproduces the values.
fn learn(
    sql: &str,
    scan: &Scan,
    locations: &[usize],
    template: &Arc<QueryTemplate>,
) -> Option<KeyTemplate> {
    let sources = normalize::sources(scan, locations)?;
    let fixed = scan
        .tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| t.literal.is_some() && !sources.iter().any(|s| s.token == *i))
        .map(|(i, t)| Some((i, sql.get(t.start..t.end)?.into())))
        .collect::<Option<Vec<_>>>()?;
    Some(KeyTemplate {
        template: Arc::clone(template),
        sources,
        fixed,
    })
}

/// The full path: parse, convert with lifting, and build the context-free
/// analysis; also the lifted literals' locations for learning a key.
fn prepare(sql: &str, scs: bool) -> (Prepared, Option<Vec<usize>>) {
    let fixed = |kinds: Vec<StatementKind>, reason| {
        (
            Prepared::Fixed {
                kinds: kinds.into(),
                reason,
            },
            None,
        )
    };
    let options = if scs {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = match pg_query::parse(sql, options) {
        Ok(p) => p,
        Err(e) => return fixed(Vec::new(), Reason::ParseError(e.to_string())),
    };
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        let kinds = stmts
            .iter()
            .map(|s| convert::statement(s, Lift::No).statement.kind().clone())
            .collect();
        let reason = if stmts.is_empty() {
            Reason::Empty
        } else {
            Reason::MultipleStatements(stmts.len())
        };
        return fixed(kinds, reason);
    }
    let converted = convert::statement(&stmts[0], Lift::Shape);
    let kind = converted.statement.kind().clone();
    match converted.statement {
        Statement::Query(_) if normalize::has_non_decimal_number(sql) => fixed(
            vec![kind],
            Reason::Unsupported(
                "numbers in hexadecimal, octal, binary or with underscores \
                 (PostgreSQL 16 syntax that older servers reject)"
                    .to_owned(),
            ),
        ),
        Statement::Query(q) => {
            let mut values = Vec::with_capacity(converted.lifted.len());
            let mut types = Vec::with_capacity(converted.lifted.len());
            for l in &converted.lifted {
                match ParamValue::from_literal(&l.literal) {
                    Some(v) => {
                        types.push(v.literal_type());
                        values.push(v);
                    }
                    None => {
                        return fixed(
                            vec![kind],
                            Reason::Unsupported("a literal that could not be lifted".to_owned()),
                        );
                    }
                }
            }
            let template = Arc::new(QueryTemplate {
                kinds: vec![kind].into(),
                query: Arc::new(*q),
                client_params: converted.client_params,
                lifted_types: types,
                memo: Mutex::new(Vec::new()),
            });
            let locations = converted.lifted.iter().map(|l| l.location).collect();
            (
                Prepared::Query {
                    template,
                    params: values.into(),
                },
                Some(locations),
            )
        }
        Statement::Unsupported { construct, kind } => {
            let reason = match kind {
                StatementKind::Select => Reason::Unsupported(construct),
                other => Reason::NotAQuery(other),
            };
            fixed(vec![kind_of(&reason)], reason)
        }
        Statement::Other(kind) => {
            let reason = match &kind {
                StatementKind::SelectInto { .. } => Reason::SelectInto,
                StatementKind::SelectWithWrites => Reason::DataModifyingCte,
                other => Reason::NotAQuery(other.clone()),
            };
            fixed(vec![kind], reason)
        }
    }
}

fn kind_of(reason: &Reason) -> StatementKind {
    match reason {
        Reason::NotAQuery(k) => k.clone(),
        _ => StatementKind::Select,
    }
}

/// Analyze without any cache (always the full parse): for tests, tools and
/// the admin command.
pub fn analyze_uncached(sql: &str, session: &Session<'_>) -> Analysis {
    let (prepared, _) = prepare(sql, session.standard_conforming_strings);
    prepared.analysis(&session.context, AnalysisPath::Parsed)
}

/// Parse `sql` into our AST without lifting literals (the statement as
/// written). Errors are PostgreSQL's parser messages.
pub fn parse(sql: &str, standard_conforming_strings: bool) -> Result<Vec<Statement>, String> {
    let options = if standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let parsed = pg_query::parse(sql, options).map_err(|e| e.to_string())?;
    Ok(parsed
        .protobuf
        .stmts
        .iter()
        .map(|s| convert::statement(s, Lift::No).statement)
        .collect())
}
