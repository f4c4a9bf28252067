//! Indexes for housekeeping: each purge finds its expired rows by an index, in small batches,
//! instead of scanning a table that grows with every sign-in.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Codes {
    Table,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    LastFailureAt,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    FailedAt,
}

/// (name, table, column) of each index.
fn indexes() -> [(&'static str, DynIden, DynIden); 5] {
    [
        (
            "codes_expires_at",
            Codes::Table.into_iden(),
            Codes::ExpiresAt.into_iden(),
        ),
        (
            "sessions_expires_at",
            Sessions::Table.into_iden(),
            Sessions::ExpiresAt.into_iden(),
        ),
        (
            "sessions_revoked_at",
            Sessions::Table.into_iden(),
            Sessions::RevokedAt.into_iden(),
        ),
        (
            "login_failures_last_failure_at",
            LoginFailures::Table.into_iden(),
            LoginFailures::LastFailureAt.into_iden(),
        ),
        (
            "mail_outbox_failed_at",
            MailOutbox::Table.into_iden(),
            MailOutbox::FailedAt.into_iden(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Sent outbox rows are found by the existing (sent_at, next_attempt_at) index.
        for (name, table, column) in indexes() {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
