//! The `authpool` binary: parse the command line, load the settings, run.

use std::process::ExitCode;

use authpool::{
    cli::{Cli, Command},
    config::Settings,
    startup::{self, StartupError},
};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref(), &cli.settings.0) {
        Ok(settings) => settings,
        Err(err) => return fail(&err.to_string()),
    };
    authpool::telemetry::init(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), StartupError> {
    match command {
        Command::Serve => startup::serve(settings).await,
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
                    Err(StartupError::Output(err))
                }
                _ => Ok(()),
            }
        }
        Command::Subscribers { action } => {
            let db = startup::open_database(&settings).await?;
            authpool::admin::subscribers(&db, action, &mut std::io::stdout().lock())
                .await
                .map_err(|err| match err {
                    authpool::admin::ExportError::Database(err) => StartupError::Database(err),
                    authpool::admin::ExportError::Output(err) => StartupError::Output(err),
                })
        }
        Command::Keys { action } => {
            let db = startup::open_database(&settings).await?;
            authpool::admin::keys(&db, action)
                .await
                .map_err(StartupError::Database)
        }
    }
}

/// One line on standard error and exit status 2: no panic, no backtrace.
fn fail(message: &str) -> ExitCode {
    eprintln!("authpool: {message}");
    ExitCode::from(2)
}
