//! Assembling a [`Snapshot`] from rows (the loader) or by hand (tests).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cast, Function, Oid, Operator, Publication, Schema, Snapshot, Table, Type};

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Collects catalog objects; [`build`](SnapshotBuilder::build) indexes them.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    schemas: Vec<Schema>,
    tables: Vec<Table>,
    types: Vec<Type>,
    functions: Vec<Function>,
    operators: Vec<Operator>,
    casts: Vec<Cast>,
    publication: Option<Publication>,
}

impl SnapshotBuilder {
    pub fn new() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }

    pub fn schema(&mut self, schema: Schema) -> &mut Self {
        self.schemas.push(schema);
        self
    }

    pub fn table(&mut self, table: Table) -> &mut Self {
        self.tables.push(table);
        self
    }

    pub fn type_(&mut self, ty: Type) -> &mut Self {
        self.types.push(ty);
        self
    }

    pub fn function(&mut self, function: Function) -> &mut Self {
        self.functions.push(function);
        self
    }

    pub fn operator(&mut self, operator: Operator) -> &mut Self {
        self.operators.push(operator);
        self
    }

    pub fn cast(&mut self, cast: Cast) -> &mut Self {
        self.casts.push(cast);
        self
    }

    pub fn publication(&mut self, publication: Option<Publication>) -> &mut Self {
        self.publication = publication;
        self
    }

    /// Index everything into a new snapshot with a fresh generation. A later
    /// object with the same OID replaces an earlier one.
    pub fn build(self) -> Snapshot {
        let mut schema_by_name = HashMap::new();
        let mut schemas = HashMap::new();
        for s in self.schemas {
            schema_by_name.insert(s.name.clone(), s.oid);
            schemas.insert(s.oid, s);
        }
        let mut table_by_name = HashMap::new();
        let mut tables = HashMap::new();
        for t in self.tables {
            table_by_name.insert((t.schema, t.name.clone()), t.oid);
            tables.insert(t.oid, t);
        }
        let mut type_by_name = HashMap::new();
        let mut types = HashMap::new();
        for t in self.types {
            type_by_name.insert((t.schema, t.name.clone()), t.oid);
            types.insert(t.oid, t);
        }
        let mut functions_by_name: HashMap<String, Vec<Oid>> = HashMap::new();
        let mut functions = HashMap::new();
        for f in self.functions {
            functions_by_name
                .entry(f.name.clone())
                .or_default()
                .push(f.oid);
            functions.insert(f.oid, f);
        }
        let mut operators_by_name: HashMap<String, Vec<Oid>> = HashMap::new();
        let mut operators = HashMap::new();
        for o in self.operators {
            operators_by_name
                .entry(o.name.clone())
                .or_default()
                .push(o.oid);
            operators.insert(o.oid, o);
        }
        let casts = self
            .casts
            .into_iter()
            .map(|c| ((c.source, c.target), c))
            .collect();
        Snapshot {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            schemas,
            schema_by_name,
            tables,
            table_by_name,
            types,
            type_by_name,
            functions,
            functions_by_name,
            operators,
            operators_by_name,
            casts,
            publication: self.publication,
            publication_required: true,
        }
    }
}
