//! `authpool user create|list|show|confirm|disable|enable|delete|set-password|sign-out`.
//!
//! Each command names an account by email, username or uid, calls one use case of
//! [`crate::pool::admin`] and prints what happened. Nothing secret is printed: no password
//! hash, no code. A password is only ever read from standard input (`--password-stdin`): given
//! as an argument it would show in `ps` and in the shell's history.

use std::{
    fmt::Write as _,
    io::{BufRead, IsTerminal, Read, Write},
};

use entity::user;
use sea_orm::DatabaseConnection;
use serde::Serialize;

use super::{CommandError, timestamp};
use crate::{
    cli::{CreateArgs, ListArgs, StatusArg, UserCommand},
    config::Settings,
    domain::{Email, Password, PersonName, Username},
    pool::{
        self, UserStatus,
        admin::{self, AdminError, CodeMailed, Delivery, NewAccount, Queued},
    },
    startup,
    state::AppState,
    store::users::UserFilter,
};

/// Longest input read by `--password-stdin`: a password has at most 256 characters, i.e. at
/// most 1 KiB of UTF-8; anything much longer is a mistake (a file given by accident).
const MAX_PASSWORD_INPUT: u64 = 4096;

impl From<AdminError> for CommandError {
    fn from(err: AdminError) -> Self {
        CommandError::failed(err)
    }
}

/// Runs one `user` command and prints its result on standard output.
pub async fn run(settings: Settings, action: UserCommand) -> Result<(), CommandError> {
    let mut out = String::new();
    match action {
        UserCommand::Create(args) => create(settings, args, &mut out).await?,
        UserCommand::List(args) => list(&open(&settings).await?, args, &mut out).await?,
        UserCommand::Show { user, json } => {
            let user = admin::find(&open(&settings).await?, &user).await?;
            show(&user, json, &mut out)?;
        }
        UserCommand::Confirm { user } => {
            let db = open(&settings).await?;
            let user = admin::confirm(&db, admin::find(&db, &user).await?.uid).await?;
            let status = UserStatus::of(&user).as_str();
            writeln!(out, "confirmed {}; status {status}", who(&user))?;
        }
        UserCommand::Disable { user } => {
            let db = open(&settings).await?;
            let change = admin::disable(&db, admin::find(&db, &user).await?.uid).await?;
            let revoked = plural(change.sessions_revoked, "session");
            if change.unchanged {
                writeln!(
                    out,
                    "{} was already disabled; {revoked} revoked",
                    who(&change.user)
                )?;
            } else {
                writeln!(out, "disabled {}; {revoked} revoked", who(&change.user))?;
            }
        }
        UserCommand::Enable { user } => {
            let db = open(&settings).await?;
            let change = admin::enable(&db, admin::find(&db, &user).await?.uid).await?;
            let status = UserStatus::of(&change.user).as_str();
            if change.unchanged {
                writeln!(
                    out,
                    "{} was not disabled; nothing changed (status {status})",
                    who(&change.user)
                )?;
            } else {
                writeln!(out, "enabled {}; status {status}", who(&change.user))?;
            }
        }
        UserCommand::Delete { user, yes } => {
            let db = open(&settings).await?;
            let user = admin::find(&db, &user).await?;
            if !yes {
                ask_before_deleting(&user)?;
            }
            let deleted = admin::delete(&db, user.uid).await?;
            writeln!(
                out,
                "deleted {} with {}, {} and {}",
                who(&deleted.user),
                plural(deleted.sessions, "session"),
                plural(deleted.api_tokens, "API token"),
                plural(deleted.allowed_hosts, "allowed host"),
            )?;
        }
        UserCommand::SetPassword { user, .. } => {
            // `--password-stdin` is required by the parser: it is the only way in.
            let raw = read_password()?;
            let state = build_state(settings).await?;
            let user = admin::find(&state.db, &user).await?;
            let context = pool::password_context(&user);
            let context: Vec<&str> = context.iter().map(String::as_str).collect();
            let password = Password::parse(&raw, &state.settings.password, &context)
                .map_err(|e| CommandError::failed(format!("password refused: {e}")))?;
            let (user, revoked) = admin::set_password(&state, user.uid, &password).await?;
            writeln!(
                out,
                "password set for {}; {} revoked",
                who(&user),
                plural(revoked, "session")
            )?;
        }
        UserCommand::SignOut { user } => {
            let db = open(&settings).await?;
            let (user, revoked) = admin::sign_out(&db, admin::find(&db, &user).await?.uid).await?;
            writeln!(
                out,
                "signed out {}: {} revoked",
                who(&user),
                plural(revoked, "session")
            )?;
        }
    }
    print(&out)
}

