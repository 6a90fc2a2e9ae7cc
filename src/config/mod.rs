//! Configuration: `pgcache.toml` + `PGCACHE_…` environment variables + CLI flags,
//! validated into a [`Config`]. Every error names the offending key and where it
//! came from (file, environment variable or flag).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod passfile;
mod raw;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
mod units;
pub(crate) use units::parse_duration;

/// Validated configuration of one pgcache process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the proxy accepts client connections on (`host:port`).
    pub listen: String,
    /// The origin PostgreSQL server.
    pub origin: OriginConfig,
    /// Protocol and connection limits.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Admin HTTP endpoint (`/metrics`, `/healthz`).
    pub admin: AdminConfig,
    /// The result cache.
    pub cache: CacheConfig,
    /// Change data capture: how cached results follow changes on the origin.
    pub cdc: CdcConfig,
}

/// Where the origin is and how the proxy's own connections (check, CDC, population)
/// authenticate. Client sessions always authenticate end to end with their own
/// credentials; these credentials are never used for them.
#[derive(Clone, PartialEq)]
pub struct OriginConfig {
    /// Host name, IP address, or a directory holding the Unix socket (starts with `/`).
    pub host: String,
    /// TCP port, or the suffix of the socket file name (`.s.PGSQL.<port>`).
    pub port: u16,
    /// Database for the proxy's own connections.
    pub database: String,
    /// User for the proxy's own connections.
    pub user: String,
    /// Password for the proxy's own connections; never printed by `Debug`.
    pub password: Option<String>,
    /// A libpq-style passfile (`host:port:database:user:password`), used when
    /// `password` is not set.
    pub passfile: Option<PathBuf>,
    /// How long one attempt to reach the origin may take.
    pub connect_timeout: Duration,
}

/// Protocol and connection limits.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Largest frontend message accepted, in bytes (type byte excluded, length
    /// field included, as in the protocol). Larger → ErrorResponse 08P01, close.
    pub max_message_size: usize,
    /// Most client connections served at once; more are refused with 53300.
    pub max_connections: usize,
    /// Time a client may take to send its startup packet.
    pub startup_timeout: Duration,
}

/// Logging.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A `tracing` env-filter directive, e.g. `info` or `pgcache=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq)]
pub struct ShutdownConfig {
    /// How long in-flight statements may run after SIGINT/SIGTERM before their
    /// connections are closed.
    pub timeout: Duration,
}

/// Admin HTTP endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Address of the admin HTTP endpoint; `None` disables it.
    pub listen: Option<String>,
}

/// Which cacheable statements get cache entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Nothing is cached; every statement is relayed.
    Off,
    /// A cacheable shape is admitted once it was seen `cache.admit_after` times.
    Auto,
    /// Only shapes on `cache.allow_tables` / `cache.allow_statements` are admitted.
    Explicit,
}

/// The result cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub mode: CacheMode,
    /// `auto` mode: sightings of a cacheable shape before it is admitted (>= 1).
    pub admit_after: u32,
    /// Tables whose queries may be cached (`explicit` mode; in `auto` mode an
    /// empty list allows every table). Names as `schema.table` or `table`
    /// (any schema).
    pub allow_tables: Vec<String>,
    /// Tables never cached, in either mode (same name forms).
    pub deny_tables: Vec<String>,
    /// `explicit` mode: statements whose shape is admitted (literal values
    /// may differ from the ones written here).
    pub allow_statements: Vec<String>,
    /// Upper bound of the memory held by cached results, in bytes.
    pub max_memory: u64,
    /// Results larger than this (bytes as sent to the client) are not cached.
    pub max_result_size: u64,
    /// How long the origin's successful execution of a shape for a role
    /// lets that role be served the shape's cached results.
    pub role_ttl: Duration,
}

