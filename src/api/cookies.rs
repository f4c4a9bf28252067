//! The browser cookies set by login and refresh and cleared by logout. They never authenticate
//! an API call by themselves; `refresh_token` is read only by `/api/refresh`.

use poem::{Request, http::header};

use crate::{config::CookieSettings, pool::tokens::SignedIn};

pub const ACCESS: &str = "access_token";
pub const REFRESH: &str = "refresh_token";

/// `Set-Cookie` values for a sign-in or refresh.
pub fn for_tokens(settings: &CookieSettings, signed_in: &SignedIn) -> [String; 2] {
    [
        cookie(
            settings,
            ACCESS,
            &signed_in.access_token,
            signed_in.expires_in,
        ),
        cookie(
            settings,
            REFRESH,
            &signed_in.refresh_token,
            signed_in.refresh_expires_in,
        ),
    ]
}

/// `Set-Cookie` values that delete both cookies.
pub fn cleared(settings: &CookieSettings) -> [String; 2] {
    [
        cookie(settings, ACCESS, "", 0),
        cookie(settings, REFRESH, "", 0),
    ]
}

fn cookie(settings: &CookieSettings, name: &str, value: &str, max_age: u64) -> String {
    let mut cookie = format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax");
    if settings.secure {
        cookie.push_str("; Secure");
    }
    if let Some(domain) = &settings.domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie
}

/// The `refresh_token` cookie of a request, if any.
pub fn refresh_token(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == REFRESH && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_documented_attributes() {
        let settings = CookieSettings {
            secure: true,
            domain: Some("example.org".into()),
        };
        let [access, _] = cleared(&settings);
        assert_eq!(
            access,
            "access_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure; Domain=example.org"
        );
    }

    #[test]
    fn the_refresh_cookie_is_found_among_others() {
        let req = Request::builder()
            .header(header::COOKIE, "a=1; refresh_token=abc.def; access_token=x")
            .finish();
        assert_eq!(refresh_token(&req).as_deref(), Some("abc.def"));
    }
}
