//! Loading a [`Snapshot`] from the origin: the only I/O of the catalog module.

use std::collections::HashMap;
use std::fmt;

use tokio_postgres::{Client, Row};

use super::{
    Cast, CastContext, Column, Function, FunctionKind, Membership, Oid, Operator, Persistence,
    Publication, RelKind, ReplicaIdentity, Schema, Snapshot, SnapshotBuilder, Table, Type,
    TypeKind, Volatility,
};

/// Why the catalog could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum CatalogError {
    /// A catalog query failed (connection lost, permission denied, …).
    Query {
        what: &'static str,
        source: tokio_postgres::Error,
    },
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::Query { what, source } => {
                write!(f, "could not read {what} from the origin: {source}")
            }
        }
    }
}

impl std::error::Error for CatalogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CatalogError::Query { source, .. } => Some(source),
        }
    }
}

/// Relation kinds the snapshot keeps (indexes, TOAST tables and composite
/// types are never named in a `FROM` clause).
const RELKINDS: &str = "('r', 'p', 'v', 'm', 'f', 'S')";

const SCHEMAS: &str = "SELECT oid, nspname::text FROM pg_catalog.pg_namespace";

const RELATIONS: &str = "SELECT c.oid, c.relnamespace, c.relname::text, c.relkind::text, \
     c.relpersistence::text, c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text, \
     c.relispartition, c.relhassubclass, \
     c.relhastriggers OR c.relhasrules OR EXISTS (\
       SELECT 1 FROM pg_catalog.pg_depend dep \
       JOIN pg_catalog.pg_proc p ON p.oid = dep.refobjid \
       WHERE dep.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
         AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace \
         AND ((dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
               AND dep.objid IN (SELECT d.oid FROM pg_catalog.pg_attrdef d WHERE d.adrelid = c.oid)) \
           OR (dep.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass \
               AND dep.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid)) \
           OR (dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
               AND dep.objid IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid)))) \
     FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')";

const PRIMARY_KEYS: &str =
    "SELECT conrelid, conkey FROM pg_catalog.pg_constraint WHERE contype = 'p'";

const TYPES: &str = "SELECT t.oid, t.typnamespace, t.typname::text, t.typtype::text, \
     t.typcategory::text, t.typispreferred, t.typelem, t.typarray, t.typbasetype, \
     p.proname::text, p.provolatile::text, o.provolatile::text \
     FROM pg_catalog.pg_type t JOIN pg_catalog.pg_proc p ON p.oid = t.typinput \
     JOIN pg_catalog.pg_proc o ON o.oid = t.typoutput";

const ENUMS: &str = "SELECT enumtypid, enumlabel::text FROM pg_catalog.pg_enum \
     ORDER BY enumtypid, enumsortorder";

const FUNCTIONS: &str = "SELECT p.oid, p.pronamespace, p.proname::text, p.prokind::text, \
     p.provolatile::text, p.proretset, p.prorettype, p.proargtypes::oid[], p.pronargdefaults, \
     p.provariadic FROM pg_catalog.pg_proc p";

const OPERATORS: &str = "SELECT o.oid, o.oprnamespace, o.oprname::text, o.oprleft, o.oprright, \
     o.oprresult, o.oprcode::oid, p.provolatile::text \
     FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode";

// A cast is as volatile as its function; binary-coercible casts run nothing;
// I/O conversion casts run the source's output and the target's input
// function ('i' < 's' < 'v', so GREATEST is the stricter).
const CASTS: &str = "SELECT c.castsource, c.casttarget, c.castcontext::text, \
     CASE c.castmethod \
       WHEN 'f' THEN (SELECT provolatile FROM pg_catalog.pg_proc WHERE oid = c.castfunc)::text \
       WHEN 'b' THEN 'i' \
       ELSE GREATEST( \
         (SELECT po.provolatile FROM pg_catalog.pg_type s \
            JOIN pg_catalog.pg_proc po ON po.oid = s.typoutput WHERE s.oid = c.castsource), \
         (SELECT pi.provolatile FROM pg_catalog.pg_type t \
            JOIN pg_catalog.pg_proc pi ON pi.oid = t.typinput WHERE t.oid = c.casttarget))::text \
     END \
     FROM pg_catalog.pg_cast c";

const PUBLICATION: &str = "SELECT pubname::text, puballtables, pubinsert, pubupdate, pubdelete, \
     pubtruncate, pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1";

