//! SQLSTATE codes the proxy itself reports (from PostgreSQL's `errcodes.txt`).

/// A five-character SQLSTATE code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(&'static str);

impl SqlState {
    /// `08001` sqlclient_unable_to_establish_sqlconnection.
    pub const UNABLE_TO_CONNECT: SqlState = SqlState("08001");
    /// `08006` connection_failure.
    pub const CONNECTION_FAILURE: SqlState = SqlState("08006");
    /// `08P01` protocol_violation.
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    /// `0A000` feature_not_supported.
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    /// `53300` too_many_connections.
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState("53300");
    /// `57P01` admin_shutdown.
    pub const ADMIN_SHUTDOWN: SqlState = SqlState("57P01");
    /// `57P03` cannot_connect_now.
    pub const CANNOT_CONNECT_NOW: SqlState = SqlState("57P03");

    pub fn code(self) -> &'static str {
        self.0
    }
}
