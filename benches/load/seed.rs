//! A fresh database (a SQLite file in the run's temp dir, or a new PostgreSQL database dropped at
//! the end) and its seeded users: confirmed accounts inserted directly, in large batched INSERTs
//! inside transactions, all sharing one production-parameter argon2id hash of the same password.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use authpool::{config::Settings, crypto::password::Hasher, store::database};
use chrono::Utc;
use entity::user;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait, TransactionTrait,
    prelude::Uuid,
};

/// The password of every seeded user.
pub const PASSWORD: &str = "bench-Password-7f3c9a";

/// Rows per INSERT: 19 columns each stays under SQLite's 32 766 bound values (and PostgreSQL's
/// 65 535).
const ROWS_PER_INSERT: u64 = 1_000;
/// Rows per transaction.
const ROWS_PER_TRANSACTION: u64 = 50_000;

/// The email of seeded user `i`.
pub fn email(i: u64) -> String {
    format!("user{i:07}@bench.example.org")
}

/// The database of one run.
pub struct BenchDb {
    pub url: String,
    pub backend: &'static str,
    /// PostgreSQL: the admin URL and the name of the database to drop at the end.
    postgres: Option<(String, String)>,
}

impl BenchDb {
    /// A SQLite file in `dir`, or a new database on the PostgreSQL server of `admin_url`.
    pub async fn create(admin_url: Option<&str>, dir: &Path) -> Result<Self, String> {
        let Some(admin_url) = admin_url else {
            return Ok(Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("authpool.db").display()),
                backend: "SQLite",
                postgres: None,
            });
        };
        let name = format!("authpool_bench_{}", Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        admin.close().await.ok();
        let mut url = url::Url::parse(admin_url).map_err(|e| format!("--database-url: {e}"))?;
        url.set_path(&name);
        Ok(Self {
            url: url.to_string(),
            backend: "PostgreSQL",
            postgres: Some((admin_url.to_string(), name)),
        })
    }

    /// Drops the PostgreSQL database (the SQLite file goes with the temp dir).
    pub async fn drop_database(self) {
        let Some((admin_url, name)) = self.postgres else {
            return;
        };
        match Database::connect(&admin_url).await {
            Ok(admin) => {
                if let Err(e) = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                {
                    eprintln!("warning: could not drop database {name}: {e}");
                }
                admin.close().await.ok();
            }
            Err(e) => eprintln!("warning: could not drop database {name}: {e}"),
        }
    }
}

/// How seeding went.
pub struct Seeded {
    /// Time to compute the one shared argon2id hash.
    pub hash_time: Duration,
    /// Time to insert every user.
    pub insert_time: Duration,
}

/// Brings the schema up to date, then inserts `users` confirmed users.
pub async fn seed(url: &str, users: u64) -> Result<Seeded, String> {
    let db = database::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    database::migrate(&db)
        .await
        .map_err(|e| format!("migrate: {e}"))?;

    let started = Instant::now();
    // authpool's own hasher with its production defaults: the hash logins will verify.
    let hasher = Hasher::new(&Settings::defaults().argon2).map_err(|e| e.to_string())?;
    let hash = hasher.hash(PASSWORD).await.map_err(|e| e.to_string())?;
    let hash_time = started.elapsed();

    let started = Instant::now();
    let mut next = 0;
    while next < users {
        let end = (next + ROWS_PER_TRANSACTION).min(users);
        insert_range(&db, next, end, &hash).await?;
        next = end;
        if users >= 100_000 && next % 100_000 == 0 {
            eprintln!(
                "  seeded {next} of {users} users ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    db.close().await.ok();
    Ok(Seeded {
        hash_time,
        insert_time: started.elapsed(),
    })
}

async fn insert_range(
    db: &DatabaseConnection,
    from: u64,
    to: u64,
    hash: &str,
) -> Result<(), String> {
    let txn = db.begin().await.map_err(|e| format!("begin: {e}"))?;
    let now = Utc::now();
    let mut start = from;
    while start < to {
        let end = (start + ROWS_PER_INSERT).min(to);
        let rows = (start..end).map(|i| {
            let email = email(i);
            user::ActiveModel {
                uid: Set(Uuid::new_v4()),
                email_key: Set(email.clone()),
                email: Set(email),
                username: Set(None),
                username_key: Set(None),
                email_verified: Set(true),
                confirmed_at: Set(Some(now)),
                disabled_at: Set(None),
                first_name: Set("Bench".to_string()),
                last_name: Set(format!("User {i}")),
                organisation_type: Set(None),
                organisation_name: Set(None),
                country: Set(None),
                additional_fields: Set(serde_json::json!({})),
                password_hash: Set(hash.to_string()),
                password_changed_at: Set(now),
                created_at: Set(now),
                updated_at: Set(now),
            }
        });
        user::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| format!("insert users {start}..{end}: {e}"))?;
        start = end;
    }
    txn.commit().await.map_err(|e| format!("commit: {e}"))
}
