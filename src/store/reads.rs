//! The connection for the hottest reads: the one that authenticates a request, which runs before
//! every authenticated call and is most of the database work of a read-only one, and a sign-in's
//! reads before its hash.
//!
//! On PostgreSQL it is the pool. On SQLite it is a few connections kept out of sqlx's pool: sqlx
//! pings every connection it takes back (a round trip to the connection's thread, after every
//! query), so a one-query request paid two hand-offs to a SQLite thread and back, and those
//! context switches were the largest cost of an authenticated GET in the load benchmark. A
//! connection kept here is handed from one query to the next without that ping. What the ping
//! guards against, a connection left mid-statement by a cancelled query, cannot reach the next
//! query: only a query that completed puts its connection back; one whose future was dropped or
//! that failed takes its connection with it, and a new one is opened in its place.

use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
    sqlx::{self, AssertSqlSafe, SqliteConnection, SqlitePool},
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Semaphore;

/// A connection for reads (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Reads {
    db: DatabaseConnection,
    kept: Option<Arc<Kept>>,
}

/// SQLite connections taken out of the pool: as many as the pool may hold, each used by one
/// query at a time.
struct Kept {
    pool: SqlitePool,
    /// One turn per connection, handed out first come, first served: one queue for all of
    /// them, so a query waits for whichever connection frees first (a queue per connection made
    /// the slow tail longer).
    turns: Semaphore,
    /// The connections not in use. A turn guarantees one here, or room to open one.
    idle: StdMutex<Vec<SqliteConnection>>,
}

impl Reads {
    /// Reads on `db`; on SQLite, on connections of its own (see the module docs).
    pub fn new(db: &DatabaseConnection) -> Self {
        let kept = (db.get_database_backend() == DbBackend::Sqlite).then(|| {
            let connections = super::database::sqlite_connections();
            Arc::new(Kept {
                pool: db.get_sqlite_connection_pool().clone(),
                turns: Semaphore::new(connections),
                idle: StdMutex::new(Vec::with_capacity(connections)),
            })
        });
        Self {
            db: db.clone(),
            kept,
        }
    }
}

impl Kept {
    async fn query(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let _turn = self.turns.acquire().await.expect("never closed");
        let idle = self.idle().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self
                .pool
                .acquire()
                .await
                .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e.into())))?
                .detach(),
        };
        let values = SqlxValues(statement.values.unwrap_or(sea_orm::Values(Vec::new())));
        let rows = sqlx::query_with(AssertSqlSafe(statement.sql), values)
            .fetch_all(&mut connection)
            .await
            .map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e.into())))?;
        self.idle().push(connection);
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // Nothing panics while holding it; a poisoned list is still a list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Writes are not what this is for; they go to the pool like any other.
    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.db.execute_raw(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.kept {
            Some(kept) => Ok(kept.query(statement).await?.into_iter().next()),
            None => self.db.query_one_raw(statement).await,
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.kept {
            Some(kept) => kept.query(statement).await,
            None => self.db.query_all_raw(statement).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::Reads;

    fn count() -> Statement {
        Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM t")
    }

    async fn counted(reads: &Reads) -> i64 {
        let row = reads.query_one_raw(count()).await.unwrap().expect("a row");
        row.try_get_by_index(0).unwrap()
    }

    #[tokio::test]
    async fn kept_connections_see_every_commit_and_survive_failed_and_dropped_queries() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = crate::store::database::connect(&url).await.unwrap();
        db.execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        let reads = Reads::new(&db);
        assert!(reads.kept.is_some(), "SQLite reads use kept connections");

        for expected in 1..=3 {
            db.execute_unprepared("INSERT INTO t VALUES (1)")
                .await
                .unwrap();
            // Every place, in turn, sees the write committed through the pool.
            for _ in 0..4 {
                assert_eq!(counted(&reads).await, expected);
            }
        }

        let bad = Statement::from_string(DbBackend::Sqlite, "SELECT nothing FROM nowhere");
        for _ in 0..4 {
            assert!(reads.query_all_raw(bad.clone()).await.is_err());
        }
        assert_eq!(counted(&reads).await, 3);

        // Queries dropped before they finish.
        for _ in 0..4 {
            let _ = tokio::time::timeout(Duration::ZERO, reads.query_all_raw(count())).await;
        }
        for _ in 0..4 {
            assert_eq!(counted(&reads).await, 3);
        }
    }
}
