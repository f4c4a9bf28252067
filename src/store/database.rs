//! Connecting to SQLite or PostgreSQL and bringing the schema up to date.

use std::{path::Path, time::Duration};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, Statement, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// How long a request waits for a connection (or a locked SQLite file) before giving up: long
/// enough to ride out a busy moment, short enough that a dead database answers 503 quickly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection pool. SQLite files (and their folder) are created when missing and run in
/// WAL mode with a busy timeout, so several processes (a server and the admin CLI) share them.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    let sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url);
    options
        // Statements carry password hashes and code hashes as bound values: never log them.
        .sqlx_logging(false)
        .connect_timeout(ACQUIRE_TIMEOUT)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(max_connections(sqlite))
        // A SQLite connection is a file this process holds open: it cannot have gone away, and
        // pinging it before each use is one more round trip to its thread per query.
        .test_before_acquire(!sqlite)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(ACQUIRE_TIMEOUT)
                .foreign_keys(true)
        });
    Database::connect(options).await
}

/// PostgreSQL serves queries in its own processes: 16 connections. A SQLite connection is a
/// thread of this process; more of them than cores only adds hand-offs and context switches
/// (and it has one writer anyway): two per core, at least four.
fn max_connections(sqlite: bool) -> u32 {
    if !sqlite {
        return 16;
    }
    u32::try_from(sqlite_connections()).unwrap_or(16)
}

/// How many connections a SQLite pool holds (see [`max_connections`]).
pub(crate) fn sqlite_connections() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(4, 16)
}

/// Held while a process sets the database up (migrations, the first signing key, the client
/// id): replicas started at the same moment on an empty PostgreSQL database take turns instead
/// of racing (one would fail creating a table the other had just made, and each would make a
/// signing key of its own). A transaction-scoped advisory lock, so a process that dies holding
/// it releases it with its connection. SQLite needs none: its writers already take turns.
pub struct SetupLock(Option<DatabaseTransaction>);

/// The advisory lock's key: "authpool" in ASCII.
const SETUP_LOCK_KEY: i64 = 0x6175_7468_706f_6f6c;

/// Waits for the setup lock (see [`SetupLock`]).
pub async fn setup_lock(db: &DatabaseConnection) -> Result<SetupLock, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(SetupLock(None));
    }
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [SETUP_LOCK_KEY.into()],
    ))
    .await?;
    Ok(SetupLock(Some(txn)))
}

impl SetupLock {
    pub async fn release(self) -> Result<(), DbErr> {
        match self.0 {
            Some(txn) => txn.commit().await,
            None => Ok(()),
        }
    }
}

/// Runs every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// The file path of a `sqlite:` URL, if it names a file.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(':')).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/authpool.db?mode=rwc"),
            Some("data/authpool.db")
        );
        assert_eq!(sqlite_path("sqlite:///var/lib/a.db"), Some("/var/lib/a.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/test"), None);
    }
}