impl From<std::fmt::Error> for CommandError {
    fn from(err: std::fmt::Error) -> Self {
        CommandError::failed(err)
    }
}

async fn open(settings: &Settings) -> Result<DatabaseConnection, CommandError> {
    Ok(startup::open_database(settings).await?)
}

async fn build_state(settings: Settings) -> Result<AppState, CommandError> {
    Ok(startup::build_state(settings).await?)
}

/// Writes the output; a reader that went away (`| head`) is not an error.
fn print(out: &str) -> Result<(), CommandError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(CommandError::failed(
            format!("cannot write the output: {err}"),
        )),
        _ => Ok(()),
    }
}

/// `ada@example.org (uid ...)`.
fn who(user: &user::Model) -> String {
    format!("{} (uid {})", user.email, user.uid)
}

/// `1 session`, `2 sessions`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

async fn create(
    settings: Settings,
    args: CreateArgs,
    out: &mut String,
) -> Result<(), CommandError> {
    let refused = |what: &str, err: &dyn std::fmt::Display| {
        CommandError::failed(format!("{what} refused: {err}"))
    };
    let email = Email::parse(&args.email).map_err(|e| refused("email", &e))?;
    let username = args
        .username
        .as_deref()
        .map(Username::parse)
        .transpose()
        .map_err(|e| refused("username", &e))?;
    let first_name = PersonName::parse(args.first_name.as_deref().unwrap_or_default())
        .map_err(|e| refused("first name", &e))?;
    let last_name = PersonName::parse(args.last_name.as_deref().unwrap_or_default())
        .map_err(|e| refused("last name", &e))?;
    let password = if args.password_stdin {
        let raw = read_password()?;
        // The same context as at sign-up.
        let context: Vec<&str> = [email.as_str(), first_name.as_str(), last_name.as_str()]
            .into_iter()
            .chain(username.as_ref().map(Username::as_str))
            .collect();
        Some(
            Password::parse(&raw, &settings.password, &context)
                .map_err(|e| refused("password", &e))?,
        )
    } else {
        None
    };

    let state = build_state(settings).await?;
    let new = NewAccount {
        email,
        username,
        first_name,
        last_name,
        password,
        confirmed: args.confirmed,
    };
    let created = admin::create(&state, new).await?;
    let user = &created.user;
    writeln!(
        out,
        "created {}, status {}",
        who(user),
        UserStatus::of(user).as_str()
    )?;
    if let Some(queued) = created.mailed {
        report_delivery(&state, queued, &user.email, out).await?;
    }
    Ok(())
}

