//! Where messages go: an SMTP server, a folder of `.eml` files, or standard output.

use std::{io::Write, path::Path, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
        response::Category,
    },
};

use super::MailSetupError;
use crate::config::MailTransportConfig;

/// The longest one message may take to hand over, connection included. A stuck server must not
/// hold a claimed batch past its lease (see `worker`), nor shutdown for long.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured transport, built once at start-up.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
    /// Development only: the whole message, code included, on standard output.
    Log,
}

/// Why a message was not handed over.
#[derive(Debug)]
pub struct SendError {
    /// The server refused this message for good (5xx, other than authentication); retrying the
    /// same message cannot help, unlike an outage or a misconfigured account.
    pub permanent: bool,
    /// A short description for `last_error` and the log: no body, no credentials.
    pub reason: String,
}

impl SendError {
    fn transient(reason: impl Into<String>) -> Self {
        Self {
            permanent: false,
            reason: reason.into(),
        }
    }
}

impl Transport {
    /// Builds the transport; for a folder, creates it.
    pub fn new(config: &MailTransportConfig) -> Result<Transport, MailSetupError> {
        match config {
            MailTransportConfig::Smtp {
                host,
                port,
                implicit_tls,
                credentials,
            } => {
                let tls = TlsParameters::new(host.clone()).map_err(|e| MailSetupError::Smtp {
                    host: host.clone(),
                    reason: e.to_string(),
                })?;
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(*port)
                    .timeout(Some(SEND_TIMEOUT))
                    // smtps:// wraps the connection in TLS from the start; smtp:// upgrades with
                    // STARTTLS whenever the server offers it, as the configuration promises.
                    .tls(if *implicit_tls {
                        Tls::Wrapper(tls)
                    } else {
                        Tls::Opportunistic(tls)
                    });
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                Ok(Transport::Smtp(builder.build()))
            }
            MailTransportConfig::File(dir) => {
                create_folder(dir)?;
                Ok(Transport::File(AsyncFileTransport::new(dir)))
            }
            MailTransportConfig::Log => Ok(Transport::Log),
        }
    }

    /// Hands one message over, giving up after [`SEND_TIMEOUT`].
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        let attempt = async {
            match self {
                Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(smtp_error),
                Transport::File(file) => file
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::transient(format!("writing the .eml file: {e}"))),
                Transport::Log => print_message(&message),
            }
        };
        tokio::time::timeout(SEND_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::transient(format!(
                    "no answer within {} s",
                    SEND_TIMEOUT.as_secs()
                )))
            })
    }
}

/// Builds the message: multipart/alternative with the text part first, so clients that show
/// HTML pick the last one they understand. `Date` is when the email was queued.
pub fn compose(
    from: &Mailbox,
    to: Mailbox,
    subject: &str,
    text: String,
    html: String,
    queued_at: std::time::SystemTime,
) -> Result<Message, lettre::error::Error> {
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .date(queued_at)
        .message_id(None)
        .multipart(MultiPart::alternative_plain_html(text, html))
}

fn create_folder(dir: &Path) -> Result<(), MailSetupError> {
    std::fs::create_dir_all(dir).map_err(|e| MailSetupError::MailFolder {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes the message to standard output rather than through `tracing`: this transport exists
/// so a developer can read codes without a mail server, while logs are shipped and kept where
/// codes must never appear. Standard output is the terminal of whoever chose `log`.
fn print_message(message: &Message) -> Result<(), SendError> {
    let mut out = std::io::stdout().lock();
    out.write_all(&message.formatted())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| SendError::transient(format!("writing to standard output: {e}")))
}

/// Classifies an SMTP error. Display strings of lettre's errors name the failing step and the
/// server's reply; neither contains the password (lettre never echoes it).
fn smtp_error(e: lettre::transport::smtp::Error) -> SendError {
    // x3x replies (530, 534, 535, 538) are about authentication or encryption: the account or
    // the configuration is wrong, not this message, so such mail waits for the fix.
    let permanent = e.is_permanent()
        && !e
            .status()
            .is_some_and(|code| code.category == Category::Unspecified3);
    let reason = truncate(&format!("SMTP: {e}"), 300);
    SendError { permanent, reason }
}

/// At most `max` bytes, cut at a character boundary; one line.
fn truncate(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() <= max {
        return line;
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_to_one_short_line() {
        assert_eq!(truncate("a\r\nb  c", 10), "a b c");
        let cut = truncate(&"é".repeat(400), 301);
        assert!(cut.len() <= 304 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn a_message_has_a_text_and_an_html_part_from_the_sender() {
        let from: Mailbox = "authpool <no-reply@example.org>".parse().unwrap();
        let message = compose(
            &from,
            "a@example.org".parse().unwrap(),
            "Subject",
            "code 123456".into(),
            "<p>code 123456</p>".into(),
            std::time::SystemTime::now(),
        )
        .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("From: authpool <no-reply@example.org>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("text/plain") && raw.contains("text/html"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID:"), "{raw}");
    }

    #[tokio::test]
    async fn the_file_transport_creates_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a/b");
        Transport::new(&MailTransportConfig::File(folder.clone())).unwrap();
        assert!(folder.is_dir());
    }
}
