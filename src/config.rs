//! Typed settings: defaults < TOML file (`--config`) < `AUTHPOOL_*` environment < command-line flag.
//!
//! Every setting is declared once in [`SETTINGS`]; that table builds the command-line flags (so
//! `--help` lists them all with their variables and defaults), names the keys a TOML file may hold,
//! and names the setting in every error. [`Settings::resolve`] turns the merged raw strings into
//! typed values, refusing anything out of range with one line that names the setting.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::message::Mailbox;
use url::Url;

use crate::api::client_ip::TrustedProxies;

/// One configurable setting.
pub struct Spec {
    /// Key in the TOML file; the flag is the same with `-` for `_`.
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Default, as the text a user would write; `None` when unset by default.
    pub default: Option<&'static str>,
    /// One line for `--help` and the README.
    pub help: &'static str,
}

const fn spec(
    key: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Spec {
    Spec {
        key,
        env,
        default,
        help,
    }
}

/// Every setting authpool reads.
pub const SETTINGS: &[Spec] = &[
    spec(
        "bind",
        "AUTHPOOL_BIND",
        Some("127.0.0.1:8080"),
        "Address and port the HTTP server listens on.",
    ),
    spec(
        "database_url",
        "AUTHPOOL_DATABASE_URL",
        Some("sqlite://data/authpool.db?mode=rwc"),
        "sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB.",
    ),
    spec(
        "public_url",
        "AUTHPOOL_PUBLIC_URL",
        None,
        "Public base URL: the token issuer and the base of links in emails [default: http://<bind>].",
    ),
    spec(
        "client_id",
        "AUTHPOOL_CLIENT_ID",
        None,
        "App client id (`aud` of id tokens) [default: generated once and stored].",
    ),
    spec(
        "mail_url",
        "AUTHPOOL_MAIL_URL",
        Some("file://data/mail"),
        "Mail transport: smtp://[user:pass@]host[:port] (STARTTLS when offered), smtps://..., file://DIR (one .eml per message) or log (messages on standard output).",
    ),
    spec(
        "mail_from",
        "AUTHPOOL_MAIL_FROM",
        Some("authpool <no-reply@localhost>"),
        "Sender of every email.",
    ),
    spec(
        "mail_retry_max_s",
        "AUTHPOOL_MAIL_RETRY_MAX_S",
        Some("30"),
        "Longest wait between two delivery attempts of one email, in seconds (1-3600).",
    ),
    spec(
        "templates_dir",
        "AUTHPOOL_TEMPLATES_DIR",
        None,
        "Folder whose email templates replace the built-in ones of the same name.",
    ),
    spec(
        "introspection_secret",
        "AUTHPOOL_INTROSPECTION_SECRET",
        None,
        "Bearer secret for /api/api-tokens/introspect; unset disables it (404).",
    ),
    spec(
        "introspection_rate_limit",
        "AUTHPOOL_INTROSPECTION_RATE_LIMIT",
        Some("200"),
        "Introspection requests per second per client IP, burst ten times that; 0 turns it off.",
    ),
    spec(
        "max_api_tokens",
        "AUTHPOOL_MAX_API_TOKENS",
        Some("100"),
        "API tokens one user may hold (1-10000).",
    ),
    spec(
        "max_allowed_hosts",
        "AUTHPOOL_MAX_ALLOWED_HOSTS",
        Some("100"),
        "Allowed hosts one user may list (1-10000).",
    ),
    spec(
        "cors_origins",
        "AUTHPOOL_CORS_ORIGINS",
        None,
        "Comma-separated browser origins (scheme://host[:port], no path, no wildcard) allowed to call the API with credentials (CORS) [default: none, same-origin only].",
    ),
    spec(
        "mailchimp_api_key",
        "AUTHPOOL_MAILCHIMP_API_KEY",
        None,
        "Mailchimp Marketing API key; with a list id, subscriptions are also sent there.",
    ),
    spec(
        "mailchimp_list_id",
        "AUTHPOOL_MAILCHIMP_LIST_ID",
        None,
        "Mailchimp audience (list) id.",
    ),
    spec(
        "mailchimp_url",
        "AUTHPOOL_MAILCHIMP_URL",
        None,
        "Mailchimp API base URL [default: https://<dc>.api.mailchimp.com from the key's suffix].",
    ),
    spec(
        "mailchimp_timeout_s",
        "AUTHPOOL_MAILCHIMP_TIMEOUT_S",
        Some("10"),
        "Longest wait for Mailchimp, in seconds (1-60).",
    ),
    spec(
        "ip_rate_limit",
        "AUTHPOOL_IP_RATE_LIMIT",
        Some("20"),
        "Unauthenticated POSTs per second per client IP, burst ten times that; 0 turns it off.",
    ),
    spec(
        "trusted_proxies",
        "AUTHPOOL_TRUSTED_PROXIES",
        None,
        "Comma-separated IPs or CIDR blocks of reverse proxies whose X-Forwarded-For (else Forwarded: for=) names the client; from any other peer these headers are ignored [default: none].",
    ),
    spec(
        "argon2_memory_kib",
        "AUTHPOOL_ARGON2_MEMORY_KIB",
        Some("19456"),
        "argon2id memory cost in KiB (8-4194304).",
    ),
    spec(
        "argon2_iterations",
        "AUTHPOOL_ARGON2_ITERATIONS",
        Some("2"),
        "argon2id time cost (1-100).",
    ),
    spec(
        "argon2_parallelism",
        "AUTHPOOL_ARGON2_PARALLELISM",
        Some("1"),
        "argon2id lanes (1-16).",
    ),
    spec(
        "hash_concurrency",
        "AUTHPOOL_HASH_CONCURRENCY",
        None,
        "Password hashes computed at once [default: number of CPU cores].",
    ),
    spec(
        "hash_queue",
        "AUTHPOOL_HASH_QUEUE",
        Some("64"),
        "Hash jobs allowed to wait beyond the running ones; more answer 503.",
    ),
    spec(
        "id_token_ttl_s",
        "AUTHPOOL_ID_TOKEN_TTL_S",
        Some("3600"),
        "id token lifetime in seconds (300-86400).",
    ),
    spec(
        "access_token_ttl_s",
        "AUTHPOOL_ACCESS_TOKEN_TTL_S",
        Some("3600"),
        "access token lifetime in seconds (300-86400).",
    ),
    spec(
        "refresh_token_ttl_s",
        "AUTHPOOL_REFRESH_TOKEN_TTL_S",
        Some("2592000"),
        "refresh token (and session) lifetime in seconds (3600-315360000).",
    ),
    spec(
        "refresh_reuse_grace_s",
        "AUTHPOOL_REFRESH_REUSE_GRACE_S",
        Some("0"),
        "Seconds a just-rotated refresh token is still accepted, for racing browser tabs (0-60).",
    ),
    spec(
        "password_min_length",
        "AUTHPOOL_PASSWORD_MIN_LENGTH",
        Some("8"),
        "Shortest password accepted (6-256).",
    ),
    spec(
        "password_require_lowercase",
        "AUTHPOOL_PASSWORD_REQUIRE_LOWERCASE",
        Some("false"),
        "Passwords need a lower-case letter.",
    ),
    spec(
        "password_require_uppercase",
        "AUTHPOOL_PASSWORD_REQUIRE_UPPERCASE",
        Some("false"),
        "Passwords need an upper-case letter.",
    ),
    spec(
        "password_require_digit",
        "AUTHPOOL_PASSWORD_REQUIRE_DIGIT",
        Some("false"),
        "Passwords need a digit.",
    ),
    spec(
        "password_require_symbol",
        "AUTHPOOL_PASSWORD_REQUIRE_SYMBOL",
        Some("false"),
        "Passwords need a symbol.",
    ),
    spec(
        "cookie_secure",
        "AUTHPOOL_COOKIE_SECURE",
        None,
        "Force the cookies' Secure flag on or off [default: on exactly when the public URL is https].",
    ),
    spec(
        "cookie_domain",
        "AUTHPOOL_COOKIE_DOMAIN",
        None,
        "Domain attribute of the cookies (SameSite=Lax: for apps on the same site; cross-site apps use the tokens in the body) [default: none, host-only].",
    ),
    spec(
        "housekeeping_interval_s",
        "AUTHPOOL_HOUSEKEEPING_INTERVAL_S",
        Some("600"),
        "Seconds between purges of expired codes, ended sessions, old mail and stale counters \
         (0 turns them off).",
    ),
    spec(
        "max_body_bytes",
        "AUTHPOOL_MAX_BODY_BYTES",
        Some("65536"),
        "Largest request body accepted, in bytes (1024-16777216).",
    ),
    spec(
        "log_format",
        "AUTHPOOL_LOG_FORMAT",
        Some("text"),
        "Log format: text or json.",
    ),
    spec(
        "log_level",
        "AUTHPOOL_LOG_LEVEL",
        Some("info"),
        "Log filter, as RUST_LOG (e.g. info or authpool=debug).",
    ),
];

/// Finds a setting's spec by key.
fn spec_of(key: &str) -> &'static Spec {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        .expect("every key read by Settings::resolve is declared in SETTINGS")
}

