//! The storage error: what a caller can act on, whichever driver (sqlx, rusqlite, the pool)
//! reported it. Deciding "unavailable" versus "bug" happens here, once.

use std::{borrow::Cow, fmt};

/// A failed storage operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database cannot serve right now (unreachable, shutting down or starting up, pool
    /// exhausted, disk full or read-only, busy): worth retrying later. The text is for logs.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement was cancelled for running too long (PostgreSQL's `statement_timeout`),
    /// interrupted because its request went away (SQLite), or a conditional write kept losing
    /// the race for its row. Not an outage.
    #[error("statement cancelled: {0}")]
    TimedOut(String),
    /// A unique constraint refused the write (a taken `emp_id` or username).
    #[error("unique constraint violated")]
    Conflict,
    /// The row the operation names does not exist.
    #[error("not found")]
    NotFound,
    /// The database has no room for the write: SQLite's file reached `SQLITE_MAX_SIZE_MB` or
    /// the disk is full (SQLITE_FULL), PostgreSQL's disk is full (53100). Reads still work;
    /// nothing was stored. The text is for logs.
    #[error("database full: {0}")]
    Full(String),
    /// The database accepts no writes: a SQLite file opened read-only (`?mode=ro`, a read-only
    /// mount or file), a PostgreSQL standby or read-only transaction (25006). Reads still
    /// work; nothing was stored. The text is for logs.
    #[error("database read-only: {0}")]
    ReadOnly(String),
    /// Anything else: a bug or an unexpected state. The text is for logs, never for clients.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// An unexpected failure described by `context` and its cause.
    pub fn other(context: &str, cause: impl fmt::Display) -> Self {
        Error::Other(format!("{context}: {cause}"))
    }
}

/// PostgreSQL SQLSTATEs that mean "the server cannot serve now" rather than "your statement is
/// wrong": class 08 (connection exception), 57P01-57P03 (administrator or crash shutdown,
/// cannot connect now: a restart), 53300 (too many connections).
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// PostgreSQL's disk_full.
const PG_DISK_FULL: &str = "53100";
/// PostgreSQL's read_only_sql_transaction (a standby, `default_transaction_read_only`).
const PG_READ_ONLY: &str = "25006";

/// SQLite's result code for a statement stopped by `sqlite3_interrupt`.
const SQLITE_INTERRUPT: i32 = 9;
/// SQLite's primary result codes for a write refused by a read-only database, and by a full
/// one (the disk, or `max_page_count`).
const SQLITE_READONLY: i32 = 8;
const SQLITE_FULL: i32 = 13;

/// SQLite primary result codes that mean "cannot serve now": BUSY, LOCKED, IOERR, CANTOPEN.
/// CORRUPT is not one of them (that is a bug or damage); FULL and READONLY have their own kinds.
fn sqlite_unavailable(primary: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const IOERR: i32 = 10;
    const CANTOPEN: i32 = 14;
    matches!(primary, BUSY | LOCKED | IOERR | CANTOPEN)
}

/// The kind of a SQLite failure with primary result code `primary`; `text` is for logs.
fn sqlite_error(primary: i32, text: String) -> Error {
    match primary {
        SQLITE_INTERRUPT => Error::TimedOut(text),
        SQLITE_FULL => Error::Full(text),
        SQLITE_READONLY => Error::ReadOnly(text),
        primary if sqlite_unavailable(primary) => Error::Unavailable(text),
        _ => Error::Other(text),
    }
}

/// A failure to open a PostgreSQL connection as one line that says what to do, without the
/// driver's internals (PostgreSQL source lines, pool states): connection refused, unknown
/// host, authentication failed, database missing, TLS required or unavailable.
pub(super) fn connect_error(err: sqlx::Error, options: &sqlx::postgres::PgConnectOptions) -> Error {
    let (host, port, user) = (
        options.get_host(),
        options.get_port(),
        options.get_username(),
    );
    let database = options.get_database().unwrap_or(user);
    let at = format!("{host}:{port}");
    let text = match &err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "connection refused by {at}: is PostgreSQL running there? (check the host and port in DATABASE_URL)"
        ),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!(
                "no answer from {at} (check the host and port in DATABASE_URL, and any firewall)"
            )
        }
        sqlx::Error::Io(io) => format!(
            "cannot reach {at}: {} (check the host and port in DATABASE_URL)",
            crate::files::io_reason(io)
        ),
        sqlx::Error::Tls(e) => {
            let reason = e.to_string();
            if reason.contains("does not support") {
                format!("{at} does not offer TLS, but DATABASE_URL requires it (sslmode)")
            } else {
                format!("TLS with {at} failed: {reason}")
            }
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or(Cow::Borrowed("")).into_owned();
            let message = db.message();
            match code.as_str() {
                "28P01" => format!(
                    "password authentication failed for user \"{user}\" at {at} (check the user and password in DATABASE_URL)"
                ),
                "28000" if message.contains("no encryption") => format!(
                    "{at} accepts user \"{user}\" only over TLS: add ?sslmode=require to DATABASE_URL"
                ),
                "28000" => format!("{at} refused user \"{user}\": {message}"),
                "3D000" => format!(
                    "database \"{database}\" does not exist at {at} (create it, e.g. createdb -h {host} -p {port} -U {user} {database}, or fix DATABASE_URL)"
                ),
                "53300" => format!("{at} has no connection slot left (too many connections)"),
                "57P03" => format!("{at} is starting up or shutting down; try again shortly"),
                _ => format!("{at}: {message}"),
            }
        }
        other => format!("cannot connect to {at}: {other}"),
    };
    Error::Unavailable(text)
}

