//! `authpool keys list|rotate`.

use sea_orm::{DatabaseConnection, DbErr};

use super::timestamp;
use crate::{cli::KeysCommand, crypto::keys};

/// Lists the signing keys, or adds a new one.
pub async fn run(db: &DatabaseConnection, action: KeysCommand) -> Result<(), DbErr> {
    match action {
        KeysCommand::List => {
            println!("{:<44} {:<6} {:<20} RETIRED", "KID", "ALG", "CREATED");
            for key in keys::list(db).await? {
                let retired = key.retired_at.map_or_else(|| "-".to_string(), timestamp);
                println!(
                    "{:<44} {:<6} {:<20} {retired}",
                    key.kid,
                    key.algorithm,
                    timestamp(key.created_at)
                );
            }
        }
        KeysCommand::Rotate => {
            let key = keys::rotate(db).await?;
            println!(
                "new signing key {}; running servers switch to it within 10 s, and the previous \
                 key stays published until its tokens have expired",
                key.kid
            );
        }
    }
    Ok(())
}