/// A value that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A setting that could not be used: names it, says why, never echoes secret values.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {env} ({key}): {reason}")]
pub struct ConfigError {
    pub key: String,
    pub env: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        let env = SETTINGS
            .iter()
            .find(|s| s.key == key)
            .map_or_else(|| key.to_uppercase(), |s| s.env.to_string());
        Self {
            key: key.to_string(),
            env,
            reason: reason.into(),
        }
    }
}

/// Where email goes.
#[derive(Clone, Debug)]
pub enum MailTransportConfig {
    /// SMTP; `implicit_tls` for `smtps://`, otherwise STARTTLS whenever the server offers it.
    Smtp {
        host: String,
        port: u16,
        implicit_tls: bool,
        credentials: Option<(String, Secret)>,
    },
    /// One `.eml` file per message in this folder.
    File(PathBuf),
    /// Each message written to standard output (development only: codes are visible there).
    Log,
}

#[derive(Clone, Debug)]
pub struct MailSettings {
    pub transport: MailTransportConfig,
    pub from: Mailbox,
    pub retry_max: Duration,
    pub templates_dir: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub concurrency: usize,
    pub queue: usize,
}

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub id_ttl: Duration,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
}

impl TokenSettings {
    /// The longest a token of any kind stays valid: how long a retired key must stay published.
    pub fn longest_ttl(&self) -> Duration {
        self.id_ttl.max(self.access_ttl).max(self.refresh_ttl)
    }
}

