//! `search_path`: parsing the setting and turning it into the ordered list of
//! schemas PostgreSQL searches for one session user.

use std::fmt;

use super::{Oid, Snapshot, oids};

/// PostgreSQL truncates identifiers to `NAMEDATALEN - 1` bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// One element of a `search_path` setting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathEntry {
    /// `"$user"`: the schema named like the current user, if it exists.
    User,
    /// `pg_temp`: the session's temporary schema.
    Temp,
    /// Any other schema name (case-folded or as quoted).
    Schema(String),
}

/// A `search_path` setting, as written (schemas need not exist).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SearchPath {
    entries: Vec<PathEntry>,
}

/// Why a `search_path` string could not be parsed (PostgreSQL would reject it too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchPathError {
    /// A quoted identifier is not closed.
    UnterminatedQuote,
    /// An element is empty (`a,,b`) or a zero-length quoted identifier.
    EmptyElement,
    /// Something other than a comma follows an element.
    ExpectedComma(usize),
}

impl fmt::Display for SearchPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchPathError::UnterminatedQuote => f.write_str("unterminated quoted identifier"),
            SearchPathError::EmptyElement => f.write_str("empty schema name"),
            SearchPathError::ExpectedComma(at) => write!(f, "expected a comma at byte {at}"),
        }
    }
}

impl std::error::Error for SearchPathError {}

impl Default for SearchPath {
    /// PostgreSQL's default, `"$user", public`.
    fn default() -> SearchPath {
        SearchPath {
            entries: vec![PathEntry::User, PathEntry::Schema("public".to_owned())],
        }
    }
}

fn entry_for(name: String) -> PathEntry {
    match name.as_str() {
        "$user" => PathEntry::User,
        "pg_temp" => PathEntry::Temp,
        _ => PathEntry::Schema(name),
    }
}

fn truncate_identifier(mut s: String) -> String {
    if s.len() > MAX_IDENTIFIER_BYTES {
        let mut end = MAX_IDENTIFIER_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl SearchPath {
    /// Parse a setting string the way PostgreSQL's `SplitIdentifierString`
    /// does: comma-separated identifiers, double quotes keep case (`""` is a
    /// quote), unquoted names are ASCII-lower-cased, whitespace is ignored.
    pub fn parse(setting: &str) -> Result<SearchPath, SearchPathError> {
        let bytes = setting.as_bytes();
        let mut entries = Vec::new();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        if i == bytes.len() {
            return Ok(SearchPath { entries });
        }
        loop {
            skip_ws(&mut i);
            let name = if bytes.get(i) == Some(&b'"') {
                let mut name = String::new();
                let mut j = i + 1;
                loop {
                    let Some(rest) = setting.get(j..) else {
                        return Err(SearchPathError::UnterminatedQuote);
                    };
                    let Some(q) = rest.find('"') else {
                        return Err(SearchPathError::UnterminatedQuote);
                    };
                    name.push_str(&rest[..q]);
                    j += q + 1;
                    if bytes.get(j) == Some(&b'"') {
                        name.push('"');
                        j += 1;
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    return Err(SearchPathError::EmptyElement);
                }
                i = j;
                name
            } else {
                let start = i;
                while i < bytes.len() && bytes[i] != b',' && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i == start {
                    return Err(SearchPathError::EmptyElement);
                }
                setting[start..i].to_ascii_lowercase()
            };
            entries.push(entry_for(truncate_identifier(name)));
            skip_ws(&mut i);
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(SearchPathError::ExpectedComma(i)),
            }
        }
        Ok(SearchPath { entries })
    }

    /// From the values of `SET search_path TO a, "B", 'c d'`: each value is
    /// one schema name exactly as the parser produced it.
    pub fn from_values<S: AsRef<str>>(values: &[S]) -> SearchPath {
        SearchPath {
            entries: values
                .iter()
                .map(|v| entry_for(truncate_identifier(v.as_ref().to_owned())))
                .collect(),
        }
    }

    pub fn entries(&self) -> &[PathEntry] {
        &self.entries
    }

    /// The schemas searched, in order, for `user` (the current user, for
    /// `$user`) in `snapshot`. Schemas that do not exist are skipped, as
    /// PostgreSQL does.
    ///
    /// Schema privileges are not considered (PostgreSQL skips schemas the user
    /// may not use); the analysis compensates by refusing names found in more
    /// than one schema of the path.
    pub fn effective(&self, snapshot: &Snapshot, user: &str) -> EffectivePath {
        let mut slots = Vec::new();
        let mut temp_listed = false;
        let mut catalog_listed = false;
        for entry in &self.entries {
            let slot = match entry {
                PathEntry::User => snapshot
                    .schema_by_name(user)
                    .map(|s| PathSlot::Schema(s.oid)),
                PathEntry::Temp => {
                    temp_listed = true;
                    Some(PathSlot::Temp)
                }
                PathEntry::Schema(name) => snapshot.schema_by_name(name).map(|s| {
                    if s.oid == oids::PG_CATALOG {
                        catalog_listed = true;
                    }
                    PathSlot::Schema(s.oid)
                }),
            };
            if let Some(slot) = slot
                && !slots.contains(&slot)
            {
                slots.push(slot);
            }
        }
        if !catalog_listed {
            slots.insert(0, PathSlot::Schema(oids::PG_CATALOG));
        }
        if !temp_listed {
            slots.insert(0, PathSlot::Temp);
        }
        EffectivePath { slots }
    }
}

impl fmt::Display for SearchPath {
    /// The setting string, with names quoted where PostgreSQL would.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match e {
                PathEntry::User => f.write_str("\"$user\"")?,
                PathEntry::Temp => f.write_str("pg_temp")?,
                PathEntry::Schema(s) => {
                    let plain = s.bytes().enumerate().all(|(i, b)| {
                        b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit())
                    }) && !s.is_empty();
                    if plain {
                        f.write_str(s)?;
                    } else {
                        write!(f, "\"{}\"", s.replace('"', "\"\""))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One place PostgreSQL looks for an unqualified name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathSlot {
    /// The session's temporary schema (relations and types only).
    Temp,
    Schema(Oid),
}

/// The schemas searched for unqualified names, in order, for one session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EffectivePath {
    slots: Vec<PathSlot>,
}

impl EffectivePath {
    /// All slots in search order, `pg_temp` included (relations and types).
    pub fn slots(&self) -> &[PathSlot] {
        &self.slots
    }

    /// The schemas searched for functions and operators (never `pg_temp`).
    pub fn schemas(&self) -> impl Iterator<Item = Oid> + '_ {
        self.slots.iter().filter_map(|s| match s {
            PathSlot::Schema(o) => Some(*o),
            PathSlot::Temp => None,
        })
    }

    /// Position of `schema` in the function search order, if searched.
    pub fn rank(&self, schema: Oid) -> Option<usize> {
        self.schemas().position(|s| s == schema)
    }
}
