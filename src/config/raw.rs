//! The serde layer: file text → `toml::Table` → overrides applied → raw structs
//! (every table `deny_unknown_fields`) → validated [`Config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::{Table, Value};
use tracing_subscriber::EnvFilter;

use super::units::{self, RawDuration, RawSize};
use super::{
    AdminConfig, CacheConfig, CacheMode, CdcConfig, CdcMode, Config, ConfigError, KEYS,
    LimitsConfig, LogConfig, LogFormat, MAX_MESSAGE_SIZE, MAX_NAME_LENGTH, MIN_MESSAGE_SIZE,
    OriginConfig, Override, OverrideSource, SECTIONS, ShutdownConfig, Source, ValueKind, key_spec,
};

/// The configuration file being loaded.
pub(super) struct File<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "a configuration table")]
struct RawConfig {
    listen: Option<String>,
    origin: RawOrigin,
    limits: RawLimits,
    log: RawLog,
    shutdown: RawShutdown,
    admin: RawAdmin,
    cache: RawCache,
    cdc: RawCdc,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [origin] table")]
struct RawOrigin {
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
    passfile: Option<PathBuf>,
    connect_timeout: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [limits] table")]
struct RawLimits {
    max_message_size: Option<RawSize>,
    max_connections: Option<usize>,
    startup_timeout: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [log] table")]
struct RawLog {
    level: Option<String>,
    format: Option<LogFormat>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [shutdown] table")]
struct RawShutdown {
    timeout: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [admin] table")]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [cache] table")]
struct RawCache {
    mode: Option<CacheMode>,
    admit_after: Option<u32>,
    allow_tables: Option<Vec<String>>,
    deny_tables: Option<Vec<String>>,
    allow_statements: Option<Vec<String>>,
    max_memory: Option<RawSize>,
    max_result_size: Option<RawSize>,
    role_ttl: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default, expecting = "the [cdc] table")]
struct RawCdc {
    mode: Option<CdcMode>,
    publication: Option<String>,
    slot: Option<String>,
    max_lag: Option<RawDuration>,
}

/// Remembers where each value came from, to name it in errors.
struct Origins<'a> {
    file: Option<&'a File<'a>>,
    /// The override that won, per key.
    overrides: Vec<(&'static str, OverrideSource)>,
}

impl Origins<'_> {
    fn source_of(&self, key: &str) -> Source {
        if let Some((_, source)) = self.overrides.iter().rev().find(|(k, _)| *k == key) {
            return (*source).into();
        }
        match self.file {
            Some(file) => Source::File {
                path: file.path.to_path_buf(),
                line: locate(file.text, key),
            },
            None => Source::Default,
        }
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            from: self.source_of(key),
            message: message.into(),
        }
    }
}