#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
}

#[derive(Clone, Debug)]
pub struct CookieSettings {
    pub secure: bool,
    pub domain: Option<String>,
}

#[derive(Clone, Debug)]
pub struct MailchimpSettings {
    pub api_key: Secret,
    pub list_id: String,
    pub base_url: Url,
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// All of authpool's configuration, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    /// May hold a database password.
    pub database_url: Secret,
    /// Without a trailing slash.
    pub public_url: Url,
    pub client_id: Option<String>,
    pub mail: MailSettings,
    pub introspection_secret: Option<Secret>,
    /// Exact origins (`https://app.example.org`), as browsers send them in `Origin`.
    pub cors_origins: Vec<String>,
    pub mailchimp: Option<MailchimpSettings>,
    pub ip_rate_limit: u32,
    pub introspection_rate_limit: u32,
    pub trusted_proxies: TrustedProxies,
    pub max_api_tokens: u64,
    pub max_allowed_hosts: u64,
    pub argon2: Argon2Settings,
    pub tokens: TokenSettings,
    pub password: PasswordPolicy,
    pub cookies: CookieSettings,
    pub max_body_bytes: usize,
    /// `None`: housekeeping is off.
    pub housekeeping_interval: Option<Duration>,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// Raw setting values by key, as gathered from the file, the environment and the flags.
pub type RawSettings = BTreeMap<String, String>;

impl Settings {
    /// The settings with every default and nothing else.
    pub fn defaults() -> Self {
        Self::resolve(&RawSettings::new()).expect("the built-in defaults are valid")
    }

