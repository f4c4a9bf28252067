//! Token buckets per client IP: one in front of every unauthenticated POST (sign-up, sign-in,
//! confirmation, resends, resets), one in front of token introspection (authorised by a shared
//! secret, so not "unauthenticated", but a way to guess tokens all the same). Each allows `rate`
//! requests per second with a burst of ten times that.
//!
//! The client IP is the TCP peer's, or, behind a configured trusted proxy, the one it forwards
//! (see [`super::client_ip`]). IPv6 clients are counted per /64: one host usually holds a whole
//! /64, and per-address buckets would let it pick among 2^64 of them.
//!
//! Per-process memory is enough here: the counters that must hold across replicas (lockout,
//! code attempts) live in the database; this only blunts floods.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    error::ResponseError,
    http::{Method, StatusCode, header},
};

use super::{
    client_ip::TrustedProxies,
    error::{ApiError, ErrorCode},
};

/// Beyond this many tracked addresses, full (idle) buckets are dropped.
const MAX_TRACKED: usize = 100_000;

/// Introspection, limited apart from the rest: a data API calls it for every request it serves.
const INTROSPECTION_PATH: &str = "/api/api-tokens/introspect";

pub struct IpRateLimit {
    unauthenticated: Arc<Limiter>,
    introspection: Arc<Limiter>,
    trusted_proxies: Arc<TrustedProxies>,
}

impl IpRateLimit {
    /// Rates in requests per second; 0 turns a limit off.
    pub fn new(unauthenticated: u32, introspection: u32) -> Self {
        Self {
            unauthenticated: Arc::new(Limiter::new(unauthenticated)),
            introspection: Arc::new(Limiter::new(introspection)),
            trusted_proxies: Arc::default(),
        }
    }

    /// Reads the client IP from the forwarding headers of these proxies.
    pub fn behind(mut self, trusted_proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Arc::new(trusted_proxies);
        self
    }
}

/// The bucket of a client: its address, or its /64 for IPv6.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Limiter {
    fn new(per_second: u32) -> Self {
        Self {
            rate: f64::from(per_second),
            burst: f64::from(per_second) * 10.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for this address, or says how many seconds until one is available.
    fn take(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

impl<E: Endpoint> Middleware<E> for IpRateLimit {
    type Output = IpRateLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        IpRateLimitEndpoint {
            inner,
            unauthenticated: self.unauthenticated.clone(),
            introspection: self.introspection.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

pub struct IpRateLimitEndpoint<E> {
    inner: E,
    unauthenticated: Arc<Limiter>,
    introspection: Arc<Limiter>,
    trusted_proxies: Arc<TrustedProxies>,
}

impl<E: Endpoint> Endpoint for IpRateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let limiter = if req.method() != Method::POST {
            None
        } else if req.uri().path() == INTROSPECTION_PATH {
            Some(&self.introspection)
        } else if !req.headers().contains_key(header::AUTHORIZATION) {
            Some(&self.unauthenticated)
        } else {
            None
        };
        if let Some(limiter) = limiter.filter(|l| l.rate > 0.0) {
            let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
            let ip = self
                .trusted_proxies
                .client_ip(peer, req.headers())
                .map(bucket_key);
            if let Err(retry_after) = limiter.take(ip, Instant::now()) {
                return Ok(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyRequests,
                    "Too many requests from this address; slow down.",
                )
                .retry_after(retry_after)
                .as_response());
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_ten_times_the_rate_then_the_rate() {
        let limiter = IpRateLimit::new(2, 0).unauthenticated;
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let start = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take(ip, start).is_ok());
        }
        assert_eq!(limiter.take(ip, start), Err(1));
        // Another address has its own bucket.
        assert!(
            limiter
                .take(Some(IpAddr::from([127, 0, 0, 2])), start)
                .is_ok()
        );
        // Half a second refills one token at 2 per second.
        let later = start + Duration::from_millis(500);
        assert!(limiter.take(ip, later).is_ok());
        assert!(limiter.take(ip, later).is_err());
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let key = |text: &str| bucket_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }
}
