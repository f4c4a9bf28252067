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
pub mod sessions;
pub mod signing_keys;
pub mod subscriptions;
pub mod users;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

/// Starts a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`): a deferred transaction that reads first and writes later can fail with "database
/// is locked" when another writer got in between, without waiting for the busy timeout.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
    })
    .await
}
