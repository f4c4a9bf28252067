//! Users, sessions, refresh tokens, one-time codes and login-failure counters.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Uid).primary_key())
                    .col(string(Users::Email))
                    .col(string_uniq(Users::EmailKey))
                    .col(string_null(Users::Username))
                    .col(string_null(Users::UsernameKey).unique_key())
                    .col(boolean(Users::EmailVerified).default(false))
                    .col(timestamp_with_time_zone_null(Users::ConfirmedAt))
                    .col(timestamp_with_time_zone_null(Users::DisabledAt))
                    .col(string(Users::FirstName).default(""))
                    .col(string(Users::LastName).default(""))
                    .col(string_null(Users::OrganisationType))
                    .col(string_null(Users::OrganisationName))
                    .col(string_null(Users::Country))
                    .col(json(Users::AdditionalFields))
                    .col(text(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::PasswordChangedAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid(Sessions::Id).primary_key())
                    .col(uuid(Sessions::Uid))
                    .col(string(Sessions::ClientId))
                    .col(timestamp_with_time_zone(Sessions::AuthTime))
                    .col(string(Sessions::OriginJti))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::Uid)
                            .to(Users::Table, Users::Uid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_uid")
                    .table(Sessions::Table)
                    .col(Sessions::Uid)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::Jti).primary_key())
                    .col(uuid(RefreshTokens::SessionId))
                    .col(timestamp_with_time_zone(RefreshTokens::IssuedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_session")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Codes::Table)
                    .col(uuid(Codes::Uid))
                    .col(string(Codes::Purpose))
                    .col(string(Codes::CodeHash))
                    .col(string(Codes::Target))
                    .col(timestamp_with_time_zone(Codes::ExpiresAt))
                    .col(integer(Codes::Attempts).default(0))
                    .col(timestamp_with_time_zone(Codes::SentAt))
                    .col(integer(Codes::Resends).default(0))
                    .col(timestamp_with_time_zone_null(Codes::ResendWindowStart))
                    .col(timestamp_with_time_zone_null(Codes::LastResendAt))
                    .primary_key(Index::create().col(Codes::Uid).col(Codes::Purpose))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Codes::Table, Codes::Uid)
                            .to(Users::Table, Users::Uid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .col(string(LoginFailures::Key).primary_key())
                    .col(integer(LoginFailures::Count).default(0))
                    .col(timestamp_with_time_zone(LoginFailures::LastFailureAt))
                    .col(timestamp_with_time_zone_null(LoginFailures::LockedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginFailures::Table.into_iden(),
            Codes::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
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
    Email,
    EmailKey,
    Username,
    UsernameKey,
    EmailVerified,
    ConfirmedAt,
    DisabledAt,
    FirstName,
    LastName,
    OrganisationType,
    OrganisationName,
    Country,
    AdditionalFields,
    PasswordHash,
    PasswordChangedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Uid,
    ClientId,
    AuthTime,
    OriginJti,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Jti,
    SessionId,
    IssuedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Codes {
    Table,
    Uid,
    Purpose,
    CodeHash,
    Target,
    ExpiresAt,
    Attempts,
    SentAt,
    Resends,
    ResendWindowStart,
    LastResendAt,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Key,
    Count,
    LastFailureAt,
    LockedUntil,
}
