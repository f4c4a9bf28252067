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
