//! Password hashing with argon2id on a bounded pool of blocking threads.
//!
//! Hashing is the server's most expensive work. It never runs on the async workers, at most
//! `concurrency` hashes run at once, and at most `queue` more may wait; past that the caller gets
//! [`HashError::Busy`] at once (503 with `Retry-After`) rather than memory growing without bound.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
    password_hash::phc::PasswordHash,
};
use tokio::sync::Semaphore;

use crate::config::Argon2Settings;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot and queue place is taken.
    #[error("the password hashing queue is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash used other parameters than the configured ones: store a new hash.
    pub needs_rehash: bool,
}

/// The shared hashing pool. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// Permits for jobs admitted (running or waiting).
    admitted: Arc<Semaphore>,
    /// Permits for jobs running.
    running: Arc<Semaphore>,
    in_flight: AtomicUsize,
    /// Permits of `running` and of `admitted`, to tell running from waiting jobs (metrics).
    concurrency: usize,
    capacity: usize,
    /// Jobs refused with `Busy` (metrics).
    rejected: AtomicU64,
    /// A hash of a random password with the configured parameters: unknown users are verified
    /// against it so that their answer takes as long as a wrong password's.
    dummy_hash: String,
}

impl Hasher {
    pub fn new(settings: &Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| HashError::Internal("no randomness".into()))?;
        let dummy_hash = hash_blocking(&params, &random)?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                admitted: Arc::new(Semaphore::new(settings.concurrency + settings.queue)),
                running: Arc::new(Semaphore::new(settings.concurrency)),
                in_flight: AtomicUsize::new(0),
                concurrency: settings.concurrency,
                capacity: settings.concurrency + settings.queue,
                rejected: AtomicU64::new(0),
                dummy_hash,
            }),
        })
    }

    /// Hashes a new password (PHC string with a random salt).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.as_bytes().to_vec();
        let params = self.inner.params.clone();
        self.run(move || hash_blocking(&params, &password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is no user
    /// (`None`), which always answers `matches: false` after the same work.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let password = password.as_bytes().to_vec();
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.inner.dummy_hash).to_string();
        let params = self.inner.params.clone();
        self.run(move || {
            let Ok(hash) = PasswordHash::new(&stored) else {
                return Verified {
                    matches: false,
                    needs_rehash: false,
                };
            };
            let matches = argon2(&params).verify_password(&password, &hash).is_ok() && known;
            let needs_rehash = matches
                && Params::try_from(&hash).map_or(true, |p| {
                    (p.m_cost(), p.t_cost(), p.p_cost())
                        != (params.m_cost(), params.t_cost(), params.p_cost())
                });
            Verified {
                matches,
                needs_rehash,
            }
        })
        .await
    }

    /// Hash jobs currently admitted (running plus waiting), for metrics and tests.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Hashes running now (metrics).
    pub fn running(&self) -> usize {
        self.inner
            .concurrency
            .saturating_sub(self.inner.running.available_permits())
    }

    /// Admitted jobs waiting for a running slot (metrics).
    pub fn waiting(&self) -> usize {
        let admitted = self
            .inner
            .capacity
            .saturating_sub(self.inner.admitted.available_permits());
        admitted.saturating_sub(self.running())
    }

    /// Jobs refused so far because every slot and queue place was taken (metrics).
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Admits the job or refuses at once, then runs it on a blocking thread when a slot frees.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .inner
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                HashError::Busy
            })?;
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        let _count = InFlight(&self.inner.in_flight);
        let running = self
            .inner
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("hashing pool closed".into()))?;
        let result = tokio::task::spawn_blocking(move || {
            let output = job();
            drop(running);
            drop(admitted);
            output
        })
        .await;
        result.map_err(|e| HashError::Internal(e.to_string()))
    }
}

/// Decrements the in-flight count however the job ends (including a dropped request).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, HashError> {
    argon2(params)
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_kib: u32, concurrency: usize, queue: usize) -> Argon2Settings {
        Argon2Settings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            concurrency,
            queue,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::new(&settings(64, 2, 4)).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let ok = hasher.verify("correct horse", Some(&hash)).await.unwrap();
        assert_eq!(
            ok,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(
            !hasher
                .verify("correct horsE", Some(&hash))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn no_user_never_matches_even_with_the_dummy_password_shape() {
        let hasher = Hasher::new(&settings(64, 1, 1)).unwrap();
        assert!(!hasher.verify("anything", None).await.unwrap().matches);
        assert!(
            !hasher
                .verify("x", Some("not a phc string"))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn old_parameters_ask_for_a_rehash() {
        let old = Hasher::new(&settings(64, 1, 1)).unwrap();
        let hash = old.hash("pw").await.unwrap();
        let new = Hasher::new(&settings(128, 1, 1)).unwrap();
        let verified = new.verify("pw", Some(&hash)).await.unwrap();
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        // One slot running and one place waiting: a third job is refused without waiting.
        let hasher = Hasher::new(&settings(64, 1, 1)).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let running = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.run(move || blocked.recv().unwrap()).await })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while hasher.in_flight() < 1 {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("waits").await })
        };
        while hasher.in_flight() < 2 {
            assert!(std::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        assert!(matches!(hasher.hash("refused").await, Err(HashError::Busy)));
        assert_eq!(
            (hasher.running(), hasher.waiting(), hasher.rejected()),
            (1, 1, 1)
        );

        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(waiting.await.unwrap().is_ok());
        assert_eq!(hasher.in_flight(), 0);
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));
        assert!(hasher.hash("admitted again").await.is_ok());
    }
}
