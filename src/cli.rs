//! The command line: `pgcache [OPTIONS] [run | demo | check | verify]`.
//!
//! Every configuration key has a flag and an environment variable, generated
//! from [`config::KEY_SPECS`] so the three spellings cannot drift. All of them
//! are global: `pgcache demo --listen 127.0.0.1:7432` works.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};

use crate::config::{self, Config, ConfigError, Override, OverrideSource, ValueKind};

/// Heading of the configuration flags in `--help`.
const CONFIG_HEADING: &str = "Configuration (overrides the file)";

/// `pgcache`: a caching proxy for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "pgcache", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: ./pgcache.toml if it exists]
    #[arg(
        short = 'c',
        long = "config",
        env = "PGCACHE_CONFIG",
        value_name = "FILE",
        global = true
    )]
    config: Option<PathBuf>,

    #[command(flatten)]
    flags: ConfigFlags,

    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the proxy (default when no command is given)
    Run,
    /// Start a throwaway PostgreSQL, put the proxy in front, run a short workload
    Demo(DemoArgs),
    /// Check the origin's logical-replication prerequisites and say how to fix each
    Check,
    /// Compare reads through a running proxy with the origin under a seeded,
    /// concurrent workload (differential test); exit 1 on any mismatch
    Verify(VerifyArgs),
}

/// Options of `pgcache verify`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VerifyArgs {
    /// The origin database, directly (URL or key=value connection string)
    #[arg(long, value_name = "URL")]
    pub origin: String,
    /// The same database through the proxy (URL or key=value connection string)
    #[arg(long, value_name = "URL")]
    pub proxy: String,
    /// Seed of the schema, rows, query shapes, values and operations
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// How long the concurrent workload runs (500ms, 60s, 30m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Schema created (dropped first) for the tester's tables
    #[arg(long, value_name = "NAME", default_value = "pgcache_verify")]
    pub schema: String,
    /// Inject faults: terminate the change stream's walsender, drop connections mid-pipeline
    #[arg(long)]
    pub faults: bool,
    /// Only terminate the walsender of this replication slot [default: every pgcache% slot]
    #[arg(long, value_name = "NAME")]
    pub fault_slot: Option<String>,
    /// With --faults, also restart the origin now and then by running this shell command
    /// (e.g. "pg_ctl -D DATA restart -m fast"); the origin must accept connections again
    /// within 60 s
    #[arg(long, value_name = "COMMAND")]
    pub restart_command: Option<String>,
    /// Stretch the time between faults, TRUNCATEs and ALTER TABLEs by this factor
    /// (1: a fault every 2-5 s, an ALTER TABLE every 3-7 s, a TRUNCATE every 6-12 s)
    #[arg(long, value_name = "FACTOR", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub calm: u32,
    /// How long the proxy may take to converge on the origin's answer
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
    pub staleness: Duration,
    /// The proxy's /metrics URL, to count cache hits (http://127.0.0.1:9187/metrics)
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
}

/// A duration as the configuration reads one (`500ms`, `60s`, `30m`,
/// `1h`, or whole seconds), more than zero.
fn duration_arg(value: &str) -> Result<Duration, String> {
    let duration = crate::config::parse_duration(value.trim()).map_err(|e| e.to_string())?;
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

/// Options of `pgcache demo`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DemoArgs {
    /// Workload duration in seconds
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    pub seconds: u64,
    /// Concurrent clients
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_least_one_usize)]
    pub clients: usize,
    /// Exit after the workload instead of waiting for Ctrl-C
    #[arg(long)]
    pub exit: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            seconds: 5,
            clients: 4,
            exit: false,
        }
    }
}

fn at_least_one(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_owned()),
    }
}

fn at_least_one_usize(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_owned()),
    }
}

impl Cli {
    /// The command to run; [`Command::Run`] when none was given.
    pub fn command(&self) -> Command {
        self.command.clone().unwrap_or(Command::Run)
    }

    /// The configuration values given as flags or environment variables,
    /// each saying which.
    pub fn overrides(&self) -> Vec<Override> {
        self.flags.overrides.clone()
    }

    /// The configuration file to load: `--config` / `PGCACHE_CONFIG` when given
    /// (it must then exist; an empty value counts as not given), else
    /// `./pgcache.toml` when it exists, else `None` (built-in defaults).
    pub fn config_path(&self) -> Option<PathBuf> {
        if let Some(path) = self.config.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            return Some(path.clone());
        }
        let default = Path::new(config::DEFAULT_CONFIG_FILE);
        default.exists().then(|| default.to_path_buf())
    }
}

/// Load the configuration the command line asks for: file (see
/// [`Cli::config_path`]), then environment variables, then flags.
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    config::load(cli.config_path().as_deref(), &cli.overrides())
}

/// One global flag + environment variable per configuration key, built from
/// [`config::KEY_SPECS`]. Remembers whether each value came from the flag or
/// the environment, so errors can name the right one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFlags {
    overrides: Vec<Override>,
}

