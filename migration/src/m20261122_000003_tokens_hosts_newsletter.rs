//! Personal API tokens, allowed hosts, and newsletter subscriptions.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(string(ApiTokens::Key).primary_key())
                    .col(uuid(ApiTokens::Uid))
                    .col(string(ApiTokens::Name).default(""))
                    .col(string(ApiTokens::SecretHash))
                    .col(boolean(ApiTokens::IsActive).default(true))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiTokens::Table, ApiTokens::Uid)
                            .to(Users::Table, Users::Uid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_tokens_uid")
                    .table(ApiTokens::Table)
                    .col(ApiTokens::Uid)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AllowedHosts::Table)
                    .col(uuid(AllowedHosts::Uid))
                    .col(string(AllowedHosts::Host))
                    .col(timestamp_with_time_zone(AllowedHosts::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(AllowedHosts::Uid)
                            .col(AllowedHosts::Host),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AllowedHosts::Table, AllowedHosts::Uid)
                            .to(Users::Table, Users::Uid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(string(Subscriptions::EmailKey).primary_key())
                    .col(string(Subscriptions::Email))
                    .col(uuid_null(Subscriptions::Uid))
                    .col(string(Subscriptions::Status))
                    .col(string_null(Subscriptions::RemoteStatus))
                    .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_uid")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Uid)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Subscriptions::Table.into_iden(),
            AllowedHosts::Table.into_iden(),
            ApiTokens::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Uid,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Key,
    Uid,
    Name,
    SecretHash,
    IsActive,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum AllowedHosts {
    Table,
    Uid,
    Host,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    EmailKey,
    Email,
    Uid,
    Status,
    RemoteStatus,
    CreatedAt,
    UpdatedAt,
}
