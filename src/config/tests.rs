//! Tests of configuration loading, validation, overrides and passfiles.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::passfile::{expand_tilde, lookup};
use super::units::{format_duration, format_size, parse_duration, parse_size};
use super::*;

const FILE: &str = "/etc/pgcache.toml";

fn load_toml(text: &str) -> Result<Config, ConfigError> {
    load_str(text, Path::new(FILE), &[])
}

fn ok(text: &str) -> Config {
    load_toml(text).unwrap_or_else(|err| panic!("{text:?}: {err}"))
}

/// The error message for `text`, which must fail.
fn err(text: &str) -> String {
    match load_toml(text) {
        Ok(config) => panic!("{text:?} loaded: {config:?}"),
        Err(err) => err.to_string(),
    }
}

/// Asserts that `text` fails on `key` in the file and the message contains `needle`.
fn fails_on(text: &str, key: &str, needle: &str) {
    let err = load_toml(text).expect_err(text);
    assert_eq!(err.key(), Some(key), "{text:?}: {err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("invalid configuration: {key} in {FILE}")),
        "{text:?}: {message}"
    );
    assert!(message.contains(needle), "{text:?}: {message}");
}

fn env(key: &str, value: &str) -> Override {
    Override::env(key, value).expect("known key")
}

fn flag(key: &str, value: &str) -> Override {
    Override::flag(key, value).expect("known key")
}

// --- defaults -------------------------------------------------------------

#[test]
fn default_equals_empty_file_and_no_file() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(ok("# nothing but a comment\n"), Config::default());
    assert_eq!(load(None, &[]).expect("defaults"), Config::default());
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.listen, "127.0.0.1:6432");
    assert_eq!(c.origin.host, "127.0.0.1");
    assert_eq!(c.origin.port, 5432);
    assert_eq!(c.origin.database, "postgres");
    assert_eq!(c.origin.user, "postgres");
    assert_eq!(c.origin.password, None);
    assert_eq!(c.origin.passfile, None);
    assert_eq!(c.origin.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.max_message_size, 64 << 20);
    assert_eq!(c.limits.max_connections, 1000);
    assert_eq!(c.limits.startup_timeout, Duration::from_secs(10));
    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.shutdown.timeout, Duration::from_secs(30));
    assert_eq!(c.admin.listen.as_deref(), Some("127.0.0.1:9187"));
    assert_eq!(c.cache.mode, CacheMode::Off);
    assert_eq!(c.cache.admit_after, 2);
    assert_eq!(c.cache.allow_tables, Vec::<String>::new());
    assert_eq!(c.cache.deny_tables, Vec::<String>::new());
    assert_eq!(c.cache.allow_statements, Vec::<String>::new());
    assert_eq!(c.cache.max_memory, 256 << 20);
    assert_eq!(c.cache.max_result_size, 1 << 20);
    assert_eq!(c.cache.role_ttl, Duration::from_secs(300));
    assert_eq!(c.display_value("cache.mode").as_deref(), Some("off"));
    assert_eq!(c.display_value("cache.allow_tables").as_deref(), Some(""));
    assert_eq!(
        c.display_value("cache.max_memory").as_deref(),
        Some("256MiB")
    );
    assert_eq!(
        c.display_value("cache.max_result_size").as_deref(),
        Some("1MiB")
    );
    assert_eq!(c.display_value("cache.role_ttl").as_deref(), Some("5m"));
    assert_eq!(c.cdc.mode, CdcMode::On);
    assert_eq!(c.cdc.publication, "pgcache");
    assert_eq!(c.cdc.slot, None);
    assert_eq!(c.cdc.max_lag, Duration::from_secs(5));
    assert_eq!(c.display_value("cdc.mode").as_deref(), Some("on"));
    assert_eq!(
        c.display_value("cdc.publication").as_deref(),
        Some("pgcache")
    );
    assert_eq!(c.display_value("cdc.slot").as_deref(), Some(""));
    assert_eq!(c.display_value("cdc.max_lag").as_deref(), Some("5s"));
}

#[test]
fn keys_and_specs_agree() {
    let spec_keys: Vec<&str> = KEY_SPECS.iter().map(|s| s.key).collect();
    assert_eq!(spec_keys, KEYS);
    let defaults = Config::default();
    for spec in KEY_SPECS {
        let expected_env = format!("PGCACHE_{}", spec.key.replace('.', "_").to_uppercase());
        let expected_flag = format!("--{}", spec.key.replace(['.', '_'], "-"));
        assert_eq!(spec.env, expected_env);
        assert_eq!(spec.flag, expected_flag);
        assert!(defaults.display_value(spec.key).is_some(), "{}", spec.key);
        let section = spec.key.split_once('.').map(|(s, _)| s);
        assert!(
            section.is_none_or(|s| SECTIONS.contains(&s)),
            "{}",
            spec.key
        );
    }
    assert_eq!(defaults.display_value("origin.hots"), None);
}

#[test]
fn display_values_round_trip() {
    // Writing every default back as a string override gives the defaults again.
    let defaults = Config::default();
    let overrides: Vec<Override> = KEYS
        .iter()
        .filter(|key| **key != "origin.password" && **key != "origin.passfile")
        .map(|key| flag(key, &defaults.display_value(key).expect("known key")))
        .collect();
    assert_eq!(load(None, &overrides).expect("defaults"), defaults);
}

#[test]
fn debug_redacts_the_password() {
    let mut c = Config::default();
    c.origin.password = Some("hunter2".into());
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(
        c.display_value("origin.password").as_deref(),
        Some("<redacted>")
    );
}

// --- every section --------------------------------------------------------