impl Args for ConfigFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        let defaults = Config::default();
        for spec in config::KEY_SPECS {
            let long = spec.flag.trim_start_matches('-');
            let help = match defaults.display_value(spec.key) {
                Some(default) if !default.is_empty() => {
                    format!("{} [default: {default}]", spec.help)
                }
                _ => spec.help.to_owned(),
            };
            cmd = cmd.arg(
                clap::Arg::new(spec.key)
                    .long(long)
                    .env(spec.env)
                    .value_name(spec.value_name)
                    .help(help)
                    .help_heading(CONFIG_HEADING)
                    .hide_env_values(spec.kind == ValueKind::Secret)
                    .global(true)
                    .action(clap::ArgAction::Set),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ConfigFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Vec::new();
        for spec in config::KEY_SPECS {
            let value = matches
                .try_get_one::<String>(spec.key)
                .map_err(|err| clap::Error::raw(clap::error::ErrorKind::ValueValidation, err))?;
            let Some(value) = value else { continue };
            let source = match matches.value_source(spec.key) {
                Some(ValueSource::EnvVariable) => OverrideSource::Env(spec.env),
                _ => OverrideSource::Flag(spec.flag),
            };
            overrides.push(Override {
                key: spec.key,
                value: value.clone(),
                source,
            });
        }
        Ok(Self { overrides })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let update = Self::from_arg_matches(matches)?;
        for o in update.overrides {
            self.overrides.retain(|existing| existing.key != o.key);
            self.overrides.push(o);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;

    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("pgcache").chain(args.iter().copied()))
            .unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    #[test]
    fn clap_definition_is_consistent() {
        <Cli as CommandFactory>::command().debug_assert();
    }

    #[test]
    fn every_key_has_a_flag_and_an_env_var() {
        let cmd = <Cli as CommandFactory>::command();
        for key in config::KEYS {
            let flag = key.replace(['.', '_'], "-");
            let env = format!("PGCACHE_{}", key.replace('.', "_").to_uppercase());
            let arg = cmd
                .get_arguments()
                .find(|arg| arg.get_long() == Some(flag.as_str()))
                .unwrap_or_else(|| panic!("no --{flag} for {key}"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "env var of --{flag}"
            );
            assert!(arg.is_global_set(), "--{flag} must be global");
            let spec = config::key_spec(key).unwrap_or_else(|| panic!("no spec for {key}"));
            assert_eq!(spec.flag, format!("--{flag}"));
            assert_eq!(spec.env, env);
        }
        // And no configuration flag without a key.
        let keys: HashSet<&str> = config::KEYS.iter().copied().collect();
        for arg in cmd.get_arguments() {
            if arg.get_help_heading() == Some(CONFIG_HEADING) {
                assert!(keys.contains(arg.get_id().as_str()), "{}", arg.get_id());
            }
        }
    }

    #[test]
    fn no_arguments_means_run_with_nothing_overridden() {
        let cli = parse(&[]);
        assert_eq!(cli.command(), Command::Run);
        // PGCACHE_* variables from the test environment would show up here.
        let from_flags: Vec<_> = cli
            .overrides()
            .into_iter()
            .filter(|o| matches!(o.source, OverrideSource::Flag(_)))
            .collect();
        assert_eq!(from_flags, []);
    }

    #[test]
    fn subcommands() {
        assert_eq!(parse(&["run"]).command(), Command::Run);
        assert_eq!(parse(&["check"]).command(), Command::Check);
        assert_eq!(
            parse(&["demo"]).command(),
            Command::Demo(DemoArgs::default())
        );
        assert_eq!(
            parse(&["demo", "--seconds", "2", "--clients", "8", "--exit"]).command(),
            Command::Demo(DemoArgs {
                seconds: 2,
                clients: 8,
                exit: true
            })
        );
        assert!(Cli::try_parse_from(["pgcache", "demo", "--clients", "0"]).is_err());
        assert!(Cli::try_parse_from(["pgcache", "demo", "--seconds", "x"]).is_err());
        assert!(Cli::try_parse_from(["pgcache", "bogus"]).is_err());
        assert_eq!(
            parse(&[
                "verify",
                "--origin",
                "postgresql://postgres@127.0.0.1:5432/app",
                "--proxy",
                "host=127.0.0.1 port=6432 user=postgres dbname=app",
                "--seed",
                "7",
                "--duration",
                "30m",
                "--faults",
                "--metrics",
                "http://127.0.0.1:9187/metrics",
            ])
            .command(),
            Command::Verify(VerifyArgs {
                origin: "postgresql://postgres@127.0.0.1:5432/app".into(),
                proxy: "host=127.0.0.1 port=6432 user=postgres dbname=app".into(),
                seed: 7,
                duration: Duration::from_secs(1800),
                schema: "pgcache_verify".into(),
                faults: true,
                fault_slot: None,
                restart_command: None,
                calm: 1,
                staleness: Duration::from_secs(5),
                metrics: Some("http://127.0.0.1:9187/metrics".into()),
            })
        );
        assert!(Cli::try_parse_from(["pgcache", "verify", "--origin", "x"]).is_err());
        assert!(
            Cli::try_parse_from([
                "pgcache",
                "verify",
                "--origin",
                "x",
                "--proxy",
                "y",
                "--duration",
                "0s"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["pgcache", "--bogus"]).is_err());
    }

    #[test]
    fn flags_become_overrides_before_or_after_the_subcommand() {
        for args in [
            &[
                "--listen",
                "127.0.0.1:7000",
                "--origin-port",
                "5433",
                "demo",
            ][..],
            &[
                "demo",
                "--listen",
                "127.0.0.1:7000",
                "--origin-port",
                "5433",
            ][..],
            &["--listen=127.0.0.1:7000", "demo", "--origin-port=5433"][..],
        ] {
            let cli = parse(args);
            assert!(matches!(cli.command(), Command::Demo(_)), "{args:?}");
            let overrides = cli.overrides();
            assert!(
                overrides.contains(&Override {
                    key: "listen",
                    value: "127.0.0.1:7000".into(),
                    source: OverrideSource::Flag("--listen"),
                }),
                "{args:?}: {overrides:?}"
            );
            assert!(
                overrides.contains(&Override {
                    key: "origin.port",
                    value: "5433".into(),
                    source: OverrideSource::Flag("--origin-port"),
                }),
                "{args:?}: {overrides:?}"
            );
        }
    }

    #[test]
    fn config_flag() {
        let cli = parse(&["-c", "/etc/pgcache.toml"]);
        assert_eq!(cli.config_path(), Some(PathBuf::from("/etc/pgcache.toml")));
        let cli = parse(&["check", "--config", "x.toml"]);
        assert_eq!(cli.config_path(), Some(PathBuf::from("x.toml")));
        assert_eq!(cli.command(), Command::Check);
    }

    #[test]
    fn missing_config_file_is_an_error_naming_it() {
        let cli = parse(&["--config", "/nonexistent/pgcache.toml"]);
        let err = load_config(&cli).expect_err("missing file must fail");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/pgcache.toml"),
            "{err}"
        );
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let cli = parse(&[
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/pgcache.toml"),
            "--origin-port",
            "70000",
        ]);
        let err = load_config(&cli).expect_err("port out of range");
        assert_eq!(
            err.to_string(),
            "invalid configuration: origin.port (from --origin-port): \
             invalid value: integer `70000`, expected u16"
        );
    }

    #[test]
    fn env_values_are_reported_as_env() {
        // Tests cannot set environment variables (no unsafe code), so point the
        // --listen argument at a variable that is always set and check that the
        // value is attributed to PGCACHE_LISTEN, the variable the real argument reads.
        let Some(path) = std::env::var_os("PATH") else {
            return;
        };
        let cmd = <Cli as CommandFactory>::command().mut_arg("listen", |arg| arg.env("PATH"));
        let matches = cmd
            .try_get_matches_from(["pgcache", "run"])
            .unwrap_or_else(|err| panic!("{err}"));
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| panic!("{err}"));
        let listen = cli
            .overrides()
            .into_iter()
            .find(|o| o.key == "listen")
            .unwrap_or_else(|| panic!("no listen override"));
        assert_eq!(listen.source, OverrideSource::Env("PGCACHE_LISTEN"));
        assert_eq!(Some(listen.value.as_str()), path.to_str());
        let err = config::load(None, &cli.overrides()).expect_err("PATH is no address");
        assert!(
            err.to_string()
                .starts_with("invalid configuration: listen (from PGCACHE_LISTEN): "),
            "{err}"
        );

        // A flag given as well wins, and is named as the flag.
        let cmd = <Cli as CommandFactory>::command().mut_arg("listen", |arg| arg.env("PATH"));
        let matches = cmd
            .try_get_matches_from(["pgcache", "--listen", "127.0.0.1:1"])
            .unwrap_or_else(|err| panic!("{err}"));
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| panic!("{err}"));
        assert!(cli.overrides().contains(&Override {
            key: "listen",
            value: "127.0.0.1:1".into(),
            source: OverrideSource::Flag("--listen"),
        }));
    }

    #[test]
    fn password_env_value_is_hidden_in_help() {
        let cmd = <Cli as CommandFactory>::command();
        let arg = cmd
            .get_arguments()
            .find(|arg| arg.get_long() == Some("origin-password"))
            .unwrap_or_else(|| panic!("no --origin-password"));
        assert!(arg.is_hide_env_values_set());
    }

    #[test]
    fn help_shows_defaults() {
        let help = <Cli as CommandFactory>::command().render_help().to_string();
        assert!(help.contains("[default: 64MiB]"), "{help}");
        assert!(help.contains("PGCACHE_ORIGIN_HOST"), "{help}");
    }
}
