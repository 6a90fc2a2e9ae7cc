//! The origin's catalog as the SQL analysis needs it: schemas, relations and
//! their columns and keys, types, functions and operators with their
//! volatility, casts, and the proxy's publication.
//!
//! A [`Snapshot`] is an immutable, indexed copy loaded from the origin by
//! [`load`] (the only I/O in this module) or built by hand with
//! [`SnapshotBuilder`] (tests, [`fixture`]). Refreshing is loading again: the
//! caller decides when (after DDL, on a relation message from the change
//! stream) and swaps the `Arc<Snapshot>` it hands to the analysis.
//!
//! Name resolution follows PostgreSQL: a [`SearchPath`] (parsed from the
//! setting) becomes an [`EffectivePath`] of schema OIDs for one session user,
//! with `pg_catalog` (and for relations `pg_temp`) searched first unless the
//! path lists them.
//!
//! This module never decides cacheability; it reports facts.

mod builder;
pub mod fixture;
mod load;
mod model;
mod search_path;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use builder::SnapshotBuilder;
pub use load::{CatalogError, load};
pub use model::{
    Cast, CastContext, Column, Function, FunctionKind, Membership, Oid, Operator, Persistence,
    Publication, RelKind, ReplicaIdentity, Schema, Table, Type, TypeKind, Volatility,
};
pub use search_path::{EffectivePath, PathEntry, PathSlot, SearchPath, SearchPathError};

/// Well-known OIDs of `pg_catalog` objects (fixed by PostgreSQL's bootstrap catalog).
pub mod oids {
    use super::Oid;

    pub const PG_CATALOG: Oid = Oid(11);
    pub const BOOL: Oid = Oid(16);
    pub const BYTEA: Oid = Oid(17);
    pub const CHAR: Oid = Oid(18);
    pub const NAME: Oid = Oid(19);
    pub const INT8: Oid = Oid(20);
    pub const INT2: Oid = Oid(21);
    pub const INT4: Oid = Oid(23);
    pub const TEXT: Oid = Oid(25);
    pub const OID: Oid = Oid(26);
    pub const JSON: Oid = Oid(114);
    pub const FLOAT4: Oid = Oid(700);
    pub const FLOAT8: Oid = Oid(701);
    pub const UNKNOWN: Oid = Oid(705);
    pub const BPCHAR: Oid = Oid(1042);
    pub const VARCHAR: Oid = Oid(1043);
    pub const DATE: Oid = Oid(1082);
    pub const TIME: Oid = Oid(1083);
    pub const TIMESTAMP: Oid = Oid(1114);
    pub const TIMESTAMPTZ: Oid = Oid(1184);
    pub const INTERVAL: Oid = Oid(1186);
    pub const NUMERIC: Oid = Oid(1700);
    pub const UUID: Oid = Oid(2950);
    pub const JSONB: Oid = Oid(3802);
    pub const BIT: Oid = Oid(1560);
    pub const VARBIT: Oid = Oid(1562);
    pub const ANY: Oid = Oid(2276);
    pub const ANYELEMENT: Oid = Oid(2283);
    pub const ANYARRAY: Oid = Oid(2277);
    pub const ANYNONARRAY: Oid = Oid(2776);
    pub const ANYENUM: Oid = Oid(3500);
    pub const ANYRANGE: Oid = Oid(3831);
    pub const ANYMULTIRANGE: Oid = Oid(4537);
    pub const ANYCOMPATIBLE: Oid = Oid(5077);
    pub const ANYCOMPATIBLEARRAY: Oid = Oid(5078);
    pub const ANYCOMPATIBLENONARRAY: Oid = Oid(5079);
    pub const ANYCOMPATIBLERANGE: Oid = Oid(5080);
    pub const ANYCOMPATIBLEMULTIRANGE: Oid = Oid(4538);
    pub const RECORD: Oid = Oid(2249);
}