/// How cached results learn about changes on the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CdcMode {
    /// When the cache is on, follow the origin's logical replication stream so
    /// cached results follow every committed change, including writes that do
    /// not pass through the proxy; cached results are served only while the
    /// stream is up and caught up.
    On,
    /// No change stream; only writes that pass through the proxy invalidate
    /// cached results (writes made elsewhere are not seen: use only when every
    /// writer goes through the proxy).
    Off,
}

/// Change data capture.
#[derive(Debug, Clone, PartialEq)]
pub struct CdcConfig {
    pub mode: CdcMode,
    /// Publication the change stream reads. Created `FOR ALL TABLES` when
    /// missing (needs a superuser or a role allowed to create it); an existing
    /// publication is used as it is, and only tables it publishes are cached.
    pub publication: String,
    /// A named persistent replication slot, created when missing; `None` (an
    /// empty `cdc.slot`) uses a temporary slot with a generated name, dropped
    /// by the server when the proxy's replication connection ends.
    pub slot: Option<String>,
    /// When the change stream is further behind the origin than this (or is
    /// down), nothing is served from cache: every statement is forwarded until
    /// the stream has caught up.
    pub max_lag: Duration,
}

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6432";
/// Default `admin.listen`.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9187";
/// The file used when no `--config` / `PGCACHE_CONFIG` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "pgcache.toml";

/// Smallest accepted `limits.max_message_size` (1 KiB).
pub const MIN_MESSAGE_SIZE: u64 = 1 << 10;
/// Largest accepted `limits.max_message_size` (1 GiB).
pub const MAX_MESSAGE_SIZE: u64 = 1 << 30;
/// Default `cdc.publication`.
pub const DEFAULT_CDC_PUBLICATION: &str = "pgcache";
/// Longest PostgreSQL name (publication, replication slot), in bytes
/// (`NAMEDATALEN - 1`).
pub const MAX_NAME_LENGTH: usize = 63;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            origin: OriginConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            shutdown: ShutdownConfig::default(),
            admin: AdminConfig::default(),
            cache: CacheConfig::default(),
            cdc: CdcConfig::default(),
        }
    }
}

impl Default for CdcConfig {
    fn default() -> Self {
        Self {
            mode: CdcMode::On,
            publication: DEFAULT_CDC_PUBLICATION.to_owned(),
            slot: None,
            max_lag: Duration::from_secs(5),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            mode: CacheMode::Off,
            admit_after: 2,
            allow_tables: Vec::new(),
            deny_tables: Vec::new(),
            allow_statements: Vec::new(),
            max_memory: 256 << 20,
            max_result_size: 1 << 20,
            role_ttl: Duration::from_secs(300),
        }
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 5432,
            database: "postgres".to_owned(),
            user: "postgres".to_owned(),
            password: None,
            passfile: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 << 20,
            max_connections: 1000,
            startup_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: Some(DEFAULT_ADMIN_LISTEN.to_owned()),
        }
    }
}

impl fmt::Debug for OriginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("passfile", &self.passfile)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMode::Off => "off",
            CacheMode::Auto => "auto",
            CacheMode::Explicit => "explicit",
        })
    }
}

impl fmt::Display for CdcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CdcMode::On => "on",
            CdcMode::Off => "off",
        })
    }
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// Every configuration key, dotted (`section.key`), in documentation order.
pub const KEYS: &[&str] = &[
    "listen",
    "origin.host",
    "origin.port",
    "origin.database",
    "origin.user",
    "origin.password",
    "origin.passfile",
    "origin.connect_timeout",
    "limits.max_message_size",
    "limits.max_connections",
    "limits.startup_timeout",
    "log.level",
    "log.format",
    "shutdown.timeout",
    "admin.listen",
    "cache.mode",
    "cache.admit_after",
    "cache.allow_tables",
    "cache.deny_tables",
    "cache.allow_statements",
    "cache.max_memory",
    "cache.max_result_size",
    "cache.role_ttl",
    "cdc.mode",
    "cdc.publication",
    "cdc.slot",
    "cdc.max_lag",
];