    /// Merges the TOML file (if any) under the given values (environment and flags), then resolves.
    pub fn load(file: Option<&Path>, overrides: &RawSettings) -> Result<Self, ConfigError> {
        let mut raw = match file {
            Some(path) => read_toml(path)?,
            None => RawSettings::new(),
        };
        raw.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::resolve(&raw)
    }

    /// Turns raw values (missing keys take their defaults) into typed settings.
    pub fn resolve(raw: &RawSettings) -> Result<Self, ConfigError> {
        if let Some(unknown) = raw.keys().find(|k| !SETTINGS.iter().any(|s| s.key == *k)) {
            return Err(ConfigError::new(unknown, "unknown setting"));
        }
        let r = Reader(raw);

        let bind: SocketAddr = r.parse("bind")?;
        let public_url = match r.get("public_url") {
            Some(text) => parse_public_url(text)?,
            None => Url::parse(&format!("http://{bind}")).expect("a socket address makes a URL"),
        };
        let tokens = TokenSettings {
            id_ttl: r.seconds("id_token_ttl_s", 300, 86_400)?,
            access_ttl: r.seconds("access_token_ttl_s", 300, 86_400)?,
            refresh_ttl: r.seconds("refresh_token_ttl_s", 3_600, 315_360_000)?,
            refresh_reuse_grace: r.seconds("refresh_reuse_grace_s", 0, 60)?,
        };
        let cookies = CookieSettings {
            secure: match r.get("cookie_secure") {
                Some(_) => r.bool("cookie_secure")?,
                None => public_url.scheme() == "https",
            },
            domain: r.get("cookie_domain").map(str::to_string),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let argon2 = Argon2Settings {
            memory_kib: r.ranged("argon2_memory_kib", 8, 4_194_304)?,
            iterations: r.ranged("argon2_iterations", 1, 100)?,
            parallelism: r.ranged("argon2_parallelism", 1, 16)?,
            concurrency: match r.get("hash_concurrency") {
                Some(_) => r.ranged("hash_concurrency", 1, 1024)?,
                None => cores,
            },
            queue: r.ranged("hash_queue", 0, 1_000_000)?,
        };
        let password = PasswordPolicy {
            min_length: r.ranged("password_min_length", 6, 256)?,
            require_lowercase: r.bool("password_require_lowercase")?,
            require_uppercase: r.bool("password_require_uppercase")?,
            require_digit: r.bool("password_require_digit")?,
            require_symbol: r.bool("password_require_symbol")?,
        };
        let mail = MailSettings {
            transport: parse_mail_url(r.required("mail_url")?)?,
            from: r.parse("mail_from")?,
            retry_max: r.seconds("mail_retry_max_s", 1, 3_600)?,
            templates_dir: r.get("templates_dir").map(PathBuf::from),
        };
        let database_url = r.required("database_url")?;
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let log_format = match r.required("log_format")? {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(ConfigError::new("log_format", "must be text or json")),
        };
        let client_id = r.get("client_id").map(str::to_string);
        if let Some(id) = &client_id
            && (id.is_empty()
                || id.len() > 128
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(ConfigError::new(
                "client_id",
                "must be 1-128 letters, digits, '-' or '_'",
            ));
        }

        Ok(Self {
            bind,
            database_url: Secret::new(database_url),
            public_url,
            client_id,
            mail,
            introspection_secret: r.get("introspection_secret").map(Secret::new),
            cors_origins: parse_cors_origins(r.get("cors_origins").unwrap_or_default())?,
            mailchimp: parse_mailchimp(&r)?,
            ip_rate_limit: r.ranged("ip_rate_limit", 0, 1_000_000)?,
            introspection_rate_limit: r.ranged("introspection_rate_limit", 0, 1_000_000)?,
            trusted_proxies: TrustedProxies::parse(r.get("trusted_proxies").unwrap_or_default())
                .map_err(|reason| ConfigError::new("trusted_proxies", reason))?,
            max_api_tokens: r.ranged("max_api_tokens", 1, 10_000)?,
            max_allowed_hosts: r.ranged("max_allowed_hosts", 1, 10_000)?,
            argon2,
            tokens,
            password,
            cookies,
            max_body_bytes: r.ranged("max_body_bytes", 1_024, 16 * 1024 * 1024)?,
            housekeeping_interval: Some(r.seconds("housekeeping_interval_s", 0, 86_400)?)
                .filter(|interval| !interval.is_zero()),
            log_format,
            log_level: parse_log_level(r.required("log_level")?)?,
        })
    }

    /// The issuer (`iss`) of every token: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }
}

/// Reads raw values, falling back to each setting's default.
struct Reader<'a>(&'a RawSettings);

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(v) => Some(v.as_str()).filter(|v| !v.is_empty()),
            None => spec_of(key).default,
        }
    }

    fn required(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::new(key, "must not be empty"))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let text = self.required(key)?;
        text.trim()
            .parse()
            .map_err(|e| ConfigError::new(key, format!("cannot parse {text:?}: {e}")))
    }

    fn ranged<T>(&self, key: &str, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value: T = self.parse(key)?;
        if value < min || value > max {
            return Err(ConfigError::new(
                key,
                format!("{value} is out of range ({min}-{max})"),
            ));
        }
        Ok(value)
    }

    fn seconds(&self, key: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
        self.ranged(key, min, max).map(Duration::from_secs)
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.required(key)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(key, "must be true or false")),
        }
    }
}