#[test]
fn every_section() {
    let c = ok(r#"
        listen = "0.0.0.0:7432"

        [origin]
        host = "db.example.com"
        port = 6543
        database = "app"
        user = "pgcache"
        password = "secret"
        passfile = "~/.pgpass"
        connect_timeout = "750ms"

        [limits]
        max_message_size = "8MiB"
        max_connections = 50
        startup_timeout = 3

        [log]
        level = "pgcache=debug,info"
        format = "json"

        [shutdown]
        timeout = "2m"

        [admin]
        listen = "[::1]:9000"

        [cache]
        mode = "explicit"
        admit_after = 5
        allow_tables = ["public.users", "orders"]
        deny_tables = ["audit.log"]
        allow_statements = ["SELECT id, name FROM users WHERE id = 1"]
        max_memory = "1GiB"
        max_result_size = "8MiB"
        role_ttl = "90s"

        [cdc]
        mode = "off"
        publication = "app_changes"
        slot = "pgcache_1"
        max_lag = "1500ms"
    "#);
    assert_eq!(
        c,
        Config {
            listen: "0.0.0.0:7432".into(),
            origin: OriginConfig {
                host: "db.example.com".into(),
                port: 6543,
                database: "app".into(),
                user: "pgcache".into(),
                password: Some("secret".into()),
                passfile: Some(PathBuf::from("~/.pgpass")),
                connect_timeout: Duration::from_millis(750),
            },
            limits: LimitsConfig {
                max_message_size: 8 << 20,
                max_connections: 50,
                startup_timeout: Duration::from_secs(3),
            },
            log: LogConfig {
                level: "pgcache=debug,info".into(),
                format: LogFormat::Json,
            },
            shutdown: ShutdownConfig {
                timeout: Duration::from_secs(120),
            },
            admin: AdminConfig {
                listen: Some("[::1]:9000".into()),
            },
            cache: CacheConfig {
                mode: CacheMode::Explicit,
                admit_after: 5,
                allow_tables: vec!["public.users".into(), "orders".into()],
                deny_tables: vec!["audit.log".into()],
                allow_statements: vec!["SELECT id, name FROM users WHERE id = 1".into()],
                max_memory: 1 << 30,
                max_result_size: 8 << 20,
                role_ttl: Duration::from_secs(90),
            },
            cdc: CdcConfig {
                mode: CdcMode::Off,
                publication: "app_changes".into(),
                slot: Some("pgcache_1".into()),
                max_lag: Duration::from_millis(1500),
            },
        }
    );
}

#[test]
fn partial_sections_keep_other_defaults() {
    let c = ok("[origin]\nport = 5433\n");
    assert_eq!(c.origin.port, 5433);
    assert_eq!(c.origin.host, "127.0.0.1");
    assert_eq!(c.limits, LimitsConfig::default());
}

#[test]
fn dotted_keys_and_inline_tables() {
    assert_eq!(ok("origin.port = 5433").origin.port, 5433);
    assert_eq!(ok("origin = { port = 5433 }").origin.port, 5433);
}

#[test]
fn unix_socket_host() {
    let c = ok("[origin]\nhost = \"/var/run/postgresql\"\n");
    assert_eq!(c.origin.host, "/var/run/postgresql");
}

#[test]
fn admin_disabled_by_empty_string() {
    assert_eq!(ok("[admin]\nlisten = \"\"\n").admin.listen, None);
    assert_eq!(
        ok("[admin]\n").admin.listen.as_deref(),
        Some("127.0.0.1:9187")
    );
}

#[test]
fn empty_password_and_passfile_mean_unset() {
    let c = ok("[origin]\npassword = \"\"\npassfile = \"\"\n");
    assert_eq!(c.origin.password, None);
    assert_eq!(c.origin.passfile, None);
}

#[test]
fn listen_port_zero_is_allowed() {
    assert_eq!(ok("listen = \"127.0.0.1:0\"").listen, "127.0.0.1:0");
    assert_eq!(ok("listen = \"localhost:6432\"").listen, "localhost:6432");
}

// --- validation: each error names its key ---------------------------------

#[test]
fn exact_message_for_a_type_error() {
    assert_eq!(
        err("[origin]\nport = 70000\n"),
        "invalid configuration: origin.port in /etc/pgcache.toml line 2: \
         invalid value: integer `70000`, expected u16"
    );
}

#[test]
fn validation_errors_name_their_key() {
    fails_on("listen = \"6432\"", "listen", "expected host:port");
    fails_on("listen = \":6432\"", "listen", "missing host");
    fails_on("listen = \"127.0.0.1:65536\"", "listen", "invalid port");
    fails_on("listen = \"127.0.0.1:x\"", "listen", "invalid port");
    fails_on("listen = \"::1:6432\"", "listen", "brackets");
    fails_on("listen = \"[::g]:6432\"", "listen", "invalid IPv6");
    fails_on(
        "listen = 6432",
        "listen",
        "invalid type: integer `6432`, expected a string",
    );
    fails_on("[origin]\nhost = \"\"", "origin.host", "must not be empty");
    fails_on("[origin]\nport = 0", "origin.port", "between 1 and 65535");
    fails_on("[origin]\nport = -1", "origin.port", "expected u16");
    fails_on(
        "[origin]\nport = \"5432\"",
        "origin.port",
        "invalid type: string",
    );
    fails_on(
        "[origin]\ndatabase = \"\"",
        "origin.database",
        "must not be empty",
    );
    fails_on("[origin]\nuser = \"\"", "origin.user", "must not be empty");
    fails_on(
        "[origin]\npassword = 5",
        "origin.password",
        "expected a string",
    );
    fails_on(
        "[origin]\nconnect_timeout = 0",
        "origin.connect_timeout",
        "greater than 0",
    );
    fails_on(
        "[origin]\nconnect_timeout = \"5 fortnights\"",
        "origin.connect_timeout",
        "unknown unit \"fortnights\"",
    );
    fails_on(
        "[limits]\nmax_message_size = 1023",
        "limits.max_message_size",
        "got 1023B",
    );
    fails_on(
        "[limits]\nmax_message_size = \"2GiB\"",
        "limits.max_message_size",
        "must be between 1KiB and 1GiB, got 2GiB",
    );
    fails_on(
        "[limits]\nmax_message_size = \"64mb\"",
        "limits.max_message_size",
        "unknown unit \"mb\"",
    );
    fails_on(
        "[limits]\nmax_message_size = -1",
        "limits.max_message_size",
        "integer `-1`",
    );
    fails_on(
        "[limits]\nmax_message_size = 1.5",
        "limits.max_message_size",
        "floating point",
    );
    fails_on(
        "[limits]\nmax_connections = 0",
        "limits.max_connections",
        "at least 1",
    );
    fails_on(
        "[limits]\nmax_connections = -5",
        "limits.max_connections",
        "expected usize",
    );
    fails_on(
        "[limits]\nstartup_timeout = \"0s\"",
        "limits.startup_timeout",
        "greater than 0",
    );
    fails_on(
        "[limits]\nstartup_timeout = \"1.5s\"",
        "limits.startup_timeout",
        "invalid duration",
    );
    fails_on("[log]\nlevel = \"\"", "log.level", "must not be empty");
    fails_on(
        "[log]\nlevel = \"pgcache=loud\"",
        "log.level",
        "not a valid filter directive",
    );
    fails_on(
        "[log]\nformat = \"xml\"",
        "log.format",
        "unknown variant `xml`, expected `text` or `json`",
    );
    fails_on(
        "[shutdown]\ntimeout = -1",
        "shutdown.timeout",
        "integer `-1`",
    );
    fails_on(
        "[admin]\nlisten = \"9187\"",
        "admin.listen",
        "expected host:port",
    );
}

#[test]
fn cache_validation_errors_name_their_key() {
    fails_on(
        "[cache]\nmode = \"always\"",
        "cache.mode",
        "unknown variant `always`, expected one of `off`, `auto`, `explicit`",
    );
    fails_on(
        "[cache]\nmode = \"Auto\"",
        "cache.mode",
        "unknown variant `Auto`",
    );
    fails_on(
        "[cache]\nadmit_after = 0",
        "cache.admit_after",
        "must be at least 1, got 0",
    );
    fails_on(
        "[cache]\nadmit_after = -1",
        "cache.admit_after",
        "expected u32",
    );
    fails_on(
        "[cache]\nadmit_after = \"2\"",
        "cache.admit_after",
        "invalid type: string",
    );
    fails_on(
        "[cache]\nallow_tables = \"users\"",
        "cache.allow_tables",
        "invalid type: string \"users\", expected a sequence",
    );
    fails_on(
        "[cache]\nallow_tables = [\"users\", 5]",
        "cache.allow_tables",
        "item 2: invalid type: integer `5`, expected a string",
    );
    fails_on(
        "[cache]\nallow_tables = [\"\"]",
        "cache.allow_tables",
        "contains an empty table name",
    );
    fails_on(
        "[cache]\nallow_tables = [\"a.b.c\"]",
        "cache.allow_tables",
        "invalid table name \"a.b.c\": expected table or schema.table",
    );
    fails_on(
        "[cache]\ndeny_tables = [\"public.\"]",
        "cache.deny_tables",
        "invalid table name \"public.\"",
    );
    fails_on(
        "[cache]\ndeny_tables = [\".users\"]",
        "cache.deny_tables",
        "invalid table name",
    );
    fails_on(
        "[cache]\nallow_statements = [\" \"]",
        "cache.allow_statements",
        "contains an empty statement",
    );
    fails_on(
        "[cache]\nmax_memory = 0",
        "cache.max_memory",
        "must be greater than 0",
    );
    fails_on(
        "[cache]\nmax_memory = \"1 TiB\"",
        "cache.max_memory",
        "unknown unit \"TiB\"",
    );
    fails_on(
        "[cache]\nmax_result_size = \"0MiB\"",
        "cache.max_result_size",
        "must be greater than 0",
    );
    fails_on(
        "[cache]\nmax_memory = \"64MiB\"\nmax_result_size = \"128MiB\"",
        "cache.max_result_size",
        "must not exceed cache.max_memory (64MiB), got 128MiB",
    );
    // Only max_memory is set, below the default max_result_size: it is blamed.
    fails_on(
        "[cache]\nmax_memory = \"512KiB\"",
        "cache.max_memory",
        "must be at least cache.max_result_size (1MiB, its default), got 512KiB",
    );
    fails_on(
        "[cache]\nrole_ttl = 0",
        "cache.role_ttl",
        "must be greater than 0",
    );
    fails_on(
        "[cache]\nrole_ttl = \"0ms\"",
        "cache.role_ttl",
        "must be greater than 0",
    );
    fails_on(
        "[cache]\nrole_ttl = \"1d\"",
        "cache.role_ttl",
        "unknown unit \"d\"",
    );
}

#[test]
fn cache_exact_messages() {
    assert_eq!(
        err("[cache]\nmode = \"on\"\n"),
        "invalid configuration: cache.mode in /etc/pgcache.toml line 2: \
         unknown variant `on`, expected one of `off`, `auto`, `explicit`"
    );
    assert_eq!(
        err("[cache]\nmax_memory = \"4MiB\"\nmax_result_size = \"5MiB\"\n"),
        "invalid configuration: cache.max_result_size in /etc/pgcache.toml line 3: \
         must not exceed cache.max_memory (4MiB), got 5MiB"
    );
}

#[test]
fn cache_keys_from_the_file() {
    assert_eq!(ok("[cache]\nmode = \"off\"").cache.mode, CacheMode::Off);
    assert_eq!(ok("[cache]\nmode = \"auto\"").cache.mode, CacheMode::Auto);
    assert_eq!(
        ok("[cache]\nmode = \"explicit\"").cache.mode,
        CacheMode::Explicit
    );
    assert_eq!(ok("cache.mode = \"auto\"").cache.mode, CacheMode::Auto);
    assert_eq!(ok("[cache]\nadmit_after = 1").cache.admit_after, 1);
    assert_eq!(
        ok("[cache]\nallow_tables = [\"public.users\", \" orders \"]")
            .cache
            .allow_tables,
        ["public.users", "orders"]
    );
    assert_eq!(
        ok("[cache]\ndeny_tables = [\"sessions\"]")
            .cache
            .deny_tables,
        ["sessions"]
    );
    assert_eq!(
        ok("[cache]\nallow_tables = []").cache.allow_tables,
        Vec::<String>::new()
    );
    assert_eq!(
        ok("[cache]\nallow_statements = [\"SELECT a, b FROM t WHERE id = 1\"]")
            .cache
            .allow_statements,
        ["SELECT a, b FROM t WHERE id = 1"]
    );
    assert_eq!(
        ok("[cache]\nmax_memory = 4096\nmax_result_size = 1024")
            .cache
            .max_memory,
        4096
    );
    assert_eq!(
        ok("[cache]\nmax_memory = \"2GiB\"").cache.max_memory,
        2 << 30
    );
    assert_eq!(
        ok("[cache]\nmax_result_size = \"256KiB\"")
            .cache
            .max_result_size,
        256 << 10
    );
    // Equal to max_memory is allowed.
    let c = ok("[cache]\nmax_memory = \"1MiB\"\nmax_result_size = \"1MiB\"");
    assert_eq!(
        (c.cache.max_memory, c.cache.max_result_size),
        (1 << 20, 1 << 20)
    );
    assert_eq!(
        ok("[cache]\nrole_ttl = \"5m\"").cache.role_ttl,
        Duration::from_secs(300)
    );
    assert_eq!(
        ok("[cache]\nrole_ttl = 30").cache.role_ttl,
        Duration::from_secs(30)
    );
    // Other cache keys keep their defaults.
    let c = ok("[cache]\nmode = \"auto\"");
    assert_eq!(
        c.cache,
        CacheConfig {
            mode: CacheMode::Auto,
            ..CacheConfig::default()
        }
    );
}

#[test]
fn cache_keys_from_env_and_flags() {
    let c = load(
        None,
        &[
            env("cache.mode", "auto"),
            env("cache.admit_after", " 3 "),
            env("cache.allow_tables", "public.users, orders ,"),
            env("cache.deny_tables", "audit.log"),
            env(
                "cache.allow_statements",
                "SELECT a, b FROM t WHERE id = 1; SELECT 1;",
            ),
            env("cache.max_memory", "64MiB"),
            env("cache.max_result_size", "65536"),
            env("cache.role_ttl", "45s"),
        ],
    )
    .expect("env");
    assert_eq!(
        c.cache,
        CacheConfig {
            mode: CacheMode::Auto,
            admit_after: 3,
            allow_tables: vec!["public.users".into(), "orders".into()],
            deny_tables: vec!["audit.log".into()],
            allow_statements: vec!["SELECT a, b FROM t WHERE id = 1".into(), "SELECT 1".into()],
            max_memory: 64 << 20,
            max_result_size: 64 << 10,
            role_ttl: Duration::from_secs(45),
        }
    );

    // Flags beat the environment and the file, list keys included.
    let text = "[cache]\nmode = \"auto\"\ndeny_tables = [\"a\", \"b\"]\nrole_ttl = \"1h\"\n";
    let c = load_str(
        text,
        Path::new(FILE),
        &[
            flag("cache.mode", "explicit"),
            env("cache.mode", "off"),
            flag("cache.deny_tables", "c"),
            flag("cache.admit_after", "7"),
            flag("cache.allow_tables", "x.y,z"),
            flag("cache.allow_statements", "SELECT * FROM z"),
            flag("cache.max_memory", "2GiB"),
            flag("cache.max_result_size", "16MiB"),
        ],
    )
    .expect("flags");
    assert_eq!(c.cache.mode, CacheMode::Explicit);
    assert_eq!(c.cache.deny_tables, ["c"]);
    assert_eq!(c.cache.admit_after, 7);
    assert_eq!(c.cache.allow_tables, ["x.y", "z"]);
    assert_eq!(c.cache.allow_statements, ["SELECT * FROM z"]);
    assert_eq!(c.cache.max_memory, 2 << 30);
    assert_eq!(c.cache.max_result_size, 16 << 20);
    assert_eq!(c.cache.role_ttl, Duration::from_secs(3600));

    // An empty string is an empty list, replacing the file's list.
    let c = load_str(text, Path::new(FILE), &[env("cache.deny_tables", "")]).expect("empty");
    assert_eq!(c.cache.deny_tables, Vec::<String>::new());
    let c = load(None, &[flag("cache.allow_statements", " ; ")]).expect("empty");
    assert_eq!(c.cache.allow_statements, Vec::<String>::new());
}

#[test]
fn cache_override_errors_name_the_variable_or_flag() {
    let message = |o: Override| load(None, &[o]).expect_err("invalid override").to_string();
    assert_eq!(
        message(env("cache.mode", "on")),
        "invalid configuration: cache.mode (from PGCACHE_CACHE_MODE): \
         unknown variant `on`, expected one of `off`, `auto`, `explicit`"
    );
    assert_eq!(
        message(flag("cache.admit_after", "0")),
        "invalid configuration: cache.admit_after (from --cache-admit-after): \
         must be at least 1, got 0"
    );
    assert!(
        message(env("cache.admit_after", "many"))
            .starts_with("invalid configuration: cache.admit_after (from PGCACHE_CACHE_ADMIT_AFTER): invalid type: string \"many\""),
    );
    assert_eq!(
        message(flag("cache.allow_tables", "public.users,a.b.c")),
        "invalid configuration: cache.allow_tables (from --cache-allow-tables): \
         invalid table name \"a.b.c\": expected table or schema.table"
    );
    assert!(
        message(env("cache.deny_tables", "x."))
            .starts_with("invalid configuration: cache.deny_tables (from PGCACHE_CACHE_DENY_TABLES): invalid table name"),
    );
    assert_eq!(
        message(env("cache.max_memory", "0")),
        "invalid configuration: cache.max_memory (from PGCACHE_CACHE_MAX_MEMORY): \
         must be greater than 0"
    );
    assert!(message(flag("cache.max_memory", "lots")).starts_with(
        "invalid configuration: cache.max_memory (from --cache-max-memory): invalid size \"lots\""
    ),);
    assert_eq!(
        message(flag("cache.max_result_size", "0B")),
        "invalid configuration: cache.max_result_size (from --cache-max-result-size): \
         must be greater than 0"
    );
    assert_eq!(
        message(env("cache.max_result_size", "2GiB")),
        "invalid configuration: cache.max_result_size (from PGCACHE_CACHE_MAX_RESULT_SIZE): \
         must not exceed cache.max_memory (256MiB), got 2GiB"
    );
    assert_eq!(
        message(flag("cache.role_ttl", "0s")),
        "invalid configuration: cache.role_ttl (from --cache-role-ttl): must be greater than 0"
    );
    // The file's max_result_size is blamed on the file even when max_memory
    // comes from a flag.
    let e = load_str(
        "[cache]\nmax_result_size = \"8MiB\"\n",
        Path::new(FILE),
        &[flag("cache.max_memory", "4MiB")],
    )
    .expect_err("too large");
    assert_eq!(
        e.to_string(),
        "invalid configuration: cache.max_result_size in /etc/pgcache.toml line 2: \
         must not exceed cache.max_memory (4MiB), got 8MiB"
    );
}

#[test]
fn cdc_keys_from_the_file() {
    assert_eq!(ok("[cdc]\nmode = \"on\"").cdc.mode, CdcMode::On);
    assert_eq!(ok("[cdc]\nmode = \"off\"").cdc.mode, CdcMode::Off);
    assert_eq!(ok("cdc.mode = \"off\"").cdc.mode, CdcMode::Off);
    assert_eq!(
        ok("[cdc]\npublication = \"_My_Pub9\"").cdc.publication,
        "_My_Pub9"
    );
    let longest = "p".repeat(MAX_NAME_LENGTH);
    assert_eq!(
        ok(&format!("[cdc]\npublication = \"{longest}\""))
            .cdc
            .publication,
        longest
    );
    assert_eq!(
        ok("[cdc]\nslot = \"pgcache_slot_1\"").cdc.slot.as_deref(),
        Some("pgcache_slot_1")
    );
    assert_eq!(
        ok(&format!("[cdc]\nslot = \"{longest}\"")).cdc.slot,
        Some(longest)
    );
    // An empty slot name means a temporary slot.
    assert_eq!(ok("[cdc]\nslot = \"\"").cdc.slot, None);
    assert_eq!(
        ok("[cdc]\nmax_lag = \"250ms\"").cdc.max_lag,
        Duration::from_millis(250)
    );
    assert_eq!(ok("[cdc]\nmax_lag = 2").cdc.max_lag, Duration::from_secs(2));
    // Other cdc keys keep their defaults.
    assert_eq!(
        ok("[cdc]\nmode = \"off\"").cdc,
        CdcConfig {
            mode: CdcMode::Off,
            ..CdcConfig::default()
        }
    );
}

#[test]
fn cdc_keys_from_env_and_flags() {
    let c = load(
        None,
        &[
            env("cdc.mode", "off"),
            env("cdc.publication", "changes"),
            env("cdc.slot", "pgcache"),
            env("cdc.max_lag", "1m"),
        ],
    )
    .expect("env");
    assert_eq!(
        c.cdc,
        CdcConfig {
            mode: CdcMode::Off,
            publication: "changes".into(),
            slot: Some("pgcache".into()),
            max_lag: Duration::from_secs(60),
        }
    );

    // Flags beat the environment and the file.
    let text = "[cdc]\nmode = \"off\"\npublication = \"file_pub\"\nslot = \"file_slot\"\n";
    let c = load_str(
        text,
        Path::new(FILE),
        &[
            flag("cdc.mode", "on"),
            env("cdc.mode", "off"),
            env("cdc.publication", "env_pub"),
            flag("cdc.publication", "flag_pub"),
            flag("cdc.slot", "flag_slot"),
            flag("cdc.max_lag", "10s"),
        ],
    )
    .expect("flags");
    assert_eq!(
        c.cdc,
        CdcConfig {
            mode: CdcMode::On,
            publication: "flag_pub".into(),
            slot: Some("flag_slot".into()),
            max_lag: Duration::from_secs(10),
        }
    );

    // The environment beats the file; an empty slot name replaces the file's
    // slot with a temporary one.
    let c = load_str(
        text,
        Path::new(FILE),
        &[env("cdc.publication", "env_pub"), env("cdc.slot", "")],
    )
    .expect("env over file");
    assert_eq!(c.cdc.mode, CdcMode::Off);
    assert_eq!(c.cdc.publication, "env_pub");
    assert_eq!(c.cdc.slot, None);
    let c = load(None, &[flag("cdc.slot", "")]).expect("empty slot flag");
    assert_eq!(c.cdc.slot, None);
}

#[test]
fn cdc_validation_errors_name_their_key() {
    fails_on(
        "[cdc]\nmode = \"auto\"",
        "cdc.mode",
        "unknown variant `auto`, expected `on` or `off`",
    );
    fails_on("[cdc]\nmode = \"On\"", "cdc.mode", "unknown variant `On`");
    // A TOML boolean is not accepted for on/off.
    fails_on("[cdc]\nmode = true", "cdc.mode", "invalid type");
    fails_on(
        "[cdc]\npublication = \"\"",
        "cdc.publication",
        "must not be empty",
    );
    for bad in [
        "my-pub", "1pub", "my pub", " pgcache", "pub.lic", "pub\\\"x", "péche",
    ] {
        let text = format!("[cdc]\npublication = \"{bad}\"");
        fails_on(&text, "cdc.publication", "invalid publication name");
        fails_on(
            &text,
            "cdc.publication",
            "use only letters, digits and underscores, not starting with a digit",
        );
    }
    fails_on(
        &format!("[cdc]\npublication = \"{}\"", "p".repeat(64)),
        "cdc.publication",
        "is 64 bytes long; at most 63 are allowed",
    );
    fails_on(
        "[cdc]\npublication = 5",
        "cdc.publication",
        "invalid type: integer `5`, expected a string",
    );
    for bad in ["MySlot", "slot-1", "9slot", "slot ", "slot.x", "ślot"] {
        let text = format!("[cdc]\nslot = \"{bad}\"");
        fails_on(&text, "cdc.slot", "invalid replication slot name");
        fails_on(
            &text,
            "cdc.slot",
            "use only lowercase letters, digits and underscores, not starting with a digit \
             (or empty for a temporary slot)",
        );
    }
    fails_on(
        &format!("[cdc]\nslot = \"{}\"", "s".repeat(64)),
        "cdc.slot",
        "is 64 bytes long; at most 63 are allowed",
    );
    fails_on(
        "[cdc]\nmax_lag = 0",
        "cdc.max_lag",
        "must be greater than 0",
    );
    fails_on(
        "[cdc]\nmax_lag = \"0ms\"",
        "cdc.max_lag",
        "must be greater than 0",
    );
    fails_on(
        "[cdc]\nmax_lag = \"1d\"",
        "cdc.max_lag",
        "unknown unit \"d\"",
    );
    fails_on("[cdc]\nmax_lag = -1", "cdc.max_lag", "integer `-1`");
}

#[test]
fn cdc_exact_messages() {
    assert_eq!(
        err("[cdc]\npublication = \"my-pub\"\n"),
        "invalid configuration: cdc.publication in /etc/pgcache.toml line 2: \
         invalid publication name \"my-pub\": use only letters, digits and underscores, \
         not starting with a digit"
    );
    assert_eq!(
        err("[cdc]\nslot = \"My_Slot\"\n"),
        "invalid configuration: cdc.slot in /etc/pgcache.toml line 2: \
         invalid replication slot name \"My_Slot\": use only lowercase letters, digits and \
         underscores, not starting with a digit (or empty for a temporary slot)"
    );
    assert_eq!(
        err("[cdc]\nmax_lag = \"0s\"\n"),
        "invalid configuration: cdc.max_lag in /etc/pgcache.toml line 2: must be greater than 0"
    );
}

#[test]
fn cdc_override_errors_name_the_variable_or_flag() {
    let message = |o: Override| load(None, &[o]).expect_err("invalid override").to_string();
    assert_eq!(
        message(env("cdc.mode", "yes")),
        "invalid configuration: cdc.mode (from PGCACHE_CDC_MODE): \
         unknown variant `yes`, expected `on` or `off`"
    );
    assert_eq!(
        message(flag("cdc.publication", "")),
        "invalid configuration: cdc.publication (from --cdc-publication): must not be empty"
    );
    assert!(message(env("cdc.publication", "a-b")).starts_with(
        "invalid configuration: cdc.publication (from PGCACHE_CDC_PUBLICATION): \
             invalid publication name \"a-b\""
    ));
    assert!(message(flag("cdc.slot", "Upper")).starts_with(
        "invalid configuration: cdc.slot (from --cdc-slot): \
             invalid replication slot name \"Upper\""
    ));
    assert_eq!(
        message(env("cdc.max_lag", "0")),
        "invalid configuration: cdc.max_lag (from PGCACHE_CDC_MAX_LAG): must be greater than 0"
    );
    assert_eq!(
        message(flag("cdc.max_lag", "0s")),
        "invalid configuration: cdc.max_lag (from --cdc-max-lag): must be greater than 0"
    );
    assert!(
        message(flag("cdc.max_lag", "soon")).starts_with(
            "invalid configuration: cdc.max_lag (from --cdc-max-lag): invalid duration"
        )
    );
    // A bad file value that an override replaces does not matter.
    let c = load_str(
        "[cdc]\nslot = \"Bad-Slot\"\n",
        Path::new(FILE),
        &[env("cdc.slot", "")],
    )
    .expect("override fixes it");
    assert_eq!(c.cdc.slot, None);
}

#[test]
fn shutdown_timeout_zero_is_allowed() {
    assert_eq!(
        ok("[shutdown]\ntimeout = 0").shutdown.timeout,
        Duration::ZERO
    );
}

#[test]
fn section_of_the_wrong_type() {
    fails_on("origin = 5", "origin", "expected the [origin] table");
    fails_on("cache = 5", "cache", "expected the [cache] table");
    fails_on("cdc = 5", "cdc", "expected the [cdc] table");
    // An override into a section the file made a non-table still reports the file.
    let err = load_str("origin = 5", Path::new(FILE), &[flag("origin.port", "1")])
        .expect_err("origin is not a table");
    assert_eq!(err.key(), Some("origin"), "{err}");
}

#[test]
fn line_numbers_point_at_the_key() {
    let text = "# comment\n\n[limits]\nmax_connections = 10\nmax_message_size = 12\n";
    assert_eq!(
        err(text),
        "invalid configuration: limits.max_message_size in /etc/pgcache.toml line 5: \
         must be between 1KiB and 1GiB, got 12B"
    );
}

// --- unknown keys ---------------------------------------------------------

#[test]
fn unknown_key_in_a_table() {
    let message = err("[origin]\nhots = \"db\"\n");
    assert_eq!(
        message,
        "invalid configuration: unknown key origin.hots in /etc/pgcache.toml line 2 \
         (did you mean origin.host?)"
    );
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        err("lisen = \"127.0.0.1:1\""),
        "invalid configuration: unknown key lisen in /etc/pgcache.toml line 1 \
         (did you mean listen?)"
    );
    assert!(
        err("[orign]\nport = 1")
            .contains("unknown key orign in /etc/pgcache.toml line 1 (did you mean origin?)")
    );
    assert!(
        err("port = 5432")
            .contains("unknown key port in /etc/pgcache.toml line 1 (did you mean origin.port?)")
    );
    assert!(err("\"origin.port\" = 5432").contains("unknown key origin.port"));
    assert!(err("zzzzzz = 1").ends_with("unknown key zzzzzz in /etc/pgcache.toml line 1"));
}

