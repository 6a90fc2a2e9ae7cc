//! Connections to the origin server: TCP or Unix socket, as libpq would
//! choose from `origin.host`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::config::OriginConfig;
use crate::protocol::startup::{CancelKey, encode_cancel_request};

/// Where the origin listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OriginTarget {
    Tcp {
        host: String,
        port: u16,
    },
    /// Path of the socket file (`<dir>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl OriginTarget {
    pub(crate) fn from_config(origin: &OriginConfig) -> Self {
        if origin.host.starts_with('/') {
            OriginTarget::Unix(
                PathBuf::from(&origin.host).join(format!(".s.PGSQL.{}", origin.port)),
            )
        } else {
            OriginTarget::Tcp {
                host: origin.host.clone(),
                port: origin.port,
            }
        }
    }
}

impl fmt::Display for OriginTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginTarget::Tcp { host, port } => write!(f, "{host}:{port}"),
            OriginTarget::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// An open connection to the origin.
pub(crate) enum OriginStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Connect to `target` within `timeout`.
pub(crate) async fn connect(
    target: &OriginTarget,
    timeout: Duration,
) -> std::io::Result<OriginStream> {
    let attempt = async {
        match target {
            OriginTarget::Tcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Ok(OriginStream::Tcp(stream))
            }
            OriginTarget::Unix(path) => Ok(OriginStream::Unix(UnixStream::connect(path).await?)),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("timeout expired after {timeout:?}"),
        )),
    }
}

/// Ask the origin to cancel what the backend holding `key` is running.
/// PostgreSQL answers a cancel request by closing the connection; we wait for
/// that (bounded) so the cancel has been processed when this returns.
pub(crate) async fn send_cancel(
    target: &OriginTarget,
    key: CancelKey,
    timeout: Duration,
) -> std::io::Result<()> {
    let packet = encode_cancel_request(key);
    let exchange = async {
        match connect(target, timeout).await? {
            OriginStream::Tcp(mut s) => {
                s.write_all(&packet).await?;
                let mut sink = [0u8; 16];
                while s.read(&mut sink).await? > 0 {}
            }
            OriginStream::Unix(mut s) => {
                s.write_all(&packet).await?;
                let mut sink = [0u8; 16];
                while s.read(&mut sink).await? > 0 {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