/// Delivers the outbox once from this process and says what became of the new account's mail.
async fn report_delivery(
    state: &AppState,
    queued: Queued,
    to: &str,
    out: &mut String,
) -> Result<(), CommandError> {
    let what = match queued.what {
        CodeMailed::SignUp => "a sign-up confirmation code",
        CodeMailed::ResetPassword => {
            "a password-reset code (an invitation: setting a password with it confirms the \
             account; it is valid for 1 hour)"
        }
    };
    let line = match admin::deliver(state, queued.outbox_id).await {
        Ok(Delivery::Sent) => format!("mailed {what} to {to}"),
        Ok(Delivery::Queued { reason: None }) => {
            format!("queued {what} for {to}; a running server is delivering it")
        }
        Ok(Delivery::Queued {
            reason: Some(reason),
        }) => format!(
            "queued {what} for {to}, but it could not be sent now ({}); it stays queued and a \
             running server will retry it",
            one_line(&reason)
        ),
        Ok(Delivery::Failed { reason }) => format!(
            "queued {what} for {to}, but the mail server refused it for good ({})",
            one_line(&reason)
        ),
        Err(err) => format!(
            "queued {what} for {to}, but delivery could not be tried now ({}); it stays queued \
             and a running server will send it",
            one_line(&err.to_string())
        ),
    };
    writeln!(out, "{line}")?;
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the password given with `--password-stdin`: all of standard input, less one trailing
/// line break. Refused from a terminal, where it would be echoed on the screen.
fn read_password() -> Result<String, CommandError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CommandError::failed(
            "--password-stdin reads the password from a pipe or a file, not from a terminal \
             (e.g. `authpool user set-password ada@example.org --password-stdin < file`)",
        ));
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(MAX_PASSWORD_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CommandError::failed(format!("cannot read standard input: {e}")))?;
    if bytes.len() as u64 > MAX_PASSWORD_INPUT {
        return Err(CommandError::failed(
            "password refused: standard input holds more than a password",
        ));
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|_| CommandError::failed("password refused: it is not valid UTF-8"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// Asks, on a terminal, for the account's email to be typed before deleting it; refuses when
/// standard input is not a terminal (a script must say `--yes`).
fn ask_before_deleting(user: &user::Model) -> Result<(), CommandError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CommandError::failed(format!(
            "refusing to delete {} without --yes: standard input is not a terminal to ask on",
            who(user)
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "This deletes {} with its sessions, codes, API tokens and allowed hosts.\n\
         Type its email to confirm: ",
        who(user)
    );
    let _ = stderr.flush();
    let mut typed = String::new();
    stdin
        .lock()
        .read_line(&mut typed)
        .map_err(|e| CommandError::failed(format!("cannot read standard input: {e}")))?;
    let matches = Email::parse(&typed).is_ok_and(|email| email.key() == user.email_key);
    if matches {
        Ok(())
    } else {
        Err(CommandError::failed(
            "not deleted: the email typed does not match",
        ))
    }
}

impl From<StatusArg> for UserStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Unconfirmed => UserStatus::Unconfirmed,
            StatusArg::Confirmed => UserStatus::Confirmed,
            StatusArg::Disabled => UserStatus::Disabled,
        }
    }
}

/// One account in `user list --json`.
#[derive(Serialize)]
struct Listed<'a> {
    uid: String,
    email: &'a str,
    username: Option<&'a str>,
    status: &'static str,
    email_verified: bool,
    created_at: String,
}

impl<'a> From<&'a user::Model> for Listed<'a> {
    fn from(user: &'a user::Model) -> Self {
        Self {
            uid: user.uid.to_string(),
            email: &user.email,
            username: user.username.as_deref(),
            status: UserStatus::of(user).as_str(),
            email_verified: user.email_verified,
            created_at: timestamp(user.created_at),
        }
    }
}

async fn list(
    db: &DatabaseConnection,
    args: ListArgs,
    out: &mut String,
) -> Result<(), CommandError> {
    let filter = UserFilter {
        // Emails are matched by their key: lower case, the domain in ASCII.
        email_key_prefix: args.email_prefix.map(|p| p.trim().to_lowercase()),
        status: args.status.map(UserStatus::from),
    };
    let after = args.after.map(|a| a.trim().to_lowercase());
    let page = admin::list(db, &filter, after.as_deref(), args.limit).await?;
    let rows: Vec<Listed> = page.users.iter().map(Listed::from).collect();
    if args.json {
        let json = serde_json::to_string_pretty(&rows).map_err(CommandError::failed)?;
        writeln!(out, "{json}")?;
    } else {
        table(&rows, out)?;
    }
    if let Some(next) = page.next {
        // Not on standard output, which holds only the listing (a table or valid JSON).
        eprintln!("more users follow: continue with --after {next}");
    }
    Ok(())
}

