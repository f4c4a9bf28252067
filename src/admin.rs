//! Administrative commands run from the command line against the configured database. They work
//! while a server runs on the same database.

use sea_orm::{DatabaseConnection, DbErr};

use crate::{cli::KeysCommand, crypto::keys};

/// `authpool keys list|rotate`.
pub async fn keys(db: &DatabaseConnection, action: KeysCommand) -> Result<(), DbErr> {
    match action {
        KeysCommand::List => {
            println!("{:<44} {:<6} {:<25} RETIRED", "KID", "ALG", "CREATED");
            for key in keys::list(db).await? {
                let retired = key
                    .retired_at
                    .map_or_else(|| "-".to_string(), |t| t.to_rfc3339());
                println!(
                    "{:<44} {:<6} {:<25} {retired}",
                    key.kid,
                    key.algorithm,
                    key.created_at.to_rfc3339()
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