impl Error {
    /// The cause alone, without the kind's prefix: for one-line messages.
    pub fn reason(&self) -> String {
        match self {
            Error::Unavailable(text)
            | Error::TimedOut(text)
            | Error::Full(text)
            | Error::ReadOnly(text)
            | Error::Other(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

/// How sqlx words a PostgreSQL server's unexpected answer to a new connection's SSLRequest.
const SSL_REQUEST_REFUSED: &str = "unexpected response from SSLRequest";

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Error::Unavailable(err.to_string()),
            // A PostgreSQL server shutting down or starting up can answer a new connection's
            // first message (SSLRequest) with a bare 0 or nothing sqlx expects: seen in the
            // restart test as a 500. Like a refused connection, it is an unavailable database.
            sqlx::Error::Protocol(msg) if msg.starts_with(SSL_REQUEST_REFUSED) => {
                Error::Unavailable(err.to_string())
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or(Cow::Borrowed(""));
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    match &*code {
                        // query_canceled: statement_timeout.
                        "57014" => Error::TimedOut(err.to_string()),
                        PG_DISK_FULL => Error::Full(err.to_string()),
                        PG_READ_ONLY => Error::ReadOnly(err.to_string()),
                        code if postgres_unavailable(code) => Error::Unavailable(err.to_string()),
                        _ => Error::Other(err.to_string()),
                    }
                } else {
                    match code.parse::<i32>() {
                        Ok(extended) => sqlite_error(extended & 0xff, err.to_string()),
                        Err(_) => Error::Other(err.to_string()),
                    }
                }
            }
            _ => Error::Other(err.to_string()),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        /// SQLITE_CONSTRAINT_PRIMARYKEY and SQLITE_CONSTRAINT_UNIQUE.
        const UNIQUE: [i32; 2] = [1555, 2067];
        match &err {
            rusqlite::Error::SqliteFailure(e, _) if UNIQUE.contains(&e.extended_code) => {
                Error::Conflict
            }
            rusqlite::Error::SqliteFailure(e, _) => {
                sqlite_error(e.extended_code & 0xff, err.to_string())
            }
            _ => Error::Other(err.to_string()),
        }
    }
}

impl<E: fmt::Display> From<deadpool::managed::PoolError<E>> for Error {
    fn from(err: deadpool::managed::PoolError<E>) -> Self {
        use deadpool::managed::PoolError;
        match err {
            // A connection that cannot be opened, like one that cannot be lent in time, is an
            // unavailable database.
            PoolError::Timeout(_) | PoolError::Closed | PoolError::Backend(_) => {
                Error::Unavailable(err.to_string())
            }
            PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
                Error::Other(err.to_string())
            }
        }
    }
}

impl From<deadpool::unmanaged::PoolError> for Error {
    fn from(err: deadpool::unmanaged::PoolError) -> Self {
        Error::Unavailable(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_restart_codes_are_unavailable_and_syntax_errors_are_not() {
        for code in ["57P01", "57P02", "57P03", "08006", "08001", "53300"] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["42601", "23505", "22001", "57014"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn a_refused_connection_handshake_is_unavailable_and_other_protocol_errors_are_not() {
        let refused = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(Error::from(refused), Error::Unavailable(_)));
        let other = sqlx::Error::Protocol("unexpected message".into());
        assert!(matches!(Error::from(other), Error::Other(_)));
    }

    #[test]
    fn sqlite_busy_and_io_errors_are_unavailable() {
        for primary in [5, 6, 10, 14] {
            assert!(sqlite_unavailable(primary), "{primary}");
        }
        // SQLITE_ERROR (1), SQLITE_CORRUPT (11), SQLITE_CONSTRAINT (19): not "try later".
        for primary in [1, 11, 19] {
            assert!(!sqlite_unavailable(primary), "{primary}");
        }
    }

    #[test]
    fn a_full_or_read_only_database_is_its_own_kind_on_both_backends() {
        assert!(matches!(sqlite_error(13, String::new()), Error::Full(_)));
        assert!(matches!(sqlite_error(8, String::new()), Error::ReadOnly(_)));
        // SQLITE_READONLY_DBMOVED (1032) and the like carry the primary code in the low byte.
        assert!(matches!(
            sqlite_error(1032 & 0xff, String::new()),
            Error::ReadOnly(_)
        ));
        let rusqlite_full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(13),
            Some("database or disk is full".into()),
        );
        assert!(matches!(Error::from(rusqlite_full), Error::Full(_)));
        assert!(!postgres_unavailable(PG_DISK_FULL) && !postgres_unavailable(PG_READ_ONLY));
    }
}
