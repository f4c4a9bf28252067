//! `authpool subscribers export`.

use sea_orm::{DatabaseConnection, DbErr};

use crate::{cli::SubscribersCommand, store};

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Output(#[from] std::io::Error),
}

/// Subscriptions read per query: the export holds one page in memory however long the list is.
const EXPORT_PAGE: u64 = 500;

/// `authpool subscribers export`: the local newsletter list as CSV (RFC 4180 quoting, a header
/// row, one line per address in `email_key` order, times in RFC 3339 UTC).
///
/// A reader that stops early (`| head`) closes the pipe: that ends the export successfully.
pub async fn run(
    db: &DatabaseConnection,
    action: SubscribersCommand,
    out: &mut impl std::io::Write,
) -> Result<(), ExportError> {
    let SubscribersCommand::Export = action;
    match export_subscribers(db, &mut std::io::BufWriter::new(out)).await {
        Err(ExportError::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

async fn export_subscribers(
    db: &DatabaseConnection,
    out: &mut impl std::io::Write,
) -> Result<(), ExportError> {
    use chrono::SecondsFormat;

    writeln!(out, "email,uid,status,remote_status,created_at,updated_at")?;
    let mut after: Option<String> = None;
    loop {
        let page = store::subscriptions::page_after(db, after.as_deref(), EXPORT_PAGE).await?;
        for row in &page {
            let uid = row.uid.map(|uid| uid.to_string()).unwrap_or_default();
            writeln!(
                out,
                "{},{},{},{},{},{}",
                csv_field(&row.email),
                csv_field(&uid),
                csv_field(&row.status),
                csv_field(row.remote_status.as_deref().unwrap_or_default()),
                row.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                row.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            )?;
        }
        match page.last() {
            Some(last) if page.len() as u64 == EXPORT_PAGE => after = Some(last.email_key.clone()),
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}

/// One CSV field: quoted, with quotes doubled, when it holds a separator, a quote, a line break
/// or edge spaces (a local part may hold `'` and, written by older versions or other tools, `,`
/// or `"`).
fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    let needs_quotes =
        value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\"")).into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("ada@example.org"), "ada@example.org");
        assert_eq!(csv_field("o'neil@example.org"), "o'neil@example.org");
        assert_eq!(csv_field("a,b@example.org"), "\"a,b@example.org\"");
        assert_eq!(
            csv_field("say\"hi\"@example.org"),
            "\"say\"\"hi\"\"@example.org\""
        );
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field(""), "");
    }
}