/// Tables of the file.
pub const SECTIONS: &[&str] = &[
    "origin", "limits", "log", "shutdown", "admin", "cache", "cdc",
];

/// What kind of value a key takes; decides how an override string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A string.
    Text,
    /// A string that must not be echoed (help output hides its env value).
    Secret,
    /// An integer; an override string is read as one when it parses.
    Integer,
    /// Bytes: an integer or a string with a unit (`64MiB`).
    Size,
    /// An integer (seconds) or a string with a unit (`500ms`, `5s`, `2m`, `1h`).
    Duration,
    /// A list of strings: an array in the file; an override string is split
    /// at this separator, each item trimmed and empty items dropped (so an
    /// empty string is an empty list).
    List(char),
}

/// Separator of `cache.allow_tables` / `cache.deny_tables` in an override.
pub const TABLE_LIST_SEPARATOR: char = ',';
/// Separator of `cache.allow_statements` in an override: statements contain
/// commas (`SELECT a, b …`), so they are separated like SQL statements.
pub const STATEMENT_LIST_SEPARATOR: char = ';';

/// How one key is spelled in each source, plus its help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Dotted key in the file, e.g. `origin.port`.
    pub key: &'static str,
    /// Environment variable, e.g. `PGCACHE_ORIGIN_PORT`.
    pub env: &'static str,
    /// Long flag including the dashes, e.g. `--origin-port`.
    pub flag: &'static str,
    /// Placeholder shown in `--help`.
    pub value_name: &'static str,
    /// One-line description.
    pub help: &'static str,
    /// Value type.
    pub kind: ValueKind,
}

const fn spec(
    key: &'static str,
    env: &'static str,
    flag: &'static str,
    value_name: &'static str,
    kind: ValueKind,
    help: &'static str,
) -> KeySpec {
    KeySpec {
        key,
        env,
        flag,
        value_name,
        help,
        kind,
    }
}

