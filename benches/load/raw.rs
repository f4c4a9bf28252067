//! The machine's raw limits, with the same crates, parameters and code paths authpool uses:
//! argon2id verifications (a login verifies one hash; the limit reuses its memory, and the way
//! authpool calls the crate today is measured beside it), RS256 signatures with authpool's kept
//! `aws-lc-rs` key pair, RS256 verifications with its `jsonwebtoken` validation, and a bare poem
//! endpoint that only verifies the bearer token.

use std::{
    net::SocketAddr,
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordVerifier, Version, password_hash::phc::PasswordHash,
};
use authpool::{
    config::Argon2Settings,
    crypto::{
        jwt::{AccessClaims, IdClaims, RefreshClaims},
        keys::KeyStore,
    },
};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use poem::{
    EndpointExt, Request, Response, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use serde_json::Value;

/// Signatures one refresh or sign-in makes: id, access and refresh token, three RS256 JWTs by
/// the API contract (`src/pool/tokens.rs`, `sign`).
pub const SIGNATURES_PER_TOKEN_SET: u32 = 3;

/// Runs `work(deadline)` on `threads` threads started together; each returns how many operations
/// it finished. The rate is the sum of each thread's count over its own elapsed time.
fn on_threads(threads: usize, duration: Duration, work: impl Fn(Instant) -> u64 + Sync) -> f64 {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let started = Instant::now();
                    let count = work(started + duration);
                    count as f64 / started.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a raw-rate thread does not panic"))
            .sum()
    })
}

/// How a raw argon2id verification gets its 19 MiB of working memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Argon2Memory {
    /// One block buffer per thread, reused (`hash_password_into_with_memory`): the crate's
    /// fastest path, so the machine's limit.
    Kept,
    /// A new `Argon2` and a fresh zeroed allocation per call (`verify_password`), exactly as
    /// authpool's hasher verifies today.
    PerCall,
}

/// argon2id verifications per second of `stored` (a production-parameter PHC hash).
pub fn argon2_verifications(
    settings: &Argon2Settings,
    stored: &str,
    password: &str,
    memory: Argon2Memory,
    threads: usize,
    duration: Duration,
) -> f64 {
    let params = Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .expect("authpool's default argon2 parameters are valid");
    on_threads(threads, duration, |deadline| {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let hash = PasswordHash::new(stored).expect("a PHC string");
        let salt: &[u8] = hash.salt.as_deref().expect("a salt");
        let expected = hash.hash.as_ref().expect("a hash").as_bytes();
        let mut blocks = vec![Block::new(); params.block_count()];
        let mut out = vec![0u8; expected.len()];
        let mut count = 0;
        while Instant::now() < deadline {
            let ok = match memory {
                Argon2Memory::Kept => {
                    argon2
                        .hash_password_into_with_memory(
                            password.as_bytes(),
                            salt,
                            &mut out,
                            &mut blocks,
                        )
                        .is_ok()
                        && out == expected
                }
                Argon2Memory::PerCall => {
                    let hash = PasswordHash::new(stored).expect("a PHC string");
                    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                        .verify_password(password.as_bytes(), &hash)
                        .is_ok()
                }
            };
            assert!(ok, "the seeded hash verifies its password");
            count += 1;
        }
        count
    })
}

/// The claims of the three tokens one refresh signs, as authpool types them.
pub struct RefreshClaimsSet {
    pub id: IdClaims,
    pub access: AccessClaims,
    pub refresh: RefreshClaims,
}

impl RefreshClaimsSet {
    /// The claims of tokens the server issued, decoded without verification.
    pub fn decode(id: &str, access: &str, refresh: &str) -> Option<Self> {
        Some(Self {
            id: serde_json::from_value(claims_of(id)?).ok()?,
            access: serde_json::from_value(claims_of(access)?).ok()?,
            refresh: serde_json::from_value(claims_of(refresh)?).ok()?,
        })
    }
}

/// RS256 signatures per second with authpool's own signer (`KeyStore::sign`: claims to JSON,
/// base64url, `aws-lc-rs` RSA PKCS#1 SHA-256 with the key parsed once), signing the id, access
/// and refresh claims in turn as a refresh does.
pub fn signatures(
    keys: &KeyStore,
    claims: &RefreshClaimsSet,
    threads: usize,
    duration: Duration,
) -> f64 {
    on_threads(threads, duration, |deadline| {
        let mut count = 0u64;
        while Instant::now() < deadline {
            let token = match count % 3 {
                0 => keys.sign(&claims.id),
                1 => keys.sign(&claims.access),
                _ => keys.sign(&claims.refresh),
            };
            std::hint::black_box(token);
            count += 1;
        }
        count
    })
}

/// A full RS256 verification on every call: `jsonwebtoken` with authpool's public key and its
/// validation (RS256 only, no leeway, `exp`/`iss`/`sub` required, the issuer checked). Not
/// authpool's own verifier: that one remembers the tokens it verified, and the raw limit is what
/// verifying costs.
#[derive(Clone)]
pub struct Rs256 {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Rs256 {
    /// With the key authpool signs with (the first of its JWKS).
    pub fn of(keys: &KeyStore) -> Result<Self, String> {
        let jwks: JwkSet = serde_json::from_value(keys.jwks()).map_err(|e| e.to_string())?;
        let jwk = jwks.keys.first().ok_or("an empty JWKS")?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[keys.issuer()]);
        validation.validate_aud = false;
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
        })
    }

    /// The token's claims, when it verifies.
    pub fn verify(&self, token: &str) -> Option<Value> {
        jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// RS256 verifications per second of a bearer token (see [`Rs256`]).
pub fn verifications(rs256: &Rs256, token: &str, threads: usize, duration: Duration) -> f64 {
    on_threads(threads, duration, |deadline| {
        let mut count = 0;
        while Instant::now() < deadline {
            let claims = rs256.verify(token);
            assert!(claims.is_some(), "the bearer token verifies");
            count += 1;
        }
        count
    })
}

/// The claims of a JWT, decoded without verification.
fn claims_of(token: &str) -> Option<Value> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// `GET /api/account` that only verifies the bearer token (fully, every time: see [`Rs256`]),
/// and answers with the token's subject.
#[handler]
async fn bare_account(req: &Request, rs256: Data<&Rs256>) -> Response {
    let Some(token) = authpool::api::auth::bearer_value(req) else {
        return StatusCode::UNAUTHORIZED.into();
    };
    match rs256.verify(token) {
        Some(claims) => Response::builder()
            .content_type("application/json")
            .body(serde_json::json!({ "sub": claims["sub"] }).to_string()),
        None => StatusCode::UNAUTHORIZED.into(),
    }
}

/// A bare poem server on loopback, on its own multi-threaded runtime (as authpool's, one worker
/// per core), in this process.
pub struct BareServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareServer {
    pub fn start(rs256: Rs256) -> Result<Self, String> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let acceptor = match TcpListener::bind("127.0.0.1:0").into_acceptor().await {
                    Ok(acceptor) => acceptor,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let addr = acceptor
                    .local_addr()
                    .first()
                    .and_then(|a| a.as_socket_addr().copied())
                    .ok_or_else(|| "no local address".to_string());
                let _ = addr_tx.send(addr);
                let app = Route::new()
                    .at("/api/account", get(bare_account))
                    .data(rs256);
                let _ = Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(
                        app,
                        async {
                            let _ = stop_rx.await;
                        },
                        Some(Duration::from_secs(1)),
                    )
                    .await;
            });
        });
        let addr = addr_rx
            .recv()
            .map_err(|_| "the bare server thread ended".to_string())??;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
