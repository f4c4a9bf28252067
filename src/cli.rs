//! The command line: subcommands, and one flag per setting (each also read from its
//! `AUTHPOOL_*` variable), all generated from [`crate::config::SETTINGS`].

use std::path::PathBuf;

use clap::{Arg, ArgMatches, Args, Command as ClapCommand, FromArgMatches, Parser, Subcommand};

use crate::config::{RawSettings, SETTINGS};

/// A self-hosted identity provider with AWS Cognito user-pool semantics.
///
/// Settings come from built-in defaults, then the TOML file given with --config, then AUTHPOOL_*
/// environment variables, then flags: each later source wins.
#[derive(Debug, Parser)]
#[command(name = "authpool", version, max_term_width = 110)]
pub struct Cli {
    /// TOML file of settings (keys as the flags below, with `_` for `-`).
    #[arg(long, global = true, env = "AUTHPOOL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub settings: SettingArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage user accounts: create, list, show, confirm, disable, enable, delete, set a
    /// password, sign out.
    ///
    /// Each command runs against the configured database, needs no running server and is safe
    /// while one runs (a change such as disabling takes effect on the server at once). A USER is
    /// an email, a username or a uid. Exit status: 0 on success, 1 when the command failed (one
    /// line `error: <reason>` on standard error), 2 when the settings or the database are
    /// unusable.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Manage token-signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Work with the local newsletter list.
    Subscribers {
        #[command(subcommand)]
        action: SubscribersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys with their state.
    List,
    /// Add a new signing key; it signs from then on, and the old one stays published until its
    /// tokens have expired.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Print the local newsletter list as CSV with a header row (email, uid, status,
    /// remote_status, created_at, updated_at) on standard output.
    Export,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    ///
    /// With --password-stdin the password must pass the password policy, as at sign-up; the
    /// account is UNCONFIRMED and the sign-up confirmation code is mailed exactly as
    /// registration does, unless --confirmed is given (then nothing is mailed). Without a
    /// password the account gets an unusable random one and a password-reset code is mailed:
    /// setting a password with it also confirms the account, so it works as an invitation (the
    /// code is valid for 1 hour; a new one can be asked for with POST /api/password/reset).
    ///
    /// Mail is queued with the account, then this command tries to deliver it at once; if that
    /// fails, it stays queued for a running server to retry.
    Create(CreateArgs),
    /// List accounts in email order, a page at a time.
    ///
    /// Prints a table (or with --json a JSON array) of uid, email, username, status,
    /// email_verified and created_at. When more accounts follow, a line on standard error gives
    /// the --after value that continues the listing.
    List(ListArgs),
    /// Show every field of one account (never the password hash).
    Show {
        /// Email, username or uid.
        user: String,
        /// Print a JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Confirm an UNCONFIRMED account and mark its email verified, as the emailed code would.
    /// Confirming an account already confirmed is an error.
    Confirm {
        /// Email, username or uid.
        user: String,
    },
    /// Disable an account: its sign-ins are refused (403 UserDisabledException) and every one of
    /// its sessions is revoked at once, so its tokens get 401.
    Disable {
        /// Email, username or uid.
        user: String,
    },
    /// Enable a disabled account again; it returns to CONFIRMED (or UNCONFIRMED). Its old
    /// sessions stay revoked.
    Enable {
        /// Email, username or uid.
        user: String,
    },
    /// Delete an account with its sessions, refresh tokens, codes, API tokens, allowed hosts and
    /// sign-in failure counter, in one transaction.
    ///
    /// Kept: its newsletter subscription (keyed by email; unlinked from the account) and mail
    /// already queued to it. Asks for the account's email to be typed when standard input is a
    /// terminal; otherwise --yes is required.
    Delete {
        /// Email, username or uid.
        user: String,
        /// Delete without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Set a new password, read from standard input, and revoke every session of the account.
    ///
    /// The password must pass the password policy. Every session is revoked because an
    /// administrator setting a password usually means the account may be in the wrong hands.
    /// The account's status does not change (an UNCONFIRMED account stays so).
    SetPassword {
        /// Email, username or uid.
        user: String,
        /// Read the new password from standard input (a pipe or a file; one trailing line
        /// break is dropped). Required: a password given as an argument would show in `ps` and
        /// in the shell's history.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Sign an account out everywhere: revoke all its sessions and print how many were live.
    SignOut {
        /// Email, username or uid.
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The account's email.
    pub email: String,
    /// Read the password from standard input (a pipe or a file; one trailing line break is
    /// dropped). Never given as an argument: it would show in `ps` and in the shell's history.
    #[arg(long)]
    pub password_stdin: bool,
    /// Create the account CONFIRMED, with its email verified.
    #[arg(long)]
    pub confirmed: bool,
    /// An optional username, which can be used in place of the email to sign in.
    #[arg(long)]
    pub username: Option<String>,
    /// The account's first name (at most 150 characters).
    #[arg(long)]
    pub first_name: Option<String>,
    /// The account's last name (at most 150 characters).
    #[arg(long)]
    pub last_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only accounts whose (lower-cased) email starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub email_prefix: Option<String>,
    /// Only accounts with this status.
    #[arg(long, value_enum, ignore_case = true)]
    pub status: Option<StatusArg>,
    /// Accounts per page (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// Start after this (lower-cased) email: the cursor printed at the end of the previous page.
    #[arg(long, value_name = "EMAIL")]
    pub after: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A user status, as `--status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    #[value(name = "UNCONFIRMED")]
    Unconfirmed,
    #[value(name = "CONFIRMED")]
    Confirmed,
    #[value(name = "DISABLED")]
    Disabled,
}

/// The values given for settings by environment or flag, keyed as in [`SETTINGS`].
#[derive(Debug, Default, Clone)]
pub struct SettingArgs(pub RawSettings);

/// `bind` → `--bind`, `database_url` → `--database-url`.
fn flag(key: &str) -> String {
    key.replace('_', "-")
}

impl Args for SettingArgs {
    fn augment_args(cmd: ClapCommand) -> ClapCommand {
        SETTINGS.iter().fold(cmd, |cmd, spec| {
            let help = match spec.default {
                Some(default) => format!("{} [default: {default}]", spec.help),
                None => spec.help.to_string(),
            };
            cmd.arg(
                Arg::new(spec.key)
                    .long(flag(spec.key))
                    .env(spec.env)
                    .value_name("VALUE")
                    .help(help)
                    .global(true)
                    .hide_env_values(true)
                    .help_heading("Settings"),
            )
        })
    }

    fn augment_args_for_update(cmd: ClapCommand) -> ClapCommand {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut raw = RawSettings::new();
        for spec in SETTINGS {
            if let Some(value) = matches.get_one::<String>(spec.key) {
                raw.insert(spec.key.to_string(), value.clone());
            }
        }
        Ok(Self(raw))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_after_the_subcommand_are_read() {
        let cli = Cli::try_parse_from(["authpool", "serve", "--bind", "127.0.0.1:9999"]).unwrap();
        assert_eq!(
            cli.settings.0.get("bind").map(String::as_str),
            Some("127.0.0.1:9999")
        );
    }

    #[test]
    fn help_lists_every_setting_with_its_variable() {
        let help = Cli::command().render_long_help().to_string();
        for spec in SETTINGS {
            assert!(help.contains(spec.env), "{} missing from --help", spec.env);
        }
    }
}
