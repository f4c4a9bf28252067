//! The `authpool` binary: parse the command line, load the settings, run.

use std::process::ExitCode;

use authpool::{
    admin::{self, CommandError},
    cli::{Cli, Command},
    config::Settings,
    startup::{self, StartupError},
};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let mut settings = match Settings::load(cli.config.as_deref(), &cli.settings.0) {
        Ok(settings) => settings,
        Err(err) => return fail(&CommandError::Setup(err.into())),
    };
    // A one-shot command prints its own result; its log lines (migrations applied, mail sent)
    // would only clutter standard error, so it logs warnings only unless a level was asked for.
    if !matches!(command, Command::Serve) && settings.log_level == "info" {
        settings.log_level = "warn".to_string();
    }
    authpool::telemetry::init(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("authpool: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), CommandError> {
    match command {
        Command::Serve => Ok(startup::serve(settings).await?),
        Command::Migrate => {
            startup::open_database(&settings).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Openapi => {
            // `authpool openapi | head` closes the pipe early: that is not an error.
            use std::io::Write;
            match writeln!(std::io::stdout().lock(), "{}", authpool::api::spec_json()) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(StartupError::Output(err).into())
                }
                _ => Ok(()),
            }
        }
        Command::User { action } => admin::users::run(settings, action).await,
        Command::Subscribers { action } => {
            let db = startup::open_database(&settings).await?;
            admin::subscribers::run(&db, action, &mut std::io::stdout().lock())
                .await
                .map_err(CommandError::failed)
        }
        Command::Keys { action } => {
            let db = startup::open_database(&settings).await?;
            admin::keys::run(&db, action)
                .await
                .map_err(CommandError::failed)
        }
    }
}

/// One line on standard error, no panic or backtrace: `authpool: <reason>` and exit status 2
/// when the settings or the database cannot be used, `error: <reason>` and exit status 1 when
/// a command failed.
fn fail(err: &CommandError) -> ExitCode {
    let reason = err.to_string();
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    match err {
        CommandError::Setup(_) => eprintln!("authpool: {reason}"),
        CommandError::Failed(_) => eprintln!("error: {reason}"),
    }
    ExitCode::from(err.exit_code())
}