const PUBLISHED_TABLES: &str = "SELECT c.oid FROM pg_catalog.pg_publication_tables pt \
     JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname \
     JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename \
     WHERE pt.pubname = $1";

// PostgreSQL 15+: row filters and column lists of the publication's tables.
const PUBLICATION_FILTERS: &str = "SELECT pr.prrelid, pr.prqual IS NOT NULL, \
     pr.prattrs IS NOT NULL FROM pg_catalog.pg_publication_rel pr \
     JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1";

fn query_err(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> CatalogError {
    move |source| CatalogError::Query { what, source }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, CatalogError> {
    r.try_get(i).map_err(query_err("a catalog row"))
}

fn byte(s: &str) -> u8 {
    s.as_bytes().first().copied().unwrap_or(0)
}

fn oid_opt(o: u32) -> Option<Oid> {
    (o != 0).then_some(Oid(o))
}

/// Load the catalog from `client`, with publication membership for
/// `publication` (every table counts as not published when it is `None` or
/// does not exist).
///
/// Runs in one `REPEATABLE READ READ ONLY` transaction so all objects come
/// from the same catalog state; the client must not be used by anything else
/// meanwhile. Cost: one round trip per catalog, a few thousand rows in all
/// (every function and operator of `pg_catalog` is included).
pub async fn load(client: &Client, publication: Option<&str>) -> Result<Snapshot, CatalogError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(query_err("a catalog transaction"))?;
    let result = load_in_transaction(client, publication).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client
        .batch_execute(end)
        .await
        .map_err(query_err("a catalog transaction"));
    let snapshot = result?;
    ended?;
    Ok(snapshot)
}

async fn load_in_transaction(
    client: &Client,
    publication: Option<&str>,
) -> Result<Snapshot, CatalogError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(query_err("the server version"))
        .and_then(|r| get(&r, 0))?;

    let mut b = SnapshotBuilder::new();
    for r in client
        .query(SCHEMAS, &[])
        .await
        .map_err(query_err("schemas (pg_namespace)"))?
    {
        b.schema(Schema {
            oid: Oid(get(&r, 0)?),
            name: get(&r, 1)?,
        });
    }

    let publication_row = match publication {
        Some(name) => client
            .query_opt(PUBLICATION, &[&name])
            .await
            .map_err(query_err("the publication (pg_publication)"))?,
        None => None,
    };
    let publication = match &publication_row {
        Some(r) => Some(Publication {
            name: get(r, 0)?,
            all_tables: get(r, 1)?,
            insert: get(r, 2)?,
            update: get(r, 3)?,
            delete: get(r, 4)?,
            truncate: get(r, 5)?,
            via_root: get(r, 6)?,
        }),
        None => None,
    };
    let mut membership: HashMap<u32, Membership> = HashMap::new();
    if let Some(p) = &publication {
        for r in client
            .query(PUBLISHED_TABLES, &[&p.name])
            .await
            .map_err(query_err("publication membership (pg_publication_tables)"))?
        {
            membership.insert(get(&r, 0)?, Membership::Published);
        }
        if version >= 150_000 {
            for r in client
                .query(PUBLICATION_FILTERS, &[&p.name])
                .await
                .map_err(query_err("publication filters (pg_publication_rel)"))?
            {
                let (rel, row_filter, column_list): (u32, bool, bool) =
                    (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
                if let Some(m) = membership.get_mut(&rel) {
                    if row_filter {
                        *m = Membership::RowFilter;
                    } else if column_list {
                        *m = Membership::ColumnList;
                    }
                }
            }
        }
    }

    let mut primary_keys: HashMap<u32, Vec<i16>> = HashMap::new();
    for r in client
        .query(PRIMARY_KEYS, &[])
        .await
        .map_err(query_err("primary keys (pg_constraint)"))?
    {
        primary_keys.insert(get(&r, 0)?, get(&r, 1)?);
    }

    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    let column_sql = format!(
        "SELECT a.attrelid, a.attnum, a.attname::text, a.atttypid, a.atttypmod, a.attcollation, \
         a.attnotnull, a.attgenerated <> '' FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         WHERE c.relkind IN {RELKINDS} AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum"
    );
    for r in client
        .query(&column_sql, &[])
        .await
        .map_err(query_err("columns (pg_attribute)"))?
    {
        columns.entry(get(&r, 0)?).or_default().push(Column {
            attnum: get(&r, 1)?,
            name: get(&r, 2)?,
            type_oid: Oid(get(&r, 3)?),
            typmod: get(&r, 4)?,
            collation: Oid(get(&r, 5)?),
            not_null: get(&r, 6)?,
            generated: get(&r, 7)?,
        });
    }

    for r in client
        .query(RELATIONS, &[])
        .await
        .map_err(query_err("relations (pg_class)"))?
    {
        let oid: u32 = get(&r, 0)?;
        b.table(Table {
            oid: Oid(oid),
            schema: Oid(get(&r, 1)?),
            name: get(&r, 2)?,
            kind: RelKind::from_byte(byte(get::<&str>(&r, 3)?)),
            persistence: Persistence::from_byte(byte(get(&r, 4)?)),
            row_security: get(&r, 5)?,
            force_row_security: get(&r, 6)?,
            replica_identity: ReplicaIdentity::from_byte(byte(get(&r, 7)?)),
            is_partition: get(&r, 8)?,
            has_children: get(&r, 9)?,
            write_side_effects: get(&r, 10)?,
            columns: columns.remove(&oid).unwrap_or_default(),
            primary_key: primary_keys.remove(&oid).unwrap_or_default(),
            membership: membership
                .get(&oid)
                .copied()
                .unwrap_or(Membership::NotPublished),
        });
    }

    let mut enum_labels: HashMap<u32, Vec<String>> = HashMap::new();
    for r in client
        .query(ENUMS, &[])
        .await
        .map_err(query_err("enum labels (pg_enum)"))?
    {
        enum_labels
            .entry(get(&r, 0)?)
            .or_default()
            .push(get(&r, 1)?);
    }
    for r in client
        .query(TYPES, &[])
        .await
        .map_err(query_err("types (pg_type)"))?
    {
        let oid: u32 = get(&r, 0)?;
        b.type_(Type {
            oid: Oid(oid),
            schema: Oid(get(&r, 1)?),
            name: get(&r, 2)?,
            kind: TypeKind::from_byte(byte(get::<&str>(&r, 3)?)),
            category: byte(get(&r, 4)?),
            preferred: get(&r, 5)?,
            element: oid_opt(get(&r, 6)?),
            array: oid_opt(get(&r, 7)?),
            base: oid_opt(get(&r, 8)?),
            input_function: get(&r, 9)?,
            input_volatility: Volatility::from_byte(byte(get(&r, 10)?)),
            output_volatility: Volatility::from_byte(byte(get(&r, 11)?)),
            enum_labels: enum_labels.remove(&oid).unwrap_or_default(),
        });
    }

    for r in client
        .query(FUNCTIONS, &[])
        .await
        .map_err(query_err("functions (pg_proc)"))?
    {
        let args: Vec<u32> = get(&r, 7)?;
        let defaults: i16 = get(&r, 8)?;
        b.function(Function {
            oid: Oid(get(&r, 0)?),
            schema: Oid(get(&r, 1)?),
            name: get(&r, 2)?,
            kind: FunctionKind::from_byte(byte(get::<&str>(&r, 3)?)),
            volatility: Volatility::from_byte(byte(get(&r, 4)?)),
            returns_set: get(&r, 5)?,
            result: Oid(get(&r, 6)?),
            args: args.into_iter().map(Oid).collect(),
            arg_defaults: u16::try_from(defaults).unwrap_or(0),
            variadic: oid_opt(get(&r, 9)?),
        });
    }

    for r in client
        .query(OPERATORS, &[])
        .await
        .map_err(query_err("operators (pg_operator)"))?
    {
        b.operator(Operator {
            oid: Oid(get(&r, 0)?),
            schema: Oid(get(&r, 1)?),
            name: get(&r, 2)?,
            left: oid_opt(get(&r, 3)?),
            right: Oid(get(&r, 4)?),
            result: Oid(get(&r, 5)?),
            function: Oid(get(&r, 6)?),
            volatility: Volatility::from_byte(byte(get(&r, 7)?)),
        });
    }

    for r in client
        .query(CASTS, &[])
        .await
        .map_err(query_err("casts (pg_cast)"))?
    {
        let volatility: Option<String> = get(&r, 3)?;
        b.cast(Cast {
            source: Oid(get(&r, 0)?),
            target: Oid(get(&r, 1)?),
            context: CastContext::from_byte(byte(get(&r, 2)?)),
            volatility: Volatility::from_byte(volatility.as_deref().map_or(b'v', byte)),
        });
    }
    b.publication(publication);
    Ok(b.build())
}