fn parse_log_level(text: &str) -> Result<String, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map_err(|e| ConfigError::new("log_level", e.to_string()))?;
    Ok(text.to_string())
}

fn parse_public_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::new("public_url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            "public_url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "public_url",
            "must not have a query or fragment",
        ));
    }
    Ok(url)
}

/// Browser origins for CORS. Credentials are allowed, so every origin is listed exactly (the
/// Fetch standard forbids `*` with credentials); each is stored as browsers serialise `Origin`:
/// lower-case, punycode, without a default port.
fn parse_cors_origins(text: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for item in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let bad = |why: &str| ConfigError::new("cors_origins", format!("{item:?} {why}"));
        if item.contains('*') {
            return Err(bad(
                "has a wildcard; credentials are allowed, so list each origin exactly",
            ));
        }
        let url = Url::parse(item).map_err(|_| bad("is not an origin (https://host[:port])"))?;
        // `Url` reads a missing path as "/": a lone trailing slash is accepted, any path is not.
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad(
                "is not an origin: http:// or https://, a host and an optional port, nothing else",
            ));
        }
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

fn parse_mail_url(text: &str) -> Result<MailTransportConfig, ConfigError> {
    let bad = |reason: &str| ConfigError::new("mail_url", reason);
    if text == "log" {
        return Ok(MailTransportConfig::Log);
    }
    // `file://data/mail` is a relative folder, which URL parsers would read as host `data`.
    if let Some(path) = text.strip_prefix("file://") {
        if path.is_empty() {
            return Err(bad("file:// needs a folder"));
        }
        return Ok(MailTransportConfig::File(PathBuf::from(path)));
    }
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(bad("must be smtp://, smtps://, file://FOLDER or log")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("needs a host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    let credentials = if url.username().is_empty() {
        None
    } else {
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Some((
            decode(url.username()),
            Secret::new(decode(url.password().unwrap_or(""))),
        ))
    };
    Ok(MailTransportConfig::Smtp {
        host,
        port,
        implicit_tls,
        credentials,
    })
}

fn parse_mailchimp(r: &Reader<'_>) -> Result<Option<MailchimpSettings>, ConfigError> {
    let (Some(key), Some(list)) = (r.get("mailchimp_api_key"), r.get("mailchimp_list_id")) else {
        if r.get("mailchimp_api_key").is_some() != r.get("mailchimp_list_id").is_some() {
            return Err(ConfigError::new(
                "mailchimp_list_id",
                "the Mailchimp API key and list id go together",
            ));
        }
        return Ok(None);
    };
    let base_url = match r.get("mailchimp_url") {
        Some(text) => {
            Url::parse(text).map_err(|e| ConfigError::new("mailchimp_url", e.to_string()))?
        }
        None => {
            // Keys end in "-<data centre>", e.g. "…-us21"; the API lives on that data centre.
            let dc = key
                .rsplit_once('-')
                .map(|(_, dc)| dc)
                .filter(|dc| !dc.is_empty() && dc.bytes().all(|b| b.is_ascii_alphanumeric()))
                .ok_or_else(|| {
                    ConfigError::new(
                        "mailchimp_api_key",
                        "has no data-centre suffix (-us1, ...); set AUTHPOOL_MAILCHIMP_URL",
                    )
                })?;
            Url::parse(&format!("https://{dc}.api.mailchimp.com"))
                .map_err(|e| ConfigError::new("mailchimp_api_key", e.to_string()))?
        }
    };
    Ok(Some(MailchimpSettings {
        api_key: Secret::new(key),
        list_id: list.to_string(),
        base_url,
        timeout: r.seconds("mailchimp_timeout_s", 1, 60)?,
    }))
}

/// Reads a TOML file of `key = value` lines; values may be strings, numbers, booleans or (for
/// lists) arrays of strings.
fn read_toml(path: &Path) -> Result<RawSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new("config", format!("{}: {}", path.display(), e.message()))
    })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => {
                    return Err(ConfigError::new(
                        &key,
                        "must be a string, number or boolean",
                    ));
                }
            };
            Ok((key, text))
        })
        .collect()
}