#[test]
fn the_first_unknown_key_in_file_order_is_reported() {
    let message = err("[origin]\nzeta = 1\n[admin]\nalpha = 2\n");
    assert!(message.contains("unknown key origin.zeta"), "{message}");
    let err = load_toml("[limits]\nmax_conections = 5\n").expect_err("typo");
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_eq!(err.key(), Some("limits.max_conections"));
}

#[test]
fn empty_sections_keep_the_defaults() {
    assert_eq!(ok("[cache]\n[cdc]\n"), Config::default());
    assert_eq!(ok("cache = {}\ncdc = {}\n"), Config::default());
}

#[test]
fn unknown_cdc_keys_are_rejected_with_a_hint() {
    assert_eq!(
        err("[cdc]\nslto = \"x\"\n"),
        "invalid configuration: unknown key cdc.slto in /etc/pgcache.toml line 2 \
         (did you mean cdc.slot?)"
    );
    assert!(err("[cdc]\nmax_lga = \"1s\"\n").contains(
        "unknown key cdc.max_lga in /etc/pgcache.toml line 2 (did you mean cdc.max_lag?)"
    ));
    assert!(err("publication = \"p\"\n").contains(
        "unknown key publication in /etc/pgcache.toml line 1 (did you mean cdc.publication?)"
    ));
    assert!(
        err("[cdc]\nwal_level = \"logical\"\n")
            .ends_with("unknown key cdc.wal_level in /etc/pgcache.toml line 2")
    );
    let err = load_toml("[cdc]\npublications = \"p\"\n").expect_err("typo");
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_eq!(err.key(), Some("cdc.publications"));
    assert!(
        err.to_string().ends_with("(did you mean cdc.publication?)"),
        "{err}"
    );
}