pub(super) fn build(file: Option<File<'_>>, overrides: &[Override]) -> Result<Config, ConfigError> {
    let mut table = match &file {
        Some(file) => {
            let table = parse(file)?;
            check_unknown_keys(&table, file)?;
            table
        }
        None => Table::new(),
    };
    let mut origins = Origins {
        file: file.as_ref(),
        overrides: Vec::new(),
    };
    // Environment first, flags last: the last write wins.
    let env = overrides
        .iter()
        .filter(|o| matches!(o.source, OverrideSource::Env(_)));
    let flags = overrides
        .iter()
        .filter(|o| matches!(o.source, OverrideSource::Flag(_)));
    for o in env.chain(flags) {
        apply(&mut table, o)?;
        origins.overrides.push((o.key, o.source));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(Value::Table(table)).map_err(|err| {
        // A bad list item is reported on the list's key, naming the item.
        let mut key = Vec::new();
        let mut item = None;
        for segment in err.path().iter() {
            match segment {
                Segment::Map { key: name } if item.is_none() => key.push(name.as_str()),
                Segment::Seq { index } if item.is_none() => item = Some(index + 1),
                _ => {}
            }
        }
        let message = err.inner().message();
        let key = if key.is_empty() {
            err.path().to_string()
        } else {
            key.join(".")
        };
        match item {
            Some(item) => origins.invalid(&key, format!("item {item}: {message}")),
            None => origins.invalid(&key, message),
        }
    })?;
    validate(raw, &origins)
}

fn parse(file: &File<'_>) -> Result<Table, ConfigError> {
    file.text.parse::<Table>().map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = line_column(file.text, offset);
        ConfigError::Syntax {
            path: file.path.to_path_buf(),
            line,
            column,
            message: err.message().trim_end().to_owned(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The line of a dotted key in the file text, when it is written there.
fn locate(text: &str, key: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut segments = key.split('.').peekable();
    loop {
        let segment = segments.next()?;
        let (k, v) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == segment)?;
        if segments.peek().is_none() {
            return Some(line_column(text, k.span().start).0);
        }
        table = v.get_ref().as_table()?;
    }
}

/// Reject keys pgcache does not know, in file order, with a suggestion.
fn check_unknown_keys(table: &Table, file: &File<'_>) -> Result<(), ConfigError> {
    let mut unknown = Vec::new();
    for (name, value) in table {
        if !name.contains('.') && KEYS.contains(&name.as_str()) {
            continue;
        }
        if SECTIONS.contains(&name.as_str()) {
            // A section that is not a table is a type error, reported by serde.
            if let Value::Table(section) = value {
                unknown.extend(
                    section
                        .keys()
                        .map(|sub| format!("{name}.{sub}"))
                        .filter(|key| !KEYS.contains(&key.as_str())),
                );
            }
            continue;
        }
        unknown.push(name.clone());
    }
    let located = unknown
        .into_iter()
        .map(|key| (locate(file.text, &key), key))
        .min_by(|a, b| a.0.unwrap_or(usize::MAX).cmp(&b.0.unwrap_or(usize::MAX)));
    match located {
        None => Ok(()),
        Some((line, key)) => Err(ConfigError::UnknownKey {
            hint: hint(&key),
            from: Source::File {
                path: file.path.to_path_buf(),
                line,
            },
            key,
        }),
    }
}

/// "did you mean …?" for an unknown dotted key.
fn hint(unknown: &str) -> Option<String> {
    let (section, leaf) = match unknown.split_once('.') {
        Some((section, leaf)) => (Some(section), leaf),
        None => (None, unknown),
    };
    // Close spelling within the same scope: keys of the section, or top-level
    // keys and section names.
    let candidates: Vec<String> = match section {
        Some(section) => KEYS
            .iter()
            .filter(|key| key.split_once('.').is_some_and(|(s, _)| s == section))
            .map(|key| (*key).to_owned())
            .collect(),
        None => KEYS
            .iter()
            .filter(|key| !key.contains('.'))
            .chain(SECTIONS)
            .map(|key| (*key).to_owned())
            .collect(),
    };
    let close = candidates
        .iter()
        .map(|candidate| {
            let candidate_leaf = candidate.rsplit('.').next().unwrap_or(candidate);
            (edit_distance(leaf, candidate_leaf), candidate)
        })
        .filter(|(distance, _)| *distance <= 2 && *distance < leaf.len())
        .min_by_key(|(distance, _)| *distance);
    if let Some((_, candidate)) = close {
        return Some(format!("did you mean {candidate}?"));
    }
    // The right name in the wrong place (`host` at top level → `origin.host`).
    KEYS.iter()
        .find(|key| key.rsplit('.').next() == Some(leaf) && **key != unknown)
        .map(|key| format!("did you mean {key}?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Write one override into the table at its dotted path, typed for its key.
fn apply(table: &mut Table, o: &Override) -> Result<(), ConfigError> {
    let Some(spec) = key_spec(o.key) else {
        return Err(ConfigError::UnknownKey {
            key: o.key.to_owned(),
            from: o.source.into(),
            hint: hint(o.key),
        });
    };
    let value = match spec.kind {
        ValueKind::Integer => o
            .value
            .trim()
            .parse::<i64>()
            .map_or_else(|_| Value::String(o.value.clone()), Value::Integer),
        ValueKind::Text | ValueKind::Secret | ValueKind::Size | ValueKind::Duration => {
            Value::String(o.value.clone())
        }
        ValueKind::List(separator) => Value::Array(
            o.value
                .split(separator)
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
    };
    match spec.key.split_once('.') {
        None => {
            table.insert(spec.key.to_owned(), value);
        }
        Some((section, leaf)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            // If the file made the section something other than a table, leave
            // it: deserializing reports that, naming the file.
            if let Value::Table(section) = entry {
                section.insert(leaf.to_owned(), value);
            }
        }
    }
    Ok(())
}

fn validate(raw: RawConfig, origins: &Origins<'_>) -> Result<Config, ConfigError> {
    let defaults = Config::default();
    let RawConfig {
        listen,
        origin,
        limits,
        log,
        shutdown,
        admin,
        cache,
        cdc,
    } = raw;

    let listen = listen.unwrap_or(defaults.listen);
    check_address(&listen).map_err(|m| origins.invalid("listen", m))?;

    let host = origin.host.unwrap_or(defaults.origin.host);
    if host.trim().is_empty() {
        return Err(origins.invalid("origin.host", "must not be empty"));
    }
    let port = origin.port.unwrap_or(defaults.origin.port);
    if port == 0 {
        return Err(origins.invalid("origin.port", "must be between 1 and 65535, got 0"));
    }
    let database = origin.database.unwrap_or(defaults.origin.database);
    if database.is_empty() {
        return Err(origins.invalid("origin.database", "must not be empty"));
    }
    let user = origin.user.unwrap_or(defaults.origin.user);
    if user.is_empty() {
        return Err(origins.invalid("origin.user", "must not be empty"));
    }
    let connect_timeout = nonzero(
        origin.connect_timeout,
        defaults.origin.connect_timeout,
        "origin.connect_timeout",
        origins,
    )?;

    let max_message_size = match limits.max_message_size {
        None => defaults.limits.max_message_size,
        Some(RawSize(size)) if (MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&size) => {
            usize::try_from(size).map_err(|_| {
                origins.invalid("limits.max_message_size", "too large for this platform")
            })?
        }
        Some(RawSize(size)) => {
            return Err(origins.invalid(
                "limits.max_message_size",
                format!(
                    "must be between {} and {}, got {}",
                    units::format_size(MIN_MESSAGE_SIZE),
                    units::format_size(MAX_MESSAGE_SIZE),
                    units::format_size(size)
                ),
            ));
        }
    };
    let max_connections = limits
        .max_connections
        .unwrap_or(defaults.limits.max_connections);
    if max_connections == 0 {
        return Err(origins.invalid("limits.max_connections", "must be at least 1, got 0"));
    }
    let startup_timeout = nonzero(
        limits.startup_timeout,
        defaults.limits.startup_timeout,
        "limits.startup_timeout",
        origins,
    )?;

    let level = log.level.unwrap_or(defaults.log.level);
    if level.trim().is_empty() {
        return Err(origins.invalid(
            "log.level",
            "must not be empty (use \"off\" to disable logging)",
        ));
    }
    EnvFilter::try_new(&level).map_err(|err| {
        origins.invalid("log.level", format!("not a valid filter directive: {err}"))
    })?;

    let admin_listen = match admin.listen {
        None => defaults.admin.listen,
        Some(listen) if listen.is_empty() => None,
        Some(listen) => {
            check_address(&listen).map_err(|m| origins.invalid("admin.listen", m))?;
            Some(listen)
        }
    };

    Ok(Config {
        listen,
        origin: OriginConfig {
            host,
            port,
            database,
            user,
            password: origin.password.filter(|p| !p.is_empty()),
            passfile: origin.passfile.filter(|p| !p.as_os_str().is_empty()),
            connect_timeout,
        },
        limits: LimitsConfig {
            max_message_size,
            max_connections,
            startup_timeout,
        },
        log: LogConfig {
            level,
            format: log.format.unwrap_or(defaults.log.format),
        },
        shutdown: ShutdownConfig {
            timeout: shutdown.timeout.map_or(defaults.shutdown.timeout, |t| t.0),
        },
        admin: AdminConfig {
            listen: admin_listen,
        },
        cache: cache_config(cache, defaults.cache, origins)?,
        cdc: cdc_config(cdc, defaults.cdc, origins)?,
    })
}

fn cache_config(
    raw: RawCache,
    defaults: CacheConfig,
    origins: &Origins<'_>,
) -> Result<CacheConfig, ConfigError> {
    let admit_after = raw.admit_after.unwrap_or(defaults.admit_after);
    if admit_after == 0 {
        return Err(origins.invalid("cache.admit_after", "must be at least 1, got 0"));
    }
    let allow_tables = table_names(
        raw.allow_tables,
        defaults.allow_tables,
        "cache.allow_tables",
        origins,
    )?;
    let deny_tables = table_names(
        raw.deny_tables,
        defaults.deny_tables,
        "cache.deny_tables",
        origins,
    )?;
    let allow_statements = match raw.allow_statements {
        None => defaults.allow_statements,
        Some(statements) => statements
            .into_iter()
            .map(|statement| match statement.trim() {
                "" => Err(origins.invalid("cache.allow_statements", "contains an empty statement")),
                statement => Ok(statement.to_owned()),
            })
            .collect::<Result<_, _>>()?,
    };
    let max_memory = nonzero_size(
        raw.max_memory,
        defaults.max_memory,
        "cache.max_memory",
        origins,
    )?;
    let max_result_size = nonzero_size(
        raw.max_result_size,
        defaults.max_result_size,
        "cache.max_result_size",
        origins,
    )?;
    if max_result_size > max_memory {
        // Blame the key that was set: max_result_size when it was, else
        // max_memory (set below the default max_result_size).
        return Err(if raw.max_result_size.is_some() {
            origins.invalid(
                "cache.max_result_size",
                format!(
                    "must not exceed cache.max_memory ({}), got {}",
                    units::format_size(max_memory),
                    units::format_size(max_result_size)
                ),
            )
        } else {
            origins.invalid(
                "cache.max_memory",
                format!(
                    "must be at least cache.max_result_size ({}, its default), got {}; \
                     lower cache.max_result_size too",
                    units::format_size(max_result_size),
                    units::format_size(max_memory)
                ),
            )
        });
    }
    let role_ttl = nonzero(raw.role_ttl, defaults.role_ttl, "cache.role_ttl", origins)?;
    Ok(CacheConfig {
        mode: raw.mode.unwrap_or(defaults.mode),
        admit_after,
        allow_tables,
        deny_tables,
        allow_statements,
        max_memory,
        max_result_size,
        role_ttl,
    })
}

fn cdc_config(
    raw: RawCdc,
    defaults: CdcConfig,
    origins: &Origins<'_>,
) -> Result<CdcConfig, ConfigError> {
    let publication = raw.publication.unwrap_or(defaults.publication);
    if publication.is_empty() {
        return Err(origins.invalid("cdc.publication", "must not be empty"));
    }
    check_name(&publication, "publication", false)
        .map_err(|m| origins.invalid("cdc.publication", m))?;
    let slot = match raw.slot {
        None => defaults.slot,
        Some(slot) if slot.is_empty() => None,
        Some(slot) => {
            check_name(&slot, "replication slot", true).map_err(|m| {
                origins.invalid("cdc.slot", format!("{m} (or empty for a temporary slot)"))
            })?;
            Some(slot)
        }
    };
    let max_lag = nonzero(raw.max_lag, defaults.max_lag, "cdc.max_lag", origins)?;
    Ok(CdcConfig {
        mode: raw.mode.unwrap_or(defaults.mode),
        publication,
        slot,
        max_lag,
    })
}

/// A non-empty PostgreSQL name of at most [`MAX_NAME_LENGTH`] bytes, written
/// as a plain identifier: ASCII letters (only lowercase ones when
/// `lowercase_only`, as replication slot names require), digits and
/// underscores, not starting with a digit.
fn check_name(name: &str, what: &str, lowercase_only: bool) -> Result<(), String> {
    let letters = if lowercase_only {
        "lowercase letters"
    } else {
        "letters"
    };
    let valid_char = |c: char| {
        c == '_'
            || c.is_ascii_digit()
            || c.is_ascii_lowercase()
            || (!lowercase_only && c.is_ascii_uppercase())
    };
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "{what} name {name:?} is {} bytes long; at most {MAX_NAME_LENGTH} are allowed",
            name.len()
        ));
    }
    if !name.chars().all(valid_char) || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "invalid {what} name {name:?}: use only {letters}, digits and underscores, \
             not starting with a digit"
        ));
    }
    Ok(())
}

/// Table names as `schema.table` or `table`, trimmed.
fn table_names(
    value: Option<Vec<String>>,
    default: Vec<String>,
    key: &str,
    origins: &Origins<'_>,
) -> Result<Vec<String>, ConfigError> {
    let Some(names) = value else {
        return Ok(default);
    };
    names
        .into_iter()
        .map(|name| {
            let name = name.trim();
            if name.is_empty() {
                return Err(origins.invalid(key, "contains an empty table name"));
            }
            let parts = name.split('.').count();
            if parts > 2 || name.split('.').any(|part| part.trim().is_empty()) {
                return Err(origins.invalid(
                    key,
                    format!("invalid table name {name:?}: expected table or schema.table"),
                ));
            }
            Ok(name.to_owned())
        })
        .collect()
}

fn nonzero_size(
    value: Option<RawSize>,
    default: u64,
    key: &str,
    origins: &Origins<'_>,
) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(RawSize(0)) => Err(origins.invalid(key, "must be greater than 0")),
        Some(RawSize(size)) => Ok(size),
    }
}

fn nonzero(
    value: Option<RawDuration>,
    default: Duration,
    key: &str,
    origins: &Origins<'_>,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(RawDuration(d)) if d.is_zero() => Err(origins.invalid(key, "must be greater than 0")),
        Some(RawDuration(d)) => Ok(d),
    }
}

/// `host:port`; IPv6 literals in brackets; port 0 lets the OS pick a free port.
fn check_address(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "expected host:port (e.g. 127.0.0.1:6432), got {address:?}"
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "missing host in {address:?} (use 0.0.0.0:{port} for all interfaces)"
        ));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("host in {address:?} contains whitespace"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let valid = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if !valid {
            return Err(format!("invalid IPv6 address {host:?} in {address:?}"));
        }
    } else if host.contains(':') {
        return Err(format!(
            "IPv6 addresses need brackets, e.g. [::1]:6432, got {address:?}"
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "invalid port {port:?} in {address:?}: expected 0 to 65535"
        ));
    }
    Ok(())
}