/// The README's configuration reference: every setting of [`SETTINGS`] as a Markdown table row,
/// so the README cannot drift from `--help` (a test compares them).
pub fn reference_markdown() -> String {
    let mut table = String::from(
        "| Setting (TOML key) | Variable | Default | What it sets |\n|---|---|---|---|\n",
    );
    for spec in SETTINGS {
        let default = match spec.default {
            Some("") => "empty".to_string(),
            Some(value) => format!("`{value}`"),
            None => "unset".to_string(),
        };
        let help = spec.help.replace('|', "\\|");
        table.push_str(&format!(
            "| `{}` | `{}` | {default} | {help} |\n",
            spec.key, spec.env
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table between these markers in README.md is [`reference_markdown`]'s output.
    /// `AUTHPOOL_UPDATE_README=1 cargo test --lib readme` rewrites it.
    #[test]
    fn the_readme_configuration_reference_matches_the_settings() {
        const START: &str = "<!-- settings: generated from config::SETTINGS -->\n";
        const END: &str = "<!-- /settings -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let start = readme.find(START).expect("the README has the start marker") + START.len();
        let end = readme[start..]
            .find(END)
            .expect("the README has the end marker")
            + start;
        let expected = reference_markdown();
        if std::env::var_os("AUTHPOOL_UPDATE_README").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).expect("rewrite README.md");
            return;
        }
        assert_eq!(
            readme[start..end],
            expected,
            "README.md's configuration table is stale: run AUTHPOOL_UPDATE_README=1 cargo test --lib readme"
        );
    }

    fn raw(pairs: &[(&str, &str)]) -> RawSettings {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let s = Settings::defaults();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.issuer(), "http://127.0.0.1:8080");
        assert!(!s.cookies.secure);
        assert!(
            matches!(&s.mail.transport, MailTransportConfig::File(p) if p == Path::new("data/mail"))
        );
        assert_eq!(s.argon2.memory_kib, 19_456);
        assert_eq!(s.tokens.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(s.max_body_bytes, 65_536);
    }

    #[test]
    fn out_of_range_lifetime_names_the_variable() {
        let err = Settings::resolve(&raw(&[("id_token_ttl_s", "10")])).unwrap_err();
        assert_eq!(err.env, "AUTHPOOL_ID_TOKEN_TTL_S");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn unparsable_urls_are_refused() {
        for (key, value) in [
            ("public_url", "not a url"),
            ("public_url", "ftp://example.org"),
            ("mail_url", "carrier-pigeon://x"),
            ("database_url", "mysql://localhost/x"),
        ] {
            let err = Settings::resolve(&raw(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key);
        }
    }

    #[test]
    fn https_public_url_makes_cookies_secure_unless_forced_off() {
        let s = Settings::resolve(&raw(&[("public_url", "https://id.example.org/")])).unwrap();
        assert!(s.cookies.secure);
        assert_eq!(s.issuer(), "https://id.example.org");
        let s = Settings::resolve(&raw(&[
            ("public_url", "https://id.example.org"),
            ("cookie_secure", "false"),
        ]))
        .unwrap();
        assert!(!s.cookies.secure);
    }

    #[test]
    fn smtp_url_with_credentials_is_parsed_and_the_password_is_not_printed() {
        let s = Settings::resolve(&raw(&[(
            "mail_url",
            "smtp://me%40x.org:p%40ss@mail.x.org:2525",
        )]))
        .unwrap();
        let MailTransportConfig::Smtp {
            host,
            port,
            implicit_tls,
            credentials,
        } = &s.mail.transport
        else {
            panic!("expected SMTP");
        };
        assert_eq!(
            (host.as_str(), *port, *implicit_tls),
            ("mail.x.org", 2525, false)
        );
        let (user, pass) = credentials.as_ref().unwrap();
        assert_eq!((user.as_str(), pass.expose()), ("me@x.org", "p@ss"));
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn file_values_are_overridden_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authpool.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9000\"\nip_rate_limit = 5\ncors_origins = [\"https://a.org\", \"https://b.org\"]\n").unwrap();
        let s = Settings::load(Some(&path), &raw(&[("ip_rate_limit", "7")])).unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.ip_rate_limit, 7);
        assert_eq!(s.cors_origins, ["https://a.org", "https://b.org"]);
    }

    #[test]
    fn cors_origins_are_exact_origins_as_browsers_send_them() {
        let s = Settings::resolve(&raw(&[(
            "cors_origins",
            "https://App.Example.org, http://localhost:5173/, https://b.org:443,https://b.org",
        )]))
        .unwrap();
        assert_eq!(
            s.cors_origins,
            [
                "https://app.example.org",
                "http://localhost:5173",
                "https://b.org"
            ]
        );
        for bad in [
            "*",
            "https://*.example.org",
            "app.example.org",
            "https://app.example.org/path",
            "https://app.example.org?x",
            "https://user@app.example.org",
            "ftp://app.example.org",
            "null",
            "https://ok.org, nonsense",
        ] {
            let err = Settings::resolve(&raw(&[("cors_origins", bad)])).unwrap_err();
            assert_eq!(err.env, "AUTHPOOL_CORS_ORIGINS", "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_blocks() {
        assert!(Settings::defaults().trusted_proxies.is_empty());
        let s = Settings::resolve(&raw(&[("trusted_proxies", "10.0.0.0/8, ::1")])).unwrap();
        assert_eq!(s.trusted_proxies.to_string(), "10.0.0.0/8,::1/128");
        let err = Settings::resolve(&raw(&[("trusted_proxies", "10.0.0.0/40")])).unwrap_err();
        assert_eq!(err.env, "AUTHPOOL_TRUSTED_PROXIES");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authpool.toml");
        std::fs::write(&path, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load(Some(&path), &RawSettings::new()).unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
    }

    #[test]
    fn mailchimp_base_url_comes_from_the_key_suffix() {
        let s = Settings::resolve(&raw(&[
            ("mailchimp_api_key", "abc123-us21"),
            ("mailchimp_list_id", "list1"),
        ]))
        .unwrap();
        assert_eq!(
            s.mailchimp.unwrap().base_url.as_str(),
            "https://us21.api.mailchimp.com/"
        );
        assert!(Settings::resolve(&raw(&[("mailchimp_api_key", "abc-us21")])).is_err());
    }
}
