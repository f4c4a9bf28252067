//! Schema migrations, run at start-up, by `authpool migrate` and by every test database.
//! The same statements build the schema on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_foundation;
mod m20261122_000002_user_pool;
mod m20261122_000003_tokens_hosts_newsletter;
mod m20261122_000004_housekeeping;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_user_pool::Migration),
            Box::new(m20261122_000003_tokens_hosts_newsletter::Migration),
            Box::new(m20261122_000004_housekeeping::Migration),
        ]
    }
}