/// A fixed-width table, each column as wide as its widest value on this page.
fn table(rows: &[Listed], out: &mut String) -> std::fmt::Result {
    let width = |header: &str, value: &dyn Fn(&Listed) -> usize| {
        rows.iter().map(value).max().unwrap_or(0).max(header.len())
    };
    let email_w = width("EMAIL", &|r| r.email.chars().count());
    let username_w = width("USERNAME", &|r| r.username.map_or(1, |u| u.chars().count()));
    writeln!(
        out,
        "{:<36}  {:<email_w$}  {:<username_w$}  {:<11}  {:<8}  CREATED",
        "UID", "EMAIL", "USERNAME", "STATUS", "VERIFIED"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<36}  {:<email_w$}  {:<username_w$}  {:<11}  {:<8}  {}",
            row.uid,
            row.email,
            row.username.unwrap_or("-"),
            row.status,
            row.email_verified,
            row.created_at
        )?;
    }
    Ok(())
}

/// Every field of an account in `user show --json`; never the password hash.
#[derive(Serialize)]
struct Shown<'a> {
    uid: String,
    email: &'a str,
    username: Option<&'a str>,
    status: &'static str,
    email_verified: bool,
    first_name: &'a str,
    last_name: &'a str,
    organisation_type: Option<&'a str>,
    organisation_name: Option<&'a str>,
    country: Option<&'a str>,
    additional_fields: &'a serde_json::Value,
    created_at: String,
    updated_at: String,
    password_changed_at: String,
    confirmed_at: Option<String>,
    disabled_at: Option<String>,
}

fn show(user: &user::Model, json: bool, out: &mut String) -> Result<(), CommandError> {
    let shown = Shown {
        uid: user.uid.to_string(),
        email: &user.email,
        username: user.username.as_deref(),
        status: UserStatus::of(user).as_str(),
        email_verified: user.email_verified,
        first_name: &user.first_name,
        last_name: &user.last_name,
        organisation_type: user.organisation_type.as_deref(),
        organisation_name: user.organisation_name.as_deref(),
        country: user.country.as_deref(),
        additional_fields: &user.additional_fields,
        created_at: timestamp(user.created_at),
        updated_at: timestamp(user.updated_at),
        password_changed_at: timestamp(user.password_changed_at),
        confirmed_at: user.confirmed_at.map(timestamp),
        disabled_at: user.disabled_at.map(timestamp),
    };
    if json {
        let json = serde_json::to_string_pretty(&shown).map_err(CommandError::failed)?;
        writeln!(out, "{json}")?;
        return Ok(());
    }
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_string();
    let fields = [
        ("uid", shown.uid.clone()),
        ("email", shown.email.to_string()),
        ("username", or_dash(shown.username)),
        ("status", shown.status.to_string()),
        ("email_verified", shown.email_verified.to_string()),
        ("first_name", shown.first_name.to_string()),
        ("last_name", shown.last_name.to_string()),
        ("organisation_type", or_dash(shown.organisation_type)),
        ("organisation_name", or_dash(shown.organisation_name)),
        ("country", or_dash(shown.country)),
        ("additional_fields", shown.additional_fields.to_string()),
        ("created_at", shown.created_at.clone()),
        ("updated_at", shown.updated_at.clone()),
        ("password_changed_at", shown.password_changed_at.clone()),
        ("confirmed_at", or_dash(shown.confirmed_at.as_deref())),
        ("disabled_at", or_dash(shown.disabled_at.as_deref())),
    ];
    for (name, value) in fields {
        writeln!(out, "{name:<20} {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(plural(0, "session"), "0 sessions");
        assert_eq!(plural(1, "session"), "1 session");
        assert_eq!(plural(2, "API token"), "2 API tokens");
    }
}