/// An immutable, indexed copy of the origin's catalog.
#[derive(Debug)]
pub struct Snapshot {
    /// Distinguishes snapshots (each build gets a new one), so analyses made
    /// against an older catalog are never reused with a newer one.
    generation: u64,
    schemas: HashMap<Oid, Schema>,
    schema_by_name: HashMap<String, Oid>,
    tables: HashMap<Oid, Table>,
    table_by_name: HashMap<(Oid, String), Oid>,
    types: HashMap<Oid, Type>,
    type_by_name: HashMap<(Oid, String), Oid>,
    functions: HashMap<Oid, Function>,
    functions_by_name: HashMap<String, Vec<Oid>>,
    operators: HashMap<Oid, Operator>,
    operators_by_name: HashMap<String, Vec<Oid>>,
    casts: HashMap<(Oid, Oid), Cast>,
    publication: Option<Publication>,
    /// Tables must be in the publication to be cacheable (entries kept
    /// exact by the change stream). Off while the change stream is not
    /// consumed: entries are then dropped by writes through the proxy.
    publication_required: bool,
}

impl Snapshot {
    /// Whether cacheable tables must be published (see the field).
    pub fn publication_required(&self) -> bool {
        self.publication_required
    }

    /// Set whether cacheable tables must be published.
    pub fn set_publication_required(&mut self, required: bool) {
        self.publication_required = required;
    }

    /// A builder for a snapshot made by hand.
    pub fn builder() -> SnapshotBuilder {
        SnapshotBuilder::new()
    }

    /// Unique per built snapshot (process-wide).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn schema(&self, oid: Oid) -> Option<&Schema> {
        self.schemas.get(&oid)
    }

    pub fn schema_by_name(&self, name: &str) -> Option<&Schema> {
        self.schema_by_name
            .get(name)
            .and_then(|o| self.schemas.get(o))
    }

    pub fn table(&self, oid: Oid) -> Option<&Table> {
        self.tables.get(&oid)
    }

    /// The relation `name` in schema `schema`.
    pub fn table_in(&self, schema: Oid, name: &str) -> Option<&Table> {
        self.table_by_name
            .get(&(schema, name.to_owned()))
            .and_then(|o| self.tables.get(o))
    }

    /// Every relation of the snapshot (any order).
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    pub fn type_(&self, oid: Oid) -> Option<&Type> {
        self.types.get(&oid)
    }

    /// Whether `IS NULL` on a value of type `oid` is true exactly when the
    /// value is NULL: a known type that is not composite (a row value is
    /// also "NULL" when every field is), domains followed to their base.
    pub fn plain_null_test(&self, oid: Oid) -> bool {
        let mut t = oid;
        for _ in 0..16 {
            match self.types.get(&t) {
                Some(ty) if ty.kind == TypeKind::Domain => match ty.base {
                    Some(base) => t = base,
                    None => return false,
                },
                Some(ty) => return ty.kind != TypeKind::Composite && ty.kind != TypeKind::Pseudo,
                None => return false,
            }
        }
        false
    }

    /// The type `name` in schema `schema`.
    pub fn type_in(&self, schema: Oid, name: &str) -> Option<&Type> {
        self.type_by_name
            .get(&(schema, name.to_owned()))
            .and_then(|o| self.types.get(o))
    }

    pub fn function(&self, oid: Oid) -> Option<&Function> {
        self.functions.get(&oid)
    }

    /// Every function called `name`, in any schema.
    pub fn functions_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Function> + 'a {
        self.functions_by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|o| self.functions.get(o))
    }

    pub fn operator_by_oid(&self, oid: Oid) -> Option<&Operator> {
        self.operators.get(&oid)
    }

    /// Every operator called `name`, in any schema.
    pub fn operators_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Operator> + 'a {
        self.operators_by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|o| self.operators.get(o))
    }

    /// The cast from `source` to `target`, if `pg_cast` has one.
    pub fn cast(&self, source: Oid, target: Oid) -> Option<&Cast> {
        self.casts.get(&(source, target))
    }

    /// The proxy's publication, when one was named at load time and exists.
    /// Names of functions and procedures outside `pg_catalog` and
    /// `information_schema`: calling one may run anything.
    pub fn user_functions(&self) -> impl Iterator<Item = &str> {
        let info = self.schema_by_name("information_schema").map(|s| s.oid);
        self.functions
            .values()
            .filter(move |f| f.schema != oids::PG_CATALOG && Some(f.schema) != info)
            .map(|f| f.name.as_str())
    }

    pub fn publication(&self) -> Option<&Publication> {
        self.publication.as_ref()
    }

    /// `schema.name` of a relation, for messages.
    pub fn qualified_table_name(&self, table: &Table) -> String {
        let schema = self.schema(table.schema).map_or("?", |s| s.name.as_str());
        format!("{schema}.{}", table.name)
    }
}
