//! The origin's credentials: `origin.password`, or a libpq-style passfile, and
//! the `tokio_postgres::Config` for the proxy's own connections.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use super::{ConfigError, OriginConfig};

/// `application_name` of the proxy's own origin connections.
pub const APPLICATION_NAME: &str = "pgcache";

impl OriginConfig {
    /// The password for the proxy's own connections: `password` if set, else
    /// the first matching line of `passfile` (if set), else `None`.
    ///
    /// Reads the passfile synchronously (it is small); a configured passfile
    /// that cannot be read is an error.
    pub fn resolve_password(&self) -> Result<Option<String>, ConfigError> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        let Some(passfile) = &self.passfile else {
            return Ok(None);
        };
        let home = std::env::var_os("HOME");
        let path =
            expand_tilde(passfile, home.as_deref()).map_err(|source| ConfigError::Passfile {
                path: passfile.clone(),
                source,
            })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Passfile { path, source })?;
        Ok(lookup(
            &text,
            &self.host,
            self.port,
            &self.database,
            &self.user,
        ))
    }

    /// A `tokio_postgres::Config` for the proxy's own connections: host (a
    /// Unix socket directory when it starts with `/`), port, database, user,
    /// password (via [`resolve_password`](Self::resolve_password)),
    /// `connect_timeout` and `application_name = pgcache`.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        let mut config = tokio_postgres::Config::new();
        #[cfg(unix)]
        if self.host.starts_with('/') {
            config.host_path(&self.host);
        } else {
            config.host(&self.host);
        }
        #[cfg(not(unix))]
        config.host(&self.host);
        config
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .connect_timeout(self.connect_timeout)
            .application_name(APPLICATION_NAME);
        if let Some(password) = self.resolve_password()? {
            config.password(password);
        }
        Ok(config)
    }
}

/// `~` and `~/…` from `home`; other paths unchanged.
pub(super) fn expand_tilde(path: &Path, home: Option<&OsStr>) -> io::Result<PathBuf> {
    let Ok(rest) = path.strip_prefix("~") else {
        return Ok(path.to_path_buf());
    };
    match home {
        Some(home) if !home.is_empty() => Ok(Path::new(home).join(rest)),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "cannot expand ~: HOME is not set",
        )),
    }
}

/// One field of a passfile line.
struct Field {
    text: String,
    /// Written as a bare `*`: matches anything.
    wildcard: bool,
}

impl Field {
    fn matches(&self, value: &str) -> bool {
        self.wildcard || self.text == value
    }
}

/// Split a line on unescaped `:`; `\x` stands for `x` (so `\:` and `\\`).
fn fields(line: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut text = String::new();
    let mut start = 0;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ':' => {
                fields.push(Field {
                    wildcard: line.get(start..i) == Some("*"),
                    text: std::mem::take(&mut text),
                });
                start = i + 1;
            }
            // A trailing backslash stands for itself.
            '\\' => text.push(chars.next().map_or('\\', |(_, c)| c)),
            other => text.push(other),
        }
    }
    fields.push(Field {
        wildcard: line.get(start..) == Some("*"),
        text,
    });
    fields
}

/// The password of the first line matching `host:port:database:user`, as
/// libpq does. A Unix socket directory also matches `localhost` entries.
pub(super) fn lookup(
    text: &str,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(fields)
        .filter(|fields| fields.len() >= 5)
        .find(|f| {
            (f[0].matches(host) || (host.starts_with('/') && f[0].matches("localhost")))
                && f[1].matches(&port)
                && f[2].matches(database)
                && f[3].matches(user)
        })
        .and_then(|fields| fields.into_iter().nth(4))
        .map(|password| password.text)
}
