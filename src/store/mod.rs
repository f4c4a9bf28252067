//! The only place that builds database queries. Functions take `&impl ConnectionTrait` so they run
//! alike on a pool or inside a caller's transaction.

pub mod allowed_hosts;
pub mod api_tokens;
pub mod clients;
pub mod codes;
pub mod database;
pub mod housekeeping;
pub mod login_failures;
pub mod outbox;
pub mod reads;
pub mod sessions;
pub mod signing_keys;
pub mod subscriptions;
pub mod users;

use std::{
    collections::HashMap,
    future::Future,
    ops::Deref,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, LazyLock, Mutex as StdMutex},
};

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult,
    QueryResult, Selector, SelectorTrait, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The row of a lookup by primary key or by a unique key: at most one matches, so all rows are
/// fetched and the first is taken. Not `.one()`: it appends `LIMIT ?` with a bound value, and
/// SQLite treats a bound `LIMIT` as plan-affecting, so it re-prepares the cached statement on
/// every execution (measured at ~40 % of such a lookup's time).
pub async fn by_key<S: SelectorTrait>(
    db: &impl ConnectionTrait,
    query: Selector<S>,
) -> Result<Option<S::Item>, DbErr> {
    Ok(query.all(db).await?.into_iter().next())
}

/// A write transaction (see [`begin_write`]). Use it like the transaction it wraps (`&txn` is a
/// connection) and end it with [`commit`](Self::commit); dropping it rolls back.
pub struct WriteTxn {
    /// `None` only once committed or rolled back.
    txn: Option<DatabaseTransaction>,
    /// On SQLite, this process's turn to write, held until the transaction has ended.
    turn: Option<OwnedMutexGuard<()>>,
}

/// Starts a transaction that will write.
///
/// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction that
/// reads first and writes later can fail with "database is locked" when another writer got in
/// between, without waiting for the busy timeout. SQLite has one writer: the writers of this
/// process first take turns on an in-process lock (first come, first served) instead of polling
/// in SQLite's busy handler, whose back-off (up to 100 ms a sleep) made the slow tail; the busy
/// timeout still covers other processes (the admin CLI). A write made outside (one statement on
/// the pool) takes no turn and may wait in the busy handler behind a queue of writers: writes on
/// a busy path belong in one of these. Never start a write transaction while holding one: it
/// would wait for itself.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    let turn = match db.get_database_backend() {
        DatabaseBackend::Sqlite => Some(sqlite_writer(db).lock_owned().await),
        _ => None,
    };
    let txn = db
        .begin_with_options(TransactionOptions {
            isolation_level: None,
            access_mode: None,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        })
        .await?;
    Ok(WriteTxn {
        txn: Some(txn),
        turn,
    })
}

/// The writer lock of a SQLite database file, shared by every pool of this process on it.
fn sqlite_writer(db: &DatabaseConnection) -> Arc<Mutex<()>> {
    static WRITERS: LazyLock<StdMutex<HashMap<PathBuf, Arc<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    // In-memory databases get a unique name per pool.
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    if writers.len() >= 64 {
        // Forget the files nobody is writing to (tests open many).
        writers.retain(|_, lock| Arc::strong_count(lock) > 1);
    }
    writers.entry(file).or_default().clone()
}

impl WriteTxn {
    pub async fn commit(mut self) -> Result<(), DbErr> {
        let result = self.take().commit().await;
        drop(self.turn.take());
        result
    }

    pub async fn rollback(mut self) -> Result<(), DbErr> {
        let result = self.take().rollback().await;
        drop(self.turn.take());
        result
    }

    fn take(&mut self) -> DatabaseTransaction {
        self.txn.take().expect("a write transaction ends once")
    }
}

impl Drop for WriteTxn {
    /// Rolls back. The turn is handed on only once the rollback is done, or the next writer
    /// would find the file still locked.
    fn drop(&mut self) {
        let (Some(txn), Some(turn)) = (self.txn.take(), self.turn.take()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = txn.rollback().await;
                    drop(turn);
                });
            }
            Err(_) => drop(txn),
        }
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        self.txn
            .as_ref()
            .expect("a write transaction is open until it ends")
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'a>>;

/// Every statement goes to the wrapped transaction.
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DatabaseBackend {
        (**self).get_database_backend()
    }

    fn execute_raw<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, ExecResult>
    where
        'a: 'b,
        Self: 'b,
    {
        (**self).execute_raw(stmt)
    }

    fn execute_unprepared<'a, 'c, 'b>(&'a self, sql: &'c str) -> Boxed<'b, ExecResult>
    where
        'a: 'b,
        'c: 'b,
        Self: 'b,
    {
        (**self).execute_unprepared(sql)
    }

    fn query_one_raw<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, Option<QueryResult>>
    where
        'a: 'b,
        Self: 'b,
    {
        (**self).query_one_raw(stmt)
    }

    fn query_all_raw<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, Vec<QueryResult>>
    where
        'a: 'b,
        Self: 'b,
    {
        (**self).query_all_raw(stmt)
    }

    fn support_returning(&self) -> bool {
        (**self).support_returning()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

    use super::begin_write;

    /// A SQLite file whose connections give up at once on a locked database (no busy timeout):
    /// only the in-process turns keep writers apart.
    async fn impatient_sqlite(dir: &tempfile::TempDir) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut options = ConnectOptions::new(url);
        options
            .sqlx_logging(false)
            .max_connections(8)
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::ZERO));
        let db = Database::connect(options).await.expect("connect");
        db.execute_unprepared(
            "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0)",
        )
        .await
        .expect("schema");
        db
    }

    async fn increment(db: &DatabaseConnection, commit: bool) {
        let txn = begin_write(db).await.expect("begin");
        txn.execute_unprepared("UPDATE counter SET n = n + 1")
            .await
            .expect("update");
        // Hold the write lock across an await, as a transaction doing several statements does.
        tokio::task::yield_now().await;
        if commit {
            txn.commit().await.expect("commit");
        }
    }

    async fn count(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT n FROM counter",
            ))
            .await
            .expect("select")
            .expect("a row");
        row.try_get_by_index(0).expect("n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_writers_take_turns_instead_of_finding_the_file_locked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = impatient_sqlite(&dir).await;
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { increment(&db, true).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("no writer failed");
        }
        assert_eq!(count(&db).await, 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dropped_write_transaction_rolls_back_before_the_next_writer_goes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = impatient_sqlite(&dir).await;
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { increment(&db, i % 2 == 0).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("no writer failed");
        }
        assert_eq!(count(&db).await, 16);
    }
}
