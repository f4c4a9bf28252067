//! Mailchimp's Marketing API v3: authpool's one optional outbound call, made only when an API key
//! and a list id are configured.
//!
//! The HTTP client is hyper-util's, on the hyper that poem already brings, HTTP/1.1 only, with
//! rustls (through hyper-rustls) using the aws-lc-rs provider and webpki roots that lettre
//! already uses, handed in as a ready [`rustls::ClientConfig`]. That adds one crate to the tree
//! (hyper-rustls), no second crypto library, no OpenSSL and no process-wide crypto provider.
//! reqwest was the other candidate: its rustls modes either bring `ring` or need such a global
//! provider, which would also change the tests' own reqwest client.

use std::{fmt::Write as _, sync::Arc};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use md5::{Digest, Md5};
use serde::Deserialize;

use crate::{config::MailchimpSettings, domain::Email};

/// The longest part of Mailchimp's error answer that is read, and of its title or detail that is
/// repeated to the user.
const MAX_ERROR_BODY: usize = 16 * 1024;
const MAX_REASON_CHARS: usize = 300;

/// Why a member could not be sent to Mailchimp. The message is for the person who subscribed:
/// it never holds the API key nor Mailchimp's raw answer, only its status, title and detail.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("Mailchimp did not answer within {0} s.")]
    Timeout(u64),
    #[error("Mailchimp could not be reached.")]
    Unreachable,
    /// Mailchimp answered, but not with success.
    #[error("Mailchimp refused the subscription (HTTP {status}{reason}).")]
    Refused {
        status: u16,
        /// `": <title>: <detail>"` as Mailchimp gave them, or empty.
        reason: String,
    },
    /// The configuration cannot be used to make the call.
    #[error("The newsletter service is not set up correctly ({0}).")]
    Setup(&'static str),
}

/// Mailchimp's id of a list member: the MD5 of the lower-cased address, in lower-case hex.
pub fn member_hash(email: &Email) -> String {
    Md5::digest(email.key().as_bytes())
        .iter()
        .fold(String::with_capacity(32), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// `{base}/3.0/lists/{list_id}/members/{hash}`, each segment percent-encoded as needed.
pub fn member_url(settings: &MailchimpSettings, email: &Email) -> Result<url::Url, SyncError> {
    let mut url = settings.base_url.clone();
    url.path_segments_mut()
        .map_err(|()| SyncError::Setup("the Mailchimp URL cannot have a path"))?
        .pop_if_empty()
        .extend([
            "3.0",
            "lists",
            &settings.list_id,
            "members",
            &member_hash(email),
        ]);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Adds the address to the list, or marks an existing member subscribed again ("add or update
/// list member"). The whole exchange (connection, TLS, answer) is bounded by the configured
/// timeout.
pub async fn upsert_member(settings: &MailchimpSettings, email: &Email) -> Result<(), SyncError> {
    let request = member_request(settings, email)?;
    let exchange = async {
        let response = client()?.request(request).await.map_err(|err| {
            // The error names the host at most; the key is only ever in a header.
            tracing::warn!(error = %error_chain(&err), "Mailchimp could not be reached");
            SyncError::Unreachable
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        tracing::warn!(
            status = status.as_u16(),
            list = %settings.list_id,
            "Mailchimp refused a list member"
        );
        // Only the start of an error document is read; a longer one is not worth quoting.
        let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        Err(SyncError::Refused {
            status: status.as_u16(),
            reason: problem_reason(&body, settings.api_key.expose()),
        })
    };
    match tokio::time::timeout(settings.timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(
                timeout_s = settings.timeout.as_secs(),
                "Mailchimp timed out"
            );
            Err(SyncError::Timeout(settings.timeout.as_secs()))
        }
    }
}

/// `PUT` of the member with basic auth (Mailchimp ignores the user name; the key is the
/// password) and the JSON body.
fn member_request(
    settings: &MailchimpSettings,
    email: &Email,
) -> Result<Request<Full<Bytes>>, SyncError> {
    let url = member_url(settings, email)?;
    let body = serde_json::json!({
        "email_address": email.as_str(),
        "status_if_new": "subscribed",
        "status": "subscribed",
    });
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("authpool:{}", settings.api_key.expose()));
    let mut authorization = HeaderValue::try_from(format!("Basic {credentials}"))
        .map_err(|_| SyncError::Setup("the API key cannot be sent"))?;
    // Kept out of any debug output of the request.
    authorization.set_sensitive(true);
    Request::put(url.as_str())
        .header(header::AUTHORIZATION, authorization)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("authpool/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| SyncError::Setup("the Mailchimp URL is not usable"))
}

/// A client for one call. Subscriptions are rare, so each call builds its own: no idle
/// connections are kept, and nothing is shared between Tokio runtimes. It never follows
/// redirects (the API has none; following one could carry the key elsewhere).
fn client() -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, SyncError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| SyncError::Setup("TLS could not be initialised"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // `https_or_http`: the base URL is the operator's choice (a proxy or a test stand-in may
    // be plain HTTP); Mailchimp's own default is HTTPS.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector))
}

/// An error with its causes, e.g. "client error (Connect): tcp connect error: Connection refused".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Mailchimp's errors are RFC 7807 problem documents.
#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

/// `": <title>: <detail>"` from a problem document, cleaned for showing: control characters
/// dropped, each part bounded, and the API key masked should Mailchimp ever echo it.
fn problem_reason(body: &[u8], api_key: &str) -> String {
    let Ok(problem) = serde_json::from_slice::<Problem>(body) else {
        return String::new();
    };
    [problem.title, problem.detail]
        .into_iter()
        .flatten()
        .map(|part| clean(&part, api_key))
        .filter(|part| !part.is_empty())
        .fold(String::new(), |mut reason, part| {
            reason.push_str(": ");
            reason.push_str(&part);
            reason
        })
}

fn clean(text: &str, api_key: &str) -> String {
    let text = if api_key.is_empty() {
        text.to_string()
    } else {
        text.replace(api_key, "[redacted]")
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;

    fn settings(base: &str) -> MailchimpSettings {
        MailchimpSettings {
            api_key: Secret::new("abc123-us1"),
            list_id: "list 1".into(),
            base_url: url::Url::parse(base).unwrap(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_member_hash_is_the_md5_of_the_lower_cased_address() {
        // Mailchimp's documented example: md5("urist.mcvankab@freddiesjokes.com").
        let email = Email::parse("Urist.McVankab@FreddiesJokes.com").unwrap();
        assert_eq!(member_hash(&email), "62eeb292278cc15f5817cb78f7790b08");
    }

    #[test]
    fn the_member_url_keeps_the_base_path_and_encodes_the_list_id() {
        let email = Email::parse("a@example.org").unwrap();
        let url = member_url(&settings("http://127.0.0.1:9/prefix/"), &email).unwrap();
        assert_eq!(
            url.as_str(),
            format!(
                "http://127.0.0.1:9/prefix/3.0/lists/list%201/members/{}",
                member_hash(&email)
            )
        );
    }

    #[test]
    fn reasons_come_from_the_problem_document_without_the_key() {
        let body = br#"{"type":"x","title":"Invalid Resource","status":400,
            "detail":"Bad key abc123-us1\nor address","instance":"i"}"#;
        assert_eq!(
            problem_reason(body, "abc123-us1"),
            ": Invalid Resource: Bad key [redacted] or address"
        );
        assert_eq!(problem_reason(b"<html>oops</html>", "k"), "");
        let long = format!(r#"{{"title":"{}"}}"#, "x".repeat(1000));
        assert!(problem_reason(long.as_bytes(), "k").chars().count() < 310);
    }
}
