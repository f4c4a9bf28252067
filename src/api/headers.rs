//! Security and caching headers on every response, errors and 404s included: one place, so no
//! handler can forget them.
//!
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`.
//! - `Content-Security-Policy`: `default-src 'none'; frame-ancestors 'none'` for everything but
//!   the Swagger UI under `/docs`, whose page is all inline (poem-openapi embeds the bundle, its
//!   stylesheet and the spec). Its policy allows exactly those inline elements by SHA-256,
//!   computed at start-up from the very HTML served, plus `data:` images (the stylesheet's
//!   icons) and `connect-src 'self'` ("Try it out"); no `'unsafe-inline'`, nothing from
//!   elsewhere.
//! - `Strict-Transport-Security: max-age=31536000` when the public URL is https (without
//!   `includeSubDomains`: authpool does not speak for its parent domain's other hosts).
//! - `Cache-Control`: `no-store` on every `/api` and `/authentication/api` response (tokens,
//!   accounts, API tokens: a simple rule that cannot miss one), on errors and on health and
//!   metrics; `public, max-age=300` on successful `/.well-known/` documents (public keys and
//!   discovery; a rotated key is published at once, so a shared cache lags at most five
//!   minutes); `no-cache` on `/docs` and `/openapi.json` (public, but they change with a new
//!   version).

use aws_lc_rs::digest;
use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{
    Endpoint, Middleware, Request, Response, Result,
    http::{HeaderMap, HeaderValue, header},
};

/// The policy of every response but the docs: JSON (and the small confirmation page) needs
/// nothing, and no page of ours may be framed.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const HSTS: &str = "max-age=31536000";
const NO_STORE: &str = "no-store";
const DISCOVERY_CACHE: &str = "public, max-age=300";
const REVALIDATE: &str = "no-cache";

pub struct SecurityHeaders {
    docs_csp: HeaderValue,
    hsts: bool,
}

impl SecurityHeaders {
    /// `docs_html` is the Swagger UI page as served at `/docs`; `https` whether the public URL
    /// is https.
    pub fn new(docs_html: &str, https: bool) -> Self {
        Self {
            docs_csp: HeaderValue::from_str(&docs_csp(docs_html))
                .expect("a CSP of hashes is a valid header value"),
            hsts: https,
        }
    }
}

/// The docs page's policy: its inline scripts and styles by hash, and only what Swagger UI
/// needs besides.
pub fn docs_csp(html: &str) -> String {
    let (scripts, styles) = inline_hashes(html);
    let sources = |hashes: Vec<String>| {
        if hashes.is_empty() {
            "'none'".to_string()
        } else {
            hashes.join(" ")
        }
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'",
        sources(scripts),
        sources(styles),
    )
}

/// CSP hash sources (`'sha256-…'`) of the contents of each inline `<script>` and `<style>`
/// element, in document order. Element contents are skipped over, so a tag written inside a
/// script is not taken for an element.
fn inline_hashes(html: &str) -> (Vec<String>, Vec<String>) {
    let (mut scripts, mut styles) = (Vec::new(), Vec::new());
    let mut rest = html;
    loop {
        let next = ["script", "style"]
            .into_iter()
            .filter_map(|tag| rest.find(&format!("<{tag}")).map(|at| (at, tag)))
            .min();
        let Some((at, tag)) = next else { break };
        let after_open = &rest[at..];
        let Some(open_end) = after_open.find('>') else {
            break;
        };
        let body = &after_open[open_end + 1..];
        let Some(close) = body.find(&format!("</{tag}")) else {
            break;
        };
        let hash = STANDARD.encode(digest::digest(&digest::SHA256, &body.as_bytes()[..close]));
        let source = format!("'sha256-{hash}'");
        if tag == "script" {
            scripts.push(source);
        } else {
            styles.push(source);
        }
        rest = &body[close..];
    }
    (scripts, styles)
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SecurityHeadersEndpoint {
            inner,
            docs_csp: self.docs_csp.clone(),
            hsts: self.hsts,
        }
    }
}

pub struct SecurityHeadersEndpoint<E> {
    inner: E,
    docs_csp: HeaderValue,
    hsts: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let path = req.uri().path().to_string();
        let mut response = self.inner.get_response(req).await;
        let success = response.status().is_success();
        let headers = response.headers_mut();
        let fixed = [
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ];
        for (name, value) in fixed {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let csp = if under(&path, "/docs") {
            self.docs_csp.clone()
        } else {
            HeaderValue::from_static(API_CSP)
        };
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        if self.hsts {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        set_cache_control(headers, &path, success);
        Ok(response)
    }
}

/// `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn set_cache_control(headers: &mut HeaderMap, path: &str, success: bool) {
    if under(path, "/api") || under(path, "/authentication") {
        // Whatever an operation set: these may hold tokens or personal data.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        return;
    }
    let value = if success && under(path, "/.well-known") {
        DISCOVERY_CACHE
    } else if success && (under(path, "/docs") || path == "/openapi.json") {
        REVALIDATE
    } else {
        NO_STORE
    };
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(text: &str) -> String {
        format!(
            "'sha256-{}'",
            STANDARD.encode(digest::digest(&digest::SHA256, text.as_bytes()))
        )
    }

    #[test]
    fn inline_scripts_and_styles_are_hashed_in_order_and_nested_tags_are_skipped() {
        let html = "<html><head><style charset=\"UTF-8\">a{}</style>\
                    <script>let s = '<style>not one';</script></head>\
                    <body><script>\n go() \n</script></body></html>";
        let (scripts, styles) = inline_hashes(html);
        assert_eq!(
            scripts,
            [hash("let s = '<style>not one';"), hash("\n go() \n")]
        );
        assert_eq!(styles, [hash("a{}")]);
    }

    #[test]
    fn the_docs_policy_allows_only_the_hashed_inline_code() {
        let csp = docs_csp("<script>x()</script>");
        assert_eq!(
            csp,
            format!(
                "default-src 'none'; script-src {}; style-src 'none'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'",
                hash("x()")
            )
        );
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("/api", "/api") && under("/api/login", "/api"));
        assert!(!under("/apis", "/api"));
        assert!(under("/docs/oauth-receiver.html", "/docs"));
    }
}