#[test]
fn unknown_cache_keys_are_rejected_with_a_hint() {
    assert_eq!(
        err("[cache]\nmax_memroy = \"1GiB\"\n"),
        "invalid configuration: unknown key cache.max_memroy in /etc/pgcache.toml line 2 \
         (did you mean cache.max_memory?)"
    );
    assert!(
        err("[cache]\nallowed_tables = []\n")
            .contains("unknown key cache.allowed_tables in /etc/pgcache.toml line 2 (did you mean cache.allow_tables?)")
    );
    assert!(
        err("mode = \"auto\"\n")
            .contains("unknown key mode in /etc/pgcache.toml line 1 (did you mean cache.mode?)")
    );
}

// --- syntax and files -----------------------------------------------------

#[test]
fn syntax_errors_name_file_and_line() {
    let err = load_toml("listen = \"127.0.0.1:6432\"\n[origin]\nport = \n").expect_err("syntax");
    let ConfigError::Syntax { path, line, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(path, Path::new(FILE));
    assert_eq!(*line, 3);
    assert!(
        err.to_string().starts_with(
            "invalid configuration: TOML syntax error in /etc/pgcache.toml line 3, column "
        ),
        "{err}"
    );
    let duplicate = load_toml("[origin]\nport = 1\nport = 2\n").expect_err("duplicate");
    assert!(
        matches!(duplicate, ConfigError::Syntax { line: 3, .. }),
        "{duplicate:?}"
    );
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let path = Path::new("/nonexistent/dir/pgcache.toml");
    let err = load(Some(path), &[]).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("invalid configuration: cannot read /nonexistent/dir/pgcache.toml: "),
        "{err}"
    );
}

