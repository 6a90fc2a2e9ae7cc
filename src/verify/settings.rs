//! Session settings profiles (`TimeZone`, `DateStyle`, `extra_float_digits`,
//! `IntervalStyle`, `bytea_output`, `search_path`): each reader's proxy connection and the origin
//! connection it is compared with run under the same one. Settings are
//! given as startup options, with `SET`, with `set_config()`, after
//! `RESET ALL` or `DISCARD ALL`; transactions change them for a while with
//! `SET LOCAL`, or with a `SET` that a rollback undoes.

use super::values::quote;
use crate::rng::Rng;

/// One profile: settings, and whether a new connection gets them as
/// startup options (otherwise with `SET` once connected).
pub(crate) struct Profile {
    settings: &'static [(&'static str, &'static str)],
    /// Also a `search_path`, so that unqualified names resolve.
    search_path: SearchPath,
    startup: bool,
}

pub(crate) const PROFILES: [Profile; 4] = [
    Profile {
        settings: &[],
        search_path: SearchPath::Default,
        startup: false,
    },
    Profile {
        settings: &[
            ("TimeZone", "America/New_York"),
            ("DateStyle", "SQL, DMY"),
            ("extra_float_digits", "0"),
            ("IntervalStyle", "postgres"),
            ("bytea_output", "hex"),
        ],
        search_path: SearchPath::Default,
        startup: false,
    },
    Profile {
        settings: &[
            ("TimeZone", "Asia/Kolkata"),
            ("DateStyle", "Postgres, MDY"),
            ("extra_float_digits", "3"),
            ("IntervalStyle", "sql_standard"),
            ("bytea_output", "escape"),
        ],
        search_path: SearchPath::Schema,
        startup: false,
    },
    Profile {
        settings: &[
            ("TimeZone", "Pacific/Chatham"),
            ("DateStyle", "German, DMY"),
            ("extra_float_digits", "-2"),
            ("IntervalStyle", "postgres_verbose"),
            ("bytea_output", "escape"),
        ],
        search_path: SearchPath::Shadowed,
        startup: true,
    },
];

/// The search_path of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchPath {
    /// The server's (unqualified names of the tester's tables are unknown).
    Default,
    /// `<schema>, public`.
    Schema,
    /// `<schema>_b, <schema>, public`: `t_int` is `<schema>_b.t_int`.
    Shadowed,
}

/// How a connection moves to another profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Switch {
    /// `SET name = 'value'`.
    Set,
    /// Other spellings: `SET TIME ZONE`, `SET SESSION name TO value`.
    SetOtherSyntax,
    /// `BEGIN; SET …; COMMIT` (the settings stay).
    SetInTransaction,
    /// `SELECT set_config(name, value, false), …` (simple protocol).
    SetConfig,
    /// `SELECT set_config($1, $2, false)` per setting (extended protocol).
    SetConfigPrepared,
    /// A function of the schema that calls set_config().
    Function,
    /// `DO` block calling set_config().
    DoBlock,
    ResetAllThenSet,
    /// Also drops every prepared statement of the session.
    DiscardAllThenSet,
}

impl Switch {
    pub(crate) fn pick(rng: &mut Rng) -> Switch {
        [
            Switch::Set,
            Switch::SetOtherSyntax,
            Switch::SetInTransaction,
            Switch::SetConfig,
            Switch::SetConfigPrepared,
            Switch::Function,
            Switch::DoBlock,
            Switch::ResetAllThenSet,
            Switch::DiscardAllThenSet,
        ][rng.weighted(&[3, 2, 1, 2, 1, 2, 1, 1, 1])]
    }
}

/// A transaction that changes settings for a while; a read runs inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detour {
    /// `BEGIN; SET LOCAL …; <read>; COMMIT`: back to the profile after.
    Local,
    /// `BEGIN; SET …; <read>; ROLLBACK`: the rollback undoes the `SET`.
    RolledBack,
    /// `BEGIN; SAVEPOINT s; SET …; <read>; ROLLBACK TO s; COMMIT`.
    ToSavepoint,
}

impl Detour {
    pub(crate) fn pick(rng: &mut Rng) -> Detour {
        [Detour::Local, Detour::RolledBack, Detour::ToSavepoint][rng.index(3)]
    }

    /// What runs before the read, and after it.
    pub(crate) fn sql(self, profile: usize, schema: &str) -> (String, &'static str) {
        match self {
            Detour::Local => (
                format!("BEGIN; {}", statements(profile, schema, "SET LOCAL")),
                "COMMIT",
            ),
            Detour::RolledBack => (
                format!("BEGIN; {}", statements(profile, schema, "SET")),
                "ROLLBACK",
            ),
            Detour::ToSavepoint => (
                format!(
                    "BEGIN; SAVEPOINT verify; {}",
                    statements(profile, schema, "SET")
                ),
                "ROLLBACK TO SAVEPOINT verify; COMMIT",
            ),
        }
    }
}

