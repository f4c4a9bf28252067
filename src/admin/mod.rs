//! Administrative commands run from the command line against the configured database: `user`,
//! `keys` and `subscribers`. They need no running server and work while one runs on the same
//! database (SQLite included: the file is shared in WAL mode with a busy timeout).
//!
//! This is the command line's edge: it parses arguments into domain values, calls the use cases
//! (`crate::pool::admin`, `crate::crypto::keys`, the store's export pages) and prints the result.

pub mod keys;
pub mod subscribers;
pub mod users;

use chrono::{DateTime, Utc};

use crate::startup::StartupError;

/// Why a command did not succeed, which decides its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The settings, the database or the mail set-up cannot be used: exit status 2, as for
    /// `serve`.
    #[error(transparent)]
    Setup(#[from] StartupError),
    /// The command ran and failed (no such user, password refused, ...): exit status 1, with
    /// this one line on standard error.
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn failed(reason: impl std::fmt::Display) -> Self {
        Self::Failed(reason.to_string())
    }

    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Setup(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

/// A moment as the commands print it: RFC 3339 UTC, whole seconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
