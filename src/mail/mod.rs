//! Email: typed templates, the outbox written inside the caller's transaction, and the delivery
//! worker that sends through SMTP, files or standard output with retries.
//!
//! A use case calls [`Mailer::queue`] with its own transaction, commits, then calls
//! [`Mailer::wake`]. The worker ([`Mailer::run_worker`]) claims due outbox rows, sends them and
//! records the outcome; tests call [`Mailer::deliver_due`] to drain the outbox without sleeping.

mod templates;
mod transport;
mod worker;

use std::{path::PathBuf, sync::Arc, time::Duration};

use lettre::message::Mailbox;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::templates::{Email, Rendered};
use self::{templates::Templates, transport::Transport};
use crate::{config::MailSettings, metrics::MailCounters, store::outbox};

/// Renders, queues and delivers email. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    templates: Templates,
    transport: Transport,
    from: Mailbox,
    retry_max: Duration,
    /// Set by `wake`; a wake-up while the worker is busy is kept for its next wait.
    wake: Notify,
    /// Codes queued and delivery attempts, for metrics.
    counters: MailCounters,
}

/// Why mail could not be set up at start-up. One line; never shows a secret.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    #[error("cannot read the email templates folder {}: {reason}", path.display())]
    TemplatesDir { path: PathBuf, reason: String },
    #[error("email template {}: {reason}", file.display())]
    Template { file: PathBuf, reason: String },
    #[error("cannot create the mail folder {}: {reason}", path.display())]
    MailFolder { path: PathBuf, reason: String },
    #[error("cannot set up TLS for the SMTP server {host}: {reason}")]
    Smtp { host: String, reason: String },
}

impl MailSetupError {
    fn template(file: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self::Template {
            file: file.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

impl Mailer {
    /// Compiles the templates (built-in ones, replaced by files of the same name in
    /// `templates_dir`) and builds the transport; for a folder transport, creates the folder.
    pub fn new(settings: &MailSettings) -> Result<Mailer, MailSetupError> {
        Ok(Mailer {
            inner: Arc::new(Inner {
                templates: Templates::load(settings.templates_dir.as_deref())?,
                transport: Transport::new(&settings.transport)?,
                from: settings.from.clone(),
                retry_max: settings.retry_max,
                wake: Notify::new(),
                counters: MailCounters::default(),
            }),
        })
    }

    /// Renders `email` for `to` and stores it in the outbox, due at once; returns the outbox
    /// row's id. Pass the transaction of the change that causes the email, and call
    /// [`Mailer::wake`] after it commits.
    pub async fn queue(
        &self,
        conn: &impl ConnectionTrait,
        to: &str,
        email: &Email,
    ) -> Result<i64, DbErr> {
        let rendered = self.render(email)?;
        let mail = outbox::NewMail {
            recipient: to,
            subject: &rendered.subject,
            text_body: &rendered.text,
            html_body: &rendered.html,
        };
        let id = outbox::insert(conn, mail, chrono::Utc::now()).await?;
        self.inner.counters.queued(email.template_name());
        Ok(id)
    }

    /// What this mailer has counted, for metrics.
    pub fn counters(&self) -> &MailCounters {
        &self.inner.counters
    }

    /// Renders the three parts of an email, as `queue` stores them.
    pub fn render(&self, email: &Email) -> Result<Rendered, DbErr> {
        // Every template rendered at start-up, so this fails only on a bug; the message names
        // the template, not the values (they hold the code).
        self.inner.templates.render(email).map_err(|e| {
            DbErr::Custom(format!(
                "rendering the {} email failed: {}",
                email.template_name(),
                e.kind()
            ))
        })
    }

    /// Wakes the delivery worker, now or as soon as it next waits.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// One delivery pass: claims the due messages, sends them and records each outcome, until
    /// none is due. Returns how many were sent. Errors are database errors; send failures are
    /// recorded on their rows and retried later.
    pub async fn deliver_due(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        worker::deliver_due(&self.inner, db, None).await
    }

    /// Delivers until `shutdown` is cancelled: a pass, then a wait for [`Mailer::wake`], one
    /// second, or shutdown. Logs errors and carries on; never panics.
    pub async fn run_worker(self, db: DatabaseConnection, shutdown: CancellationToken) {
        worker::run(&self.inner, &db, &shutdown).await;
    }
}