/// The settings of `profile` for the tester's `schema`.
pub(crate) fn settings(profile: usize, schema: &str) -> Vec<(&'static str, String)> {
    let p = &PROFILES[profile];
    let mut out: Vec<(&'static str, String)> = p
        .settings
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    match p.search_path {
        SearchPath::Default => {}
        SearchPath::Schema => out.push(("search_path", format!("{schema}, public"))),
        SearchPath::Shadowed => out.push(("search_path", format!("{schema}_b, {schema}, public"))),
    }
    out
}

/// Whether a new connection gets `profile` as startup options.
pub(crate) fn at_startup(profile: usize) -> bool {
    PROFILES[profile].startup
}

/// `profile` as libpq-style startup options (`-c name=value …`).
pub(crate) fn startup_options(profile: usize, schema: &str) -> String {
    settings(profile, schema)
        .iter()
        // A space would split the option: these lists read the same without.
        .map(|(k, v)| format!("-c {k}={}", v.replace(", ", ",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `verb` (`SET`, `SET LOCAL`) of every setting of `profile`.
fn statements(profile: usize, schema: &str, verb: &str) -> String {
    settings(profile, schema)
        .iter()
        .map(|(k, v)| format!("{verb} {k} = {};", set_value(k, v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as `SET` takes it: a quoted string, but the search_path as a
/// list of names (`'a, b'` would be one schema named "a, b").
fn set_value(name: &str, value: &str) -> String {
    if name == "search_path" {
        value.to_owned()
    } else {
        quote(value)
    }
}

/// How to move a session to `profile` (not the server defaults): query
/// strings run one after the other, or (`SetConfigPrepared`) the
/// `(name, value)` pairs to bind to `SELECT set_config($1, $2, false)`.
pub(crate) enum SwitchSteps {
    Simple(Vec<String>),
    Prepared(Vec<(&'static str, String)>),
}

pub(crate) fn switch_sql(profile: usize, schema: &str, how: Switch) -> SwitchSteps {
    let set = statements(profile, schema, "SET");
    let pairs = settings(profile, schema);
    let calls = |f: &dyn Fn(&str, &str) -> String| -> Vec<String> {
        pairs.iter().map(|(k, v)| f(k, v)).collect()
    };
    let simple = match how {
        Switch::Set => vec![set],
        Switch::SetOtherSyntax => vec![
            calls(&|k, v| match k {
                "TimeZone" => format!("SET TIME ZONE {};", quote(v)),
                "extra_float_digits" => format!("SET SESSION {} TO {v};", k.to_lowercase()),
                _ => format!("SET SESSION {} TO {};", k.to_lowercase(), set_value(k, v)),
            })
            .join(" "),
        ],
        Switch::SetInTransaction => vec![format!("BEGIN; {set} COMMIT")],
        Switch::SetConfig => vec![format!(
            "SELECT {}",
            calls(&|k, v| format!("set_config({}, {}, false)", quote(k), quote(v))).join(", ")
        )],
        Switch::SetConfigPrepared => return SwitchSteps::Prepared(pairs),
        Switch::Function => vec![format!(
            "SELECT {}",
            calls(&|k, v| format!("{schema}.apply_setting({}, {})", quote(k), quote(v))).join(", ")
        )],
        Switch::DoBlock => vec![format!(
            "DO $verify$ BEGIN {} END $verify$",
            calls(&|k, v| format!("PERFORM set_config({}, {}, false);", quote(k), quote(v)))
                .join(" ")
        )],
        Switch::ResetAllThenSet => vec![format!("RESET ALL; {set}")],
        // DISCARD ALL cannot run in the implicit transaction of a string of
        // several statements.
        Switch::DiscardAllThenSet => vec!["DISCARD ALL".to_owned(), set],
    };
    SwitchSteps::Simple(simple)
}

/// For a report.
pub(crate) fn describe(profile: usize, schema: &str) -> String {
    let list = settings(profile, schema);
    if list.is_empty() {
        return "server defaults".to_owned();
    }
    let list: Vec<String> = list.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let how = if PROFILES[profile].startup {
        "startup options, or SET after a switch"
    } else {
        "SET, set_config(), a function, or RESET/DISCARD ALL then SET"
    };
    format!("{} ({how})", list.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_spell_out() {
        assert_eq!(
            startup_options(3, "v"),
            "-c TimeZone=Pacific/Chatham -c DateStyle=German,DMY -c extra_float_digits=-2 \
             -c IntervalStyle=postgres_verbose -c bytea_output=escape -c search_path=v_b,v,public"
        );
        let simple = |how| match switch_sql(1, "v", how) {
            SwitchSteps::Simple(steps) => steps,
            SwitchSteps::Prepared(_) => panic!("{how:?} is not simple"),
        };
        assert_eq!(
            simple(Switch::SetConfig)[0],
            "SELECT set_config('TimeZone', 'America/New_York', false), \
             set_config('DateStyle', 'SQL, DMY', false), \
             set_config('extra_float_digits', '0', false), \
             set_config('IntervalStyle', 'postgres', false), \
             set_config('bytea_output', 'hex', false)"
        );
        assert!(simple(Switch::SetOtherSyntax)[0].starts_with(
            "SET TIME ZONE 'America/New_York'; SET SESSION datestyle TO 'SQL, DMY'; \
             SET SESSION extra_float_digits TO 0;"
        ));
        assert_eq!(simple(Switch::DiscardAllThenSet)[0], "DISCARD ALL");
        match switch_sql(2, "v", Switch::Set) {
            SwitchSteps::Simple(steps) => {
                assert!(
                    steps[0].ends_with(" SET search_path = v, public;"),
                    "{steps:?}"
                )
            }
            SwitchSteps::Prepared(_) => panic!("SET is simple"),
        }
        assert!(matches!(
            switch_sql(2, "v", Switch::SetConfigPrepared),
            SwitchSteps::Prepared(pairs) if pairs.len() == 6
        ));
        assert_eq!(describe(0, "v"), "server defaults");
    }
}