/// One [`KeySpec`] per entry of [`KEYS`], same order.
pub const KEY_SPECS: &[KeySpec] = &[
    spec(
        "listen",
        "PGCACHE_LISTEN",
        "--listen",
        "ADDR",
        ValueKind::Text,
        "Address to accept client connections on (host:port)",
    ),
    spec(
        "origin.host",
        "PGCACHE_ORIGIN_HOST",
        "--origin-host",
        "HOST",
        ValueKind::Text,
        "Origin host name, IP address, or Unix socket directory (starting with /)",
    ),
    spec(
        "origin.port",
        "PGCACHE_ORIGIN_PORT",
        "--origin-port",
        "PORT",
        ValueKind::Integer,
        "Origin port",
    ),
    spec(
        "origin.database",
        "PGCACHE_ORIGIN_DATABASE",
        "--origin-database",
        "NAME",
        ValueKind::Text,
        "Database for the proxy's own origin connections",
    ),
    spec(
        "origin.user",
        "PGCACHE_ORIGIN_USER",
        "--origin-user",
        "NAME",
        ValueKind::Text,
        "User for the proxy's own origin connections",
    ),
    spec(
        "origin.password",
        "PGCACHE_ORIGIN_PASSWORD",
        "--origin-password",
        "PASSWORD",
        ValueKind::Secret,
        "Password for the proxy's own origin connections (prefer the env var or a passfile)",
    ),
    spec(
        "origin.passfile",
        "PGCACHE_ORIGIN_PASSFILE",
        "--origin-passfile",
        "FILE",
        ValueKind::Text,
        "libpq-style password file, used when no password is set",
    ),
    spec(
        "origin.connect_timeout",
        "PGCACHE_ORIGIN_CONNECT_TIMEOUT",
        "--origin-connect-timeout",
        "DURATION",
        ValueKind::Duration,
        "Time allowed for one connection attempt to the origin",
    ),
    spec(
        "limits.max_message_size",
        "PGCACHE_LIMITS_MAX_MESSAGE_SIZE",
        "--limits-max-message-size",
        "SIZE",
        ValueKind::Size,
        "Largest frontend message accepted (1KiB..=1GiB)",
    ),
    spec(
        "limits.max_connections",
        "PGCACHE_LIMITS_MAX_CONNECTIONS",
        "--limits-max-connections",
        "N",
        ValueKind::Integer,
        "Most client connections served at once",
    ),
    spec(
        "limits.startup_timeout",
        "PGCACHE_LIMITS_STARTUP_TIMEOUT",
        "--limits-startup-timeout",
        "DURATION",
        ValueKind::Duration,
        "Time a client may take to send its startup packet",
    ),
    spec(
        "log.level",
        "PGCACHE_LOG_LEVEL",
        "--log-level",
        "FILTER",
        ValueKind::Text,
        "Log filter directive, e.g. info or pgcache=debug (RUST_LOG wins when set)",
    ),
    spec(
        "log.format",
        "PGCACHE_LOG_FORMAT",
        "--log-format",
        "text|json",
        ValueKind::Text,
        "Log line format",
    ),
    spec(
        "shutdown.timeout",
        "PGCACHE_SHUTDOWN_TIMEOUT",
        "--shutdown-timeout",
        "DURATION",
        ValueKind::Duration,
        "How long in-flight statements may run after SIGINT/SIGTERM",
    ),
    spec(
        "admin.listen",
        "PGCACHE_ADMIN_LISTEN",
        "--admin-listen",
        "ADDR",
        ValueKind::Text,
        "Address of the admin HTTP endpoint (/metrics, /healthz); empty disables it",
    ),
    spec(
        "cache.mode",
        "PGCACHE_CACHE_MODE",
        "--cache-mode",
        "off|auto|explicit",
        ValueKind::Text,
        "Which cacheable statements are cached: none, those seen often enough, or those allowed",
    ),
    spec(
        "cache.admit_after",
        "PGCACHE_CACHE_ADMIT_AFTER",
        "--cache-admit-after",
        "N",
        ValueKind::Integer,
        "auto mode: sightings of a query shape before it is cached (>= 1)",
    ),
    spec(
        "cache.allow_tables",
        "PGCACHE_CACHE_ALLOW_TABLES",
        "--cache-allow-tables",
        "TABLES",
        ValueKind::List(TABLE_LIST_SEPARATOR),
        "Comma-separated tables (schema.table or table) whose queries may be cached",
    ),
    spec(
        "cache.deny_tables",
        "PGCACHE_CACHE_DENY_TABLES",
        "--cache-deny-tables",
        "TABLES",
        ValueKind::List(TABLE_LIST_SEPARATOR),
        "Comma-separated tables (schema.table or table) never cached; wins over allow_tables",
    ),
    spec(
        "cache.allow_statements",
        "PGCACHE_CACHE_ALLOW_STATEMENTS",
        "--cache-allow-statements",
        "STATEMENTS",
        ValueKind::List(STATEMENT_LIST_SEPARATOR),
        "explicit mode: semicolon-separated statements whose shape may be cached",
    ),
    spec(
        "cache.max_memory",
        "PGCACHE_CACHE_MAX_MEMORY",
        "--cache-max-memory",
        "SIZE",
        ValueKind::Size,
        "Upper bound of the memory held by cached results",
    ),
    spec(
        "cache.max_result_size",
        "PGCACHE_CACHE_MAX_RESULT_SIZE",
        "--cache-max-result-size",
        "SIZE",
        ValueKind::Size,
        "Results larger than this are not cached (at most cache.max_memory)",
    ),
    spec(
        "cache.role_ttl",
        "PGCACHE_CACHE_ROLE_TTL",
        "--cache-role-ttl",
        "DURATION",
        ValueKind::Duration,
        "How long the origin's success for a role lets that role be served cached results",
    ),
    spec(
        "cdc.mode",
        "PGCACHE_CDC_MODE",
        "--cdc-mode",
        "on|off",
        ValueKind::Text,
        "Follow the origin's change stream (on), or see only writes made through the proxy (off)",
    ),
    spec(
        "cdc.publication",
        "PGCACHE_CDC_PUBLICATION",
        "--cdc-publication",
        "NAME",
        ValueKind::Text,
        "Publication the change stream reads; created FOR ALL TABLES when missing",
    ),
    spec(
        "cdc.slot",
        "PGCACHE_CDC_SLOT",
        "--cdc-slot",
        "NAME",
        ValueKind::Text,
        "Persistent replication slot, created when missing; empty uses a temporary slot",
    ),
    spec(
        "cdc.max_lag",
        "PGCACHE_CDC_MAX_LAG",
        "--cdc-max-lag",
        "DURATION",
        ValueKind::Duration,
        "Change-stream lag (or outage) beyond which nothing is served from cache",
    ),
];

