//! Queries on sessions and their refresh tokens.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use entity::{refresh_token, session, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryResult, QuerySelect, QueryTrait, Statement, Value,
    prelude::{Expr, Uuid},
};

/// Inserts a session row, without reading it back: the caller holds it already.
pub async fn insert(
    db: &impl ConnectionTrait,
    row: session::Model,
) -> Result<session::Model, DbErr> {
    session::Entity::insert(session::ActiveModel::from(row.clone()))
        .exec_without_returning(db)
        .await?;
    Ok(row)
}

pub async fn by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<session::Model>, DbErr> {
    super::by_key(db, session::Entity::find_by_id(id).into_model()).await
}

/// A session with its user, as read to authenticate a request.
#[derive(Debug)]
pub struct SessionOfUser {
    pub session: session::Model,
    pub user: user::Model,
    /// Whether the user is on the newsletter list (see `subscriptions::exists_for`): the account
    /// view shows it, and a column of this read costs far less than a second round trip.
    pub subscribed: bool,
}

impl FromQueryResult for SessionOfUser {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        // The column prefixes of a `select_also` (sea-orm's `SelectA` and `SelectB`).
        Ok(Self {
            session: session::Model::from_query_result(row, "A_")?,
            user: user::Model::from_query_result(row, "B_")?,
            subscribed: row.try_get("", SUBSCRIBED_COLUMN)?,
        })
    }
}

const SUBSCRIBED_COLUMN: &str = "subscribed";

/// A session with its user: one primary-key lookup joined to the user's row by its primary key,
/// for authenticating a request, with the user's newsletter flag.
pub async fn with_user(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<SessionOfUser>, DbErr> {
    let statement = authenticating(db.get_database_backend(), id);
    let rows = SessionOfUser::find_by_statement(statement).all(db).await?;
    Ok(rows.into_iter().next())
}

/// The statement of [`with_user`]. It runs before every authenticated request, and building it
/// (some fifty columns, a join and a subquery) cost more than SQLite took to run it: it is built
/// once per backend, and only the session id changes.
fn authenticating(backend: DbBackend, id: Uuid) -> Statement {
    static BUILT: [OnceLock<Statement>; 2] = [OnceLock::new(), OnceLock::new()];
    let build = |id: Uuid| {
        let query = session::Entity::find_by_id(id)
            .join(JoinType::InnerJoin, owner())
            .select_also(user::Entity)
            .expr_as(
                super::subscriptions::exists_for_user_row(super::subscriptions::SUBSCRIBED),
                SUBSCRIBED_COLUMN,
            );
        backend.build(&query.into_query())
    };
    let slot = match backend {
        DbBackend::Sqlite => &BUILT[0],
        DbBackend::Postgres => &BUILT[1],
        _ => return build(id),
    };
    // Built with the nil id as a marker for the one value that changes.
    let mut statement = slot.get_or_init(|| build(Uuid::nil())).clone();
    if let Some(values) = &mut statement.values {
        for value in &mut values.0 {
            if *value == Value::from(Uuid::nil()) {
                *value = Value::from(id);
            }
        }
    }
    statement
}

/// The session → user relation (the entity declares none; the table has the foreign key).
fn owner() -> sea_orm::RelationDef {
    session::Entity::belongs_to(user::Entity)
        .from(session::Column::Uid)
        .to(user::Column::Uid)
        .into()
}

/// Revokes one session (no-op when already revoked).
pub async fn revoke(db: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
}

/// Revokes every live session of a user, except `keep` when given.
pub async fn revoke_all(
    db: &impl ConnectionTrait,
    uid: Uuid,
    keep: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut query = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::Uid.eq(uid))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        query = query.filter(session::Column::Id.ne(keep));
    }
    Ok(query.exec(db).await?.rows_affected)
}

pub async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    row: refresh_token::ActiveModel,
) -> Result<(), DbErr> {
    // Not read back: nobody needs it.
    refresh_token::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

pub async fn refresh_token(
    db: &impl ConnectionTrait,
    jti: &str,
) -> Result<Option<refresh_token::Model>, DbErr> {
    super::by_key(
        db,
        refresh_token::Entity::find_by_id(jti.to_string()).into_model(),
    )
    .await
}

/// Marks a refresh token used, only if nobody did first: `true` when this call won. With
/// `live_session`, only if also that session is still live and its user still confirmed and
/// enabled (`UserStatus::Confirmed`): for a rotation decided on reads made before the write
/// transaction.
pub async fn use_refresh_token(
    db: &impl ConnectionTrait,
    jti: &str,
    live_session: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let mut query = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Jti.eq(jti))
        .filter(refresh_token::Column::UsedAt.is_null());
    if let Some(id) = live_session {
        let live = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .join(JoinType::InnerJoin, owner())
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .filter(user::Column::DisabledAt.is_null())
            .filter(user::Column::ConfirmedAt.is_not_null())
            .into_query();
        query = query.filter(refresh_token::Column::SessionId.in_subquery(live));
    }
    Ok(query.exec(db).await?.rows_affected == 1)
}

/// Deletes every session of a user with its refresh tokens; returns how many sessions.
pub async fn delete_all(db: &impl ConnectionTrait, uid: Uuid) -> Result<u64, DbErr> {
    let sessions_of_user = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::Uid.eq(uid))
        .into_query();
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::SessionId.in_subquery(sessions_of_user))
        .exec(db)
        .await?;
    let result = session::Entity::delete_many()
        .filter(session::Column::Uid.eq(uid))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Value, prelude::Uuid};

    use super::authenticating;

    #[test]
    fn the_built_statement_carries_each_calls_session_id() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
            let first = authenticating(backend, a);
            let second = authenticating(backend, b);
            assert_eq!(first.sql, second.sql);
            let ids = |s: &sea_orm::Statement| {
                s.values
                    .as_ref()
                    .unwrap()
                    .0
                    .iter()
                    .filter(|v| matches!(v, Value::Uuid(_)))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&first), vec![Value::from(a)]);
            assert_eq!(ids(&second), vec![Value::from(b)]);
        }
    }
}