#[test]
fn loads_a_file_from_disk() {
    let path = temp_file("load.toml", "[origin]\nport = 5433\n");
    let c = load(Some(&path), &[]).expect("loads");
    assert_eq!(c.origin.port, 5433);
    let _ = std::fs::remove_file(path);
}

#[test]
fn example_file_loads_and_documents_every_key() {
    let text = include_str!("../../pgcache.toml");
    let c = load_str(text, Path::new("pgcache.toml"), &[]).expect("pgcache.toml loads");
    assert_eq!(c.listen, "127.0.0.1:6432");
    assert_eq!(c.admin.listen.as_deref(), Some("127.0.0.1:9187"));
    for key in KEYS {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        assert!(
            text.lines().any(|line| line
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{leaf} ="))),
            "pgcache.toml does not show {key}"
        );
    }
}

#[test]
fn reference_documents_every_key() {
    let doc = include_str!("../../docs/configuration.md");
    for spec in KEY_SPECS {
        for needle in [spec.key, spec.env, spec.flag] {
            assert!(
                doc.contains(&format!("`{needle}`")),
                "docs/configuration.md lacks `{needle}`"
            );
        }
    }
}

// --- overrides ------------------------------------------------------------

#[test]
fn precedence_flag_over_env_over_file_over_default() {
    let text = "[origin]\nport = 5001\nuser = \"file\"\ndatabase = \"file\"\n";
    let path = Path::new(FILE);
    let c = load_str(text, path, &[]).expect("file");
    assert_eq!((c.origin.port, c.origin.host.as_str()), (5001, "127.0.0.1"));

    let overrides = [
        env("origin.port", "5002"),
        env("origin.user", "env"),
        flag("origin.port", "5003"),
    ];
    let c = load_str(text, path, &overrides).expect("overrides");
    assert_eq!(c.origin.port, 5003);
    assert_eq!(c.origin.user, "env");
    assert_eq!(c.origin.database, "file");

    // Order in the slice does not matter: a flag still beats the environment.
    let reversed = [flag("origin.port", "5003"), env("origin.port", "5002")];
    assert_eq!(
        load_str(text, path, &reversed)
            .expect("reversed")
            .origin
            .port,
        5003
    );

    // Without a file.
    let c = load(None, &[env("listen", "127.0.0.1:1")]).expect("env only");
    assert_eq!(c.listen, "127.0.0.1:1");
}

#[test]
fn every_key_can_be_overridden() {
    let values = [
        ("listen", "0.0.0.0:1"),
        ("origin.host", "/tmp"),
        ("origin.port", "6000"),
        ("origin.database", "d"),
        ("origin.user", "u"),
        ("origin.password", "p"),
        ("origin.passfile", "/pgpass"),
        ("origin.connect_timeout", "2"),
        ("limits.max_message_size", "1048576"),
        ("limits.max_connections", "7"),
        ("limits.startup_timeout", "250ms"),
        ("log.level", "debug"),
        ("log.format", "json"),
        ("shutdown.timeout", "1h"),
        ("admin.listen", ""),
        ("cache.mode", "explicit"),
        ("cache.admit_after", "4"),
        ("cache.allow_tables", "public.users,orders"),
        ("cache.deny_tables", "audit.log"),
        ("cache.allow_statements", "SELECT 1; SELECT a, b FROM t"),
        ("cache.max_memory", "1GiB"),
        ("cache.max_result_size", "2MiB"),
        ("cache.role_ttl", "10m"),
        ("cdc.mode", "off"),
        ("cdc.publication", "Pub_2"),
        ("cdc.slot", "slot_2"),
        ("cdc.max_lag", "30s"),
    ];
    assert_eq!(values.len(), KEYS.len());
    let overrides: Vec<Override> = values.iter().map(|(k, v)| env(k, v)).collect();
    let c = load(None, &overrides).expect("overrides");
    assert_eq!(
        c,
        Config {
            listen: "0.0.0.0:1".into(),
            origin: OriginConfig {
                host: "/tmp".into(),
                port: 6000,
                database: "d".into(),
                user: "u".into(),
                password: Some("p".into()),
                passfile: Some(PathBuf::from("/pgpass")),
                connect_timeout: Duration::from_secs(2),
            },
            limits: LimitsConfig {
                max_message_size: 1 << 20,
                max_connections: 7,
                startup_timeout: Duration::from_millis(250),
            },
            log: LogConfig {
                level: "debug".into(),
                format: LogFormat::Json,
            },
            shutdown: ShutdownConfig {
                timeout: Duration::from_secs(3600),
            },
            admin: AdminConfig { listen: None },
            cache: CacheConfig {
                mode: CacheMode::Explicit,
                admit_after: 4,
                allow_tables: vec!["public.users".into(), "orders".into()],
                deny_tables: vec!["audit.log".into()],
                allow_statements: vec!["SELECT 1".into(), "SELECT a, b FROM t".into()],
                max_memory: 1 << 30,
                max_result_size: 2 << 20,
                role_ttl: Duration::from_secs(600),
            },
            cdc: CdcConfig {
                mode: CdcMode::Off,
                publication: "Pub_2".into(),
                slot: Some("slot_2".into()),
                max_lag: Duration::from_secs(30),
            },
        }
    );
}

#[test]
fn override_errors_name_the_variable_or_flag() {
    let e = load(None, &[env("limits.max_message_size", "lots")]).expect_err("bad size");
    assert!(
        e.to_string().starts_with(
            "invalid configuration: limits.max_message_size (from PGCACHE_LIMITS_MAX_MESSAGE_SIZE): \
             invalid size \"lots\""
        ),
        "{e}"
    );
    let e = load(None, &[flag("origin.port", "70000")]).expect_err("bad port");
    assert_eq!(
        e.to_string(),
        "invalid configuration: origin.port (from --origin-port): \
         invalid value: integer `70000`, expected u16"
    );
    let e = load(None, &[env("origin.port", "abc")]).expect_err("bad port");
    assert_eq!(
        e.to_string(),
        "invalid configuration: origin.port (from PGCACHE_ORIGIN_PORT): \
         invalid type: string \"abc\", expected u16"
    );
    let e = load(None, &[env("origin.port", "0")]).expect_err("port 0");
    assert!(
        e.to_string()
            .contains("origin.port (from PGCACHE_ORIGIN_PORT): must be between"),
        "{e}"
    );
    let e = load(None, &[env("log.format", "xml")]).expect_err("bad format");
    assert!(
        e.to_string()
            .contains("log.format (from PGCACHE_LOG_FORMAT): unknown variant"),
        "{e}"
    );
}

#[test]
fn override_replacing_a_file_value_is_blamed_not_the_file() {
    let e = load_str(
        "[origin]\nport = 5433\n",
        Path::new(FILE),
        &[env("origin.port", "x")],
    )
    .expect_err("bad env");
    assert!(e.to_string().contains("(from PGCACHE_ORIGIN_PORT)"), "{e}");
    // And a bad file value that an override replaces does not matter.
    let c = load_str(
        "[origin]\nport = 0\n",
        Path::new(FILE),
        &[flag("origin.port", "5")],
    )
    .expect("override fixes it");
    assert_eq!(c.origin.port, 5);
}

#[test]
fn overrides_of_unknown_keys_are_rejected() {
    assert_eq!(Override::env("origin.hots", "x"), None);
    let bogus = Override {
        key: "origin.hots",
        value: "x".into(),
        source: OverrideSource::Flag("--origin-hots"),
    };
    let e = load(None, &[bogus]).expect_err("unknown key");
    assert_eq!(
        e.to_string(),
        "invalid configuration: unknown key origin.hots (from --origin-hots) (did you mean origin.host?)"
    );
}

#[test]
fn integer_override_strings_keep_passwords_as_strings() {
    let c = load(None, &[env("origin.password", "12345")]).expect("numeric password");
    assert_eq!(c.origin.password.as_deref(), Some("12345"));
    let c = load(None, &[env("limits.max_connections", " 12 ")]).expect("spaces");
    assert_eq!(c.limits.max_connections, 12);
}

// --- sizes and durations --------------------------------------------------

#[test]
fn sizes() {
    for (text, bytes) in [
        ("0", 0),
        ("1024", 1024),
        ("512B", 512),
        ("1KiB", 1024),
        ("1kB", 1024),
        ("64MiB", 64 << 20),
        ("64MB", 64 << 20),
        ("64 MiB", 64 << 20),
        (" 1GiB ", 1 << 30),
        ("1GB", 1 << 30),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for text in [
        "",
        "MiB",
        "1.5MiB",
        "64mb",
        "64KB",
        "64 M",
        "-1",
        "99999999999999999999",
        "18446744073709551615GiB",
    ] {
        assert!(parse_size(text).is_err(), "{text}");
    }
    assert_eq!(
        ok("[limits]\nmax_message_size = 2048")
            .limits
            .max_message_size,
        2048
    );
    assert_eq!(
        ok("[limits]\nmax_message_size = \"1GB\"")
            .limits
            .max_message_size,
        1 << 30
    );
    assert_eq!(
        ok("[limits]\nmax_message_size = \"1kB\"")
            .limits
            .max_message_size,
        1024
    );
    assert_eq!(format_size(64 << 20), "64MiB");
    assert_eq!(format_size(1 << 30), "1GiB");
    assert_eq!(format_size(1536), "1536B");
    assert_eq!(format_size(3 << 10), "3KiB");
    assert_eq!(format_size(0), "0B");
}

#[test]
fn durations() {
    for (text, duration) in [
        ("0", Duration::ZERO),
        ("30", Duration::from_secs(30)),
        ("500ms", Duration::from_millis(500)),
        ("5s", Duration::from_secs(5)),
        ("5 s", Duration::from_secs(5)),
        ("2m", Duration::from_secs(120)),
        ("2min", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
    ] {
        assert_eq!(parse_duration(text), Ok(duration), "{text}");
    }
    for text in [
        "",
        "s",
        "1.5s",
        "5 sec",
        "5S",
        "-1s",
        "1d",
        "99999999999999999999h",
    ] {
        assert!(parse_duration(text).is_err(), "{text}");
    }
    assert_eq!(
        ok("[origin]\nconnect_timeout = 7").origin.connect_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::ZERO), "0ms");
}

// --- passfile -------------------------------------------------------------

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("pgcache-config-test-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[test]
fn passfile_matching() {
    let text = "\
# a comment:with:colons:in:it
otherhost:5432:postgres:postgres:wrong-host
db:5433:postgres:postgres:wrong-port
db:5432:app:postgres:wrong-database
db:5432:postgres:alice:wrong-user
db:5432:postgres:postgres:exact
*:*:*:*:wildcard
";
    assert_eq!(
        lookup(text, "db", 5432, "postgres", "postgres").as_deref(),
        Some("exact")
    );
    assert_eq!(lookup(text, "x", 1, "y", "z").as_deref(), Some("wildcard"));
    assert_eq!(
        lookup(
            "db:5432:postgres:postgres\n",
            "db",
            5432,
            "postgres",
            "postgres"
        ),
        None
    );
    assert_eq!(lookup("", "db", 5432, "postgres", "postgres"), None);
    // The first matching line wins.
    assert_eq!(
        lookup(
            "*:*:*:*:first\ndb:5432:postgres:postgres:second\n",
            "db",
            5432,
            "postgres",
            "postgres"
        )
        .as_deref(),
        Some("first")
    );
    // Windows line endings.
    assert_eq!(
        lookup("h:1:d:u:pw\r\n", "h", 1, "d", "u").as_deref(),
        Some("pw")
    );
    // Partial wildcards are literal.
    assert_eq!(lookup("d*:1:d:u:pw\n", "db", 1, "d", "u"), None);
}

#[test]
fn passfile_escapes() {
    // `\:` and `\\` in any field; the password ends at the next unescaped colon.
    let text = r"h\:x:1:d\\b:u:pa\:ss\\word:ignored";
    assert_eq!(
        lookup(text, "h:x", 1, r"d\b", "u").as_deref(),
        Some(r"pa:ss\word")
    );
    // An escaped star is a literal star, not a wildcard.
    assert_eq!(lookup(r"\*:1:d:u:pw", "h", 1, "d", "u"), None);
    assert_eq!(
        lookup(r"\*:1:d:u:pw", "*", 1, "d", "u").as_deref(),
        Some("pw")
    );
}

#[test]
fn passfile_unix_socket_matches_localhost() {
    let text = "localhost:5432:postgres:postgres:local\n";
    assert_eq!(
        lookup(text, "/var/run/postgresql", 5432, "postgres", "postgres").as_deref(),
        Some("local")
    );
    assert_eq!(
        lookup(
            "/tmp:5432:postgres:postgres:sock\n",
            "/tmp",
            5432,
            "postgres",
            "postgres"
        )
        .as_deref(),
        Some("sock")
    );
    assert_eq!(
        lookup(text, "127.0.0.1", 5432, "postgres", "postgres"),
        None
    );
}

#[test]
fn tilde_expansion() {
    let home = std::ffi::OsStr::new("/home/me");
    assert_eq!(
        expand_tilde(Path::new("~/.pgpass"), Some(home)).expect("home"),
        PathBuf::from("/home/me/.pgpass")
    );
    assert_eq!(
        expand_tilde(Path::new("~"), Some(home)).expect("home"),
        PathBuf::from("/home/me")
    );
    assert_eq!(
        expand_tilde(Path::new("/etc/pgpass"), None).expect("absolute"),
        PathBuf::from("/etc/pgpass")
    );
    assert_eq!(
        expand_tilde(Path::new("~user/x"), None).expect("not ours"),
        PathBuf::from("~user/x")
    );
    assert!(expand_tilde(Path::new("~/.pgpass"), None).is_err());
}

#[test]
fn resolve_password() {
    let path = temp_file("pgpass", "127.0.0.1:5432:postgres:postgres:from-file\n");
    let mut origin = OriginConfig {
        passfile: Some(path.clone()),
        ..OriginConfig::default()
    };
    assert_eq!(
        origin.resolve_password().expect("passfile").as_deref(),
        Some("from-file")
    );
    origin.port = 5433;
    assert_eq!(origin.resolve_password().expect("passfile"), None);
    origin.password = Some("explicit".into());
    assert_eq!(
        origin.resolve_password().expect("password").as_deref(),
        Some("explicit")
    );
    assert_eq!(
        OriginConfig::default().resolve_password().expect("none"),
        None
    );
    let _ = std::fs::remove_file(&path);

    let missing = OriginConfig {
        passfile: Some(PathBuf::from("/nonexistent/pgpass")),
        ..OriginConfig::default()
    };
    let e = missing.resolve_password().expect_err("missing passfile");
    assert!(matches!(e, ConfigError::Passfile { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("invalid configuration: origin.passfile /nonexistent/pgpass: "),
        "{e}"
    );
}

#[test]
fn pg_config() {
    let origin = OriginConfig {
        password: Some("pw".into()),
        ..OriginConfig::default()
    };
    let pg = origin.pg_config().expect("pg config");
    assert_eq!(
        pg.get_hosts(),
        [tokio_postgres::config::Host::Tcp("127.0.0.1".into())]
    );
    assert_eq!(pg.get_ports(), [5432]);
    assert_eq!(pg.get_dbname(), Some("postgres"));
    assert_eq!(pg.get_user(), Some("postgres"));
    assert_eq!(pg.get_password(), Some(&b"pw"[..]));
    assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(5)));
    assert_eq!(pg.get_application_name(), Some("pgcache"));

    let socket = OriginConfig {
        host: "/var/run/postgresql".into(),
        ..OriginConfig::default()
    };
    let pg = socket.pg_config().expect("pg config");
    assert_eq!(
        pg.get_hosts(),
        [tokio_postgres::config::Host::Unix(
            "/var/run/postgresql".into()
        )]
    );
    assert_eq!(pg.get_password(), None);
}