/// The spec of a dotted key, if it is one.
pub fn key_spec(key: &str) -> Option<&'static KeySpec> {
    KEY_SPECS.iter().find(|spec| spec.key == key)
}

impl Config {
    /// The value of `key` as it would be written in the file (`"64MiB"`, `"5s"`;
    /// empty for an unset optional key); a list as its override string (items
    /// joined by the key's separator, empty for an empty list). `None` for an
    /// unknown key. The password is never shown.
    pub fn display_value(&self, key: &str) -> Option<String> {
        let optional = |value: Option<String>| value.unwrap_or_default();
        let list = |items: &[String], separator: char| items.join(&format!("{separator} "));
        Some(match key {
            "listen" => self.listen.clone(),
            "origin.host" => self.origin.host.clone(),
            "origin.port" => self.origin.port.to_string(),
            "origin.database" => self.origin.database.clone(),
            "origin.user" => self.origin.user.clone(),
            "origin.password" => optional(
                self.origin
                    .password
                    .as_ref()
                    .map(|_| "<redacted>".to_owned()),
            ),
            "origin.passfile" => optional(
                self.origin
                    .passfile
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            "origin.connect_timeout" => units::format_duration(self.origin.connect_timeout),
            "limits.max_message_size" => units::format_size(self.limits.max_message_size as u64),
            "limits.max_connections" => self.limits.max_connections.to_string(),
            "limits.startup_timeout" => units::format_duration(self.limits.startup_timeout),
            "log.level" => self.log.level.clone(),
            "log.format" => self.log.format.to_string(),
            "shutdown.timeout" => units::format_duration(self.shutdown.timeout),
            "admin.listen" => optional(self.admin.listen.clone()),
            "cache.mode" => self.cache.mode.to_string(),
            "cache.admit_after" => self.cache.admit_after.to_string(),
            "cache.allow_tables" => list(&self.cache.allow_tables, TABLE_LIST_SEPARATOR),
            "cache.deny_tables" => list(&self.cache.deny_tables, TABLE_LIST_SEPARATOR),
            "cache.allow_statements" => {
                list(&self.cache.allow_statements, STATEMENT_LIST_SEPARATOR)
            }
            "cache.max_memory" => units::format_size(self.cache.max_memory),
            "cache.max_result_size" => units::format_size(self.cache.max_result_size),
            "cache.role_ttl" => units::format_duration(self.cache.role_ttl),
            "cdc.mode" => self.cdc.mode.to_string(),
            "cdc.publication" => self.cdc.publication.clone(),
            "cdc.slot" => optional(self.cdc.slot.clone()),
            "cdc.max_lag" => units::format_duration(self.cdc.max_lag),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Sources and errors
// ---------------------------------------------------------------------------

/// A value given outside the file: an environment variable or a CLI flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Dotted key, one of [`KEYS`].
    pub key: &'static str,
    /// The value as given; read according to the key's type.
    pub value: String,
    /// Where it came from.
    pub source: OverrideSource,
}

/// Where an [`Override`] came from. A flag beats an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSource {
    /// Environment variable name, e.g. `PGCACHE_ORIGIN_PORT`.
    Env(&'static str),
    /// Long flag including the dashes, e.g. `--origin-port`.
    Flag(&'static str),
}

impl Override {
    /// An override of `key` from its environment variable. `None` if `key` is
    /// not a configuration key.
    pub fn env(key: &str, value: impl Into<String>) -> Option<Self> {
        let spec = key_spec(key)?;
        Some(Self {
            key: spec.key,
            value: value.into(),
            source: OverrideSource::Env(spec.env),
        })
    }

    /// An override of `key` from its CLI flag. `None` if `key` is not a
    /// configuration key.
    pub fn flag(key: &str, value: impl Into<String>) -> Option<Self> {
        let spec = key_spec(key)?;
        Some(Self {
            key: spec.key,
            value: value.into(),
            source: OverrideSource::Flag(spec.flag),
        })
    }
}

/// Where the offending value of a configuration error came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The configuration file, with the line of the key when known.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
    /// The built-in default.
    Default,
}

impl From<OverrideSource> for Source {
    fn from(source: OverrideSource) -> Self {
        match source {
            OverrideSource::Env(name) => Source::Env(name),
            OverrideSource::Flag(name) => Source::Flag(name),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { path, line: None } => write!(f, "in {}", path.display()),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "in {} line {line}", path.display()),
            Source::Env(name) | Source::Flag(name) => write!(f, "(from {name})"),
            Source::Default => f.write_str("(default)"),
        }
    }
}

/// Why a configuration could not be loaded or used. Every message starts with
/// `invalid configuration:` and names the file, key and source involved.
#[derive(Debug)]
pub enum ConfigError {
    /// The configuration file could not be read (missing, unreadable, not UTF-8).
    Read { path: PathBuf, source: io::Error },
    /// The configuration file is not valid TOML.
    Syntax {
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        message: String,
    },
    /// A key pgcache does not know (a typo is an error, never a silent default).
    UnknownKey {
        /// Dotted key as written, e.g. `origin.hots`.
        key: String,
        /// Where it was written.
        from: Source,
        /// A suggestion such as `did you mean origin.host?`.
        hint: Option<String>,
    },
    /// A key whose value has the wrong type or fails validation.
    Invalid {
        /// Dotted key, e.g. `origin.port` (a table name for a mistyped table).
        key: String,
        /// Where the offending value came from.
        from: Source,
        /// What is wrong with it.
        message: String,
    },
    /// `origin.passfile` could not be read.
    Passfile { path: PathBuf, source: io::Error },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Syntax {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "TOML syntax error in {} line {line}, column {column}: {message}",
                path.display()
            ),
            ConfigError::UnknownKey { key, from, hint } => {
                write!(f, "unknown key {key} {from}")?;
                match hint {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            ConfigError::Invalid { key, from, message } => write!(f, "{key} {from}: {message}"),
            ConfigError::Passfile { path, source } => {
                write!(f, "origin.passfile {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } | ConfigError::Passfile { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Passfile { .. } => Some("origin.passfile"),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Load the configuration: the file at `path` (if any; it must exist when
/// given), then `overrides` (environment variables, then flags, whatever their
/// order in the slice), over the built-in defaults; then validate.
///
/// Environment variables are not read here: the CLI ([`crate::cli`]) turns
/// them into overrides.
pub fn load(path: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            load_str(&text, path, overrides)
        }
        None => raw::build(None, overrides),
    }
}

/// Like [`load`], with the file's contents given as `text`; `path` is only
/// used in error messages.
pub fn load_str(text: &str, path: &Path, overrides: &[Override]) -> Result<Config, ConfigError> {
    raw::build(Some(raw::File { path, text }), overrides)
}
