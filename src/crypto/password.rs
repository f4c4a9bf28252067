//! Password hashing with argon2id on a fixed set of dedicated hashing threads.
//!
//! Hashing is the server's most expensive work. It never runs on the async workers: exactly
//! `concurrency` OS threads (`authpool-hash-N`) compute the hashes, each in one argon2 memory
//! buffer of its own that it reuses for every job (allocated at its first job and kept), so the
//! memory used by hashing stays `concurrency` buffers whatever the load. At most `queue` more
//! jobs may wait; past that the caller gets [`HashError::Busy`] (503 with `Retry-After`) after a
//! short hold ([`REFUSAL_HOLD`]) rather than memory growing without bound.
//!
//! The queue is bounded in time too. The hashing threads run at a low CPU priority (see
//! `lower_this_threads_priority`), so when cheaper requests keep the cores busy it drains
//! slowly, and a client is better told at once to come back than left waiting past its timeout:
//! an admission is refused (after the hold) when a new job would likely wait more than
//! [`MAX_QUEUE_WAIT`] / [`ADMISSION_SHARE`] (from the jobs ahead of it and how long jobs take
//! now), or when the oldest queued job has waited, or a running job has run, that long already;
//! a job that still waits [`MAX_QUEUE_WAIT`] is refused instead of computed. Queued jobs that
//! the same estimate says can no longer start within [`MAX_QUEUE_WAIT`] (jobs became much
//! slower after they were admitted) are refused, newest first, each time a thread takes a job,
//! rather than at the limit. While a hashing thread is free, nothing is refused for time: the
//! job starts at once.
//!
//! A caller first takes an [`Admission`] ([`Hasher::admit`], which never waits for a place),
//! then runs its job with it. Taking the admission before any other work (a sign-in's database
//! queries) lets a saturated pool refuse cheaply; the refusal depends on the pool only, never on
//! the account.

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use tokio::sync::oneshot;

use crate::config::Argon2Settings;

/// Bytes of salt in new hashes (the `argon2` crate's recommended length, as before).
const SALT_LEN: usize = 16;

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

/// The shared hashing pool. Cheap to clone; its threads end when the last clone is dropped.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Jobs admitted at most: `concurrency` running plus `queue` waiting.
    capacity: usize,
    /// A hash of a random password with the configured parameters: unknown users are verified
    /// against it so that their answer takes as long as a wrong password's.
    dummy_hash: String,
}

/// The longest a job waits in the queue before it is refused rather than computed: under the
/// 5–30 s after which HTTP clients commonly give up.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(4);

/// The longest wait a new job is admitted to, as predicted when it arrives, is
/// [`MAX_QUEUE_WAIT`] divided by this: a quarter, one second. On a busy machine how fast the
/// queue drains moves by several times from one moment to the next (the hashing threads run
/// below the other work, and each may get a core, or a tenth of one), and a queued job that the
/// estimate later says cannot start in time is refused after it has waited: a late 503. With
/// admissions at half of a 2-second limit, the 503s during the load benchmark's flood with
/// GETs had a p99 of 148–289 ms (the target is 50 ms); at a quarter of a 4-second limit (the
/// same one-second admissions), 18.6–27.1 ms, with no queued job refused in the run that
/// logged them. The jobs that slower draining keeps waiting are sign-ins served late (within
/// the limit) rather than refused late.
pub const ADMISSION_SHARE: u32 = 4;

/// How much lower the hashing threads' priority is than the process's own: added to its nice
/// value (0 unless started with `nice`), up to the lowest, 19. Relative, so that a process
/// started at nice 15 still hashes below its own workers, not above them. Not 19 from 0: there
/// a hashing thread gets ~1.5 % of a core that other work keeps busy, less than one hash a
/// second, so while GETs took the cores the queue stopped draining for seconds at a time, and
/// logins admitted to it waited out [`MAX_QUEUE_WAIT`] and were refused late (1–2 % of the 503s
/// during the load benchmark's flood with GETs at concurrency 8 or 64). At 10 it keeps ~10 % of
/// a busy core, so the queue keeps moving at a rate admissions can judge, and the GETs' p99
/// stayed ~11 ms.
const HASHING_NICE_INCREMENT: i32 = 10;

/// How long a refused admission waits before its caller hears of it (the 503). A refusal costs
/// far less than a hash, but not nothing, and it runs before hashing (whose threads have a
/// low priority): clients that retry the moment they are refused, ignoring `Retry-After`,
/// could otherwise fill both cores with refusals and leave the admitted jobs almost no time,
/// which slows the queue and refuses more (measured: 64 such clients on a 2-core machine with
/// one busy process beside it got 14 sign-ins/s, and 163 000 refusals in 8 s; held, 35/s and
/// 17 000). Held, each such client can be refused at most ~100 times a second, and the answer
/// still comes well within the 50 ms a refusal is allowed.
pub const REFUSAL_HOLD: Duration = Duration::from_millis(10);

/// What the hashing threads share with the callers.
struct Shared {
    params: Params,
    /// [`MAX_QUEUE_WAIT`], shorter in tests.
    max_wait: Duration,
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
    /// Admissions held: taken and not yet used, queued, or running (metrics, and the limit).
    admitted: AtomicUsize,
    /// Jobs being computed now (metrics).
    running: AtomicUsize,
    /// Admissions refused with `Busy`, and jobs refused after waiting too long (metrics).
    rejected: AtomicU64,
    /// Hashing threads.
    concurrency: usize,
    /// How long a job takes now, start to end on its thread (microseconds, a moving average):
    /// longer than the hash itself while other work has the cores.
    job_micros: AtomicU64,
    /// When each hashing thread started its current job, in microseconds since `epoch` plus
    /// one; 0 while it has none. When other work suddenly takes the cores, jobs stop ending and
    /// the average above stays as it was; a job that has run as long as a queued job may wait
    /// says so at once.
    started: Vec<AtomicU64>,
    epoch: Instant,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// No `Hasher` is left: the threads finish the queued jobs and end.
    closed: bool,
}

/// A place in the pool, given back when dropped: when the job is done, abandoned, or never
/// submitted.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The right to run one hash job, taken without waiting by [`Hasher::admit`]. Dropping it
/// unused gives its place back.
pub struct Admission {
    hasher: Hasher,
    slot: Slot,
}

struct Job {
    slot: Slot,
    task: Box<dyn Task>,
    queued_at: Instant,
}

/// A job's work and the way back to its caller.
trait Task: Send {
    /// The caller went away (its request was dropped): nobody would read the result.
    fn abandoned(&self) -> bool;
    /// Computes, drops `done` (freeing the slot and the running count), then answers.
    fn run(self: Box<Self>, params: &Params, memory: &mut Memory, done: Done<'_>);
    /// Answers with an error instead of computing.
    fn refuse(self: Box<Self>, error: HashError);
}

struct Pending<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, HashError>>,
}

impl<T, F> Task for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Params, &mut Memory) -> T + Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(self: Box<Self>, params: &Params, memory: &mut Memory, done: Done<'_>) {
        let output = (self.work)(params, memory);
        // Counted free before the caller hears back, so that a caller who got its answer can be
        // admitted again at once (and the metrics it reads show the job ended).
        drop(done);
        let _ = self.reply.send(Ok(output));
    }

    fn refuse(self: Box<Self>, error: HashError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Held while a job runs.
struct Done<'a> {
    _slot: Slot,
    running: &'a AtomicUsize,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    pub fn new(settings: &Argon2Settings) -> Result<Self, HashError> {
        Self::with_max_wait(settings, MAX_QUEUE_WAIT)
    }

    fn with_max_wait(settings: &Argon2Settings, max_wait: Duration) -> Result<Self, HashError> {
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
        // Once, on the caller's thread, in a buffer of its own.
        let dummy_hash = hash_new(&params, &mut Memory::new(params.block_count()), &random)?;
        let concurrency = settings.concurrency.max(1);
        let shared = Arc::new(Shared {
            params,
            max_wait,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            concurrency,
            job_micros: AtomicU64::new(0),
            started: (0..concurrency).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        });
        let hasher = Self {
            inner: Arc::new(Inner {
                shared: shared.clone(),
                capacity: concurrency + settings.queue,
                dummy_hash,
            }),
        };
        for n in 0..concurrency {
            let shared = shared.clone();
            // A failed spawn drops `hasher`, which closes the pool and ends the threads started.
            std::thread::Builder::new()
                .name(format!("authpool-hash-{}", n + 1))
                .spawn(move || shared.work(n))
                .map_err(|e| HashError::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(hasher)
    }

    /// Takes a place in the pool for one job: [`Self::try_admit`], but a refusal is answered
    /// only after [`REFUSAL_HOLD`] (see there). An admission is never held.
    pub async fn admit(&self) -> Result<Admission, HashError> {
        let admitted = self.try_admit();
        if admitted.is_err() {
            tokio::time::sleep(REFUSAL_HOLD).await;
        }
        admitted
    }

    /// Takes a place in the pool for one job, deciding at once: [`HashError::Busy`] when
    /// `concurrency` jobs run and `queue` more are admitted already, or when the queue drains
    /// too slowly for one more (see [`ADMISSION_SHARE`]).
    pub fn try_admit(&self) -> Result<Admission, HashError> {
        let shared = &self.inner.shared;
        let capacity = self.inner.capacity;
        if shared.drains_too_slowly() {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(HashError::Busy);
        }
        shared
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .map_err(|_| {
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                HashError::Busy
            })?;
        Ok(Admission {
            hasher: self.clone(),
            slot: Slot(shared.clone()),
        })
    }

    /// Hashes a new password (PHC string with a random salt): [`Self::admit`], then
    /// [`Admission::hash`].
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        self.admit().await?.hash(password).await
    }

    /// Checks a password: [`Self::admit`], then [`Admission::verify`].
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        self.admit().await?.verify(password, stored).await
    }

    /// Admissions held now: jobs running or waiting, and places taken for a job about to be
    /// submitted (metrics and tests).
    pub fn in_flight(&self) -> usize {
        self.inner.shared.admitted.load(Ordering::Acquire)
    }

    /// Hashes running now (metrics).
    pub fn running(&self) -> usize {
        self.inner.shared.running.load(Ordering::Acquire)
    }

    /// Jobs submitted and waiting for a hashing thread (metrics).
    pub fn waiting(&self) -> usize {
        self.inner.shared.lock().jobs.len()
    }

    /// Jobs refused so far because every slot and queue place was taken (metrics).
    pub fn rejected(&self) -> u64 {
        self.inner.shared.rejected.load(Ordering::Relaxed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl Admission {
    /// Hashes a new password (PHC string with a random salt).
    pub async fn hash(self, password: &str) -> Result<String, HashError> {
        let password = password.as_bytes().to_vec();
        self.run(move |params, memory| hash_new(params, memory, &password))
            .await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is no user
    /// (`None`), which always answers `matches: false` after the same work.
    pub async fn verify(self, password: &str, stored: Option<&str>) -> Result<Verified, HashError> {
        self.verify_then(password, stored, |_| ())
            .await
            .map(|(verified, ())| verified)
    }

    /// [`Admission::verify`], then `then` with the outcome, on the same hashing thread and in
    /// the same job: for CPU work that follows a verification at once, such as signing the
    /// tokens of a sign-in. It runs where the hash did, at the hashing threads' low priority,
    /// without waking another thread for it.
    pub async fn verify_then<T: Send + 'static>(
        self,
        password: &str,
        stored: Option<&str>,
        then: impl FnOnce(&Verified) -> T + Send + 'static,
    ) -> Result<(Verified, T), HashError> {
        let password = password.as_bytes().to_vec();
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.hasher.inner.dummy_hash).to_string();
        self.run(move |params, memory| {
            let verified = verify_stored(params, memory, &password, &stored);
            let verified = Verified {
                matches: verified.matches && known,
                needs_rehash: verified.needs_rehash && known,
            };
            let next = then(&verified);
            (verified, next)
        })
        .await
    }

    /// Queues the job for the hashing threads and waits for its result. Dropping the future
    /// before the job has started means it is never computed.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&Params, &mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, result) = oneshot::channel();
        let Self { hasher, slot } = self;
        hasher.inner.shared.submit(Job {
            slot,
            task: Box::new(Pending { work, reply }),
            queued_at: Instant::now(),
        });
        result
            .await
            .map_err(|_| HashError::Internal("the hashing thread failed".into()))?
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether one more job would likely wait more than `max_wait` / [`ADMISSION_SHARE`]: from
    /// the jobs admitted ahead of it and how long jobs take now, or because the oldest queued
    /// job has waited that long already, or a running job has run that long (hashing has
    /// stalled). Not from a running job's time in the estimate: with a deep queue, one job
    /// slowed for a moment would refuse admissions that would have been served in time.
    fn drains_too_slowly(&self) -> bool {
        let limit = self.max_wait / ADMISSION_SHARE;
        let ahead = (self.admitted.load(Ordering::Acquire) + 1).saturating_sub(self.concurrency);
        if ahead == 0 {
            // A free thread starts it at once, however long other jobs take or have run.
            return false;
        }
        self.predicted_wait(ahead, self.average_job()) > limit
            || self.oldest_wait() > limit
            || Duration::from_micros(self.longest_running_micros()) > limit
    }

    /// How long a queued job with `ahead` jobs to start before it, itself included, will
    /// likely wait at the rate jobs end now.
    fn predicted_wait(&self, ahead: usize, job: Duration) -> Duration {
        job * u32::try_from(ahead).unwrap_or(u32::MAX)
            / u32::try_from(self.concurrency).unwrap_or(1)
    }

    /// How long a job takes now, as a moving average.
    fn average_job(&self) -> Duration {
        Duration::from_micros(self.job_micros.load(Ordering::Relaxed))
    }

    /// How long the job that has run longest so far has been running, in microseconds.
    fn longest_running_micros(&self) -> u64 {
        let now = self.micros_since_epoch();
        self.started
            .iter()
            .map(|started| started.load(Ordering::Relaxed))
            .filter(|&started| started != 0)
            .map(|started| now.saturating_sub(started - 1))
            .max()
            .unwrap_or(0)
    }

    fn micros_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    /// How long the oldest queued job has waited.
    fn oldest_wait(&self) -> Duration {
        self.lock()
            .jobs
            .front()
            .map_or(Duration::ZERO, |job| job.queued_at.elapsed())
    }

    /// Folds one job's duration into the moving average (weight 1/8).
    fn record_job(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .job_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { took } else { (old * 7 + took) / 8 })
            });
    }

    /// Never more jobs queued than admissions, so the queue is bounded by the capacity.
    fn submit(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    /// The next job, waiting for one; `None` once the pool is closed and drained. First sheds
    /// the jobs that can no longer start in time ([`Self::shed_hopeless`]), judged by the
    /// average job, as admissions are. With every thread busy, the average over the jobs that
    /// ended on all of them is how fast the queue drains (`concurrency` jobs per average job),
    /// even when one thread keeps a core and the other gets a tenth of one. A slow job that just
    /// ended is not: judged also by it, when longer, the pool refused queued jobs that the
    /// other thread, at full speed, would have served in time (measured in the README's
    /// performance section).
    fn next(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                let shed = self.shed_hopeless(&mut queue, self.average_job());
                drop(queue);
                self.refuse_all(shed);
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Takes off the back of the queue, newest first, the jobs that would likely wait past
    /// `max_wait`, from what they have waited and jobs taking `job` each (the estimate that
    /// admits them, [`Self::predicted_wait`]), and stops at the first that would not. Jobs
    /// admitted while hashing ran fast become such jobs when other work takes the cores
    /// (hashing runs below it). Refused now, their callers hear at once what they would
    /// otherwise hear at `max_wait`, and the jobs ahead keep their turns. Newest first, because
    /// they have waited least and are the furthest from a thread. Abandoned jobs met on the way
    /// are dropped, freeing their places.
    fn shed_hopeless(&self, queue: &mut Queue, job: Duration) -> Vec<Job> {
        let mut shed = Vec::new();
        while let Some(last) = queue.jobs.back() {
            let hopeless = last.task.abandoned()
                || last.queued_at.elapsed() + self.predicted_wait(queue.jobs.len(), job)
                    > self.max_wait;
            if !hopeless {
                break;
            }
            shed.extend(queue.jobs.pop_back());
        }
        shed
    }

    /// Refuses jobs taken off the queue (with [`HashError::Busy`]), outside its lock.
    fn refuse_all(&self, jobs: impl IntoIterator<Item = Job>) {
        for Job { slot, task, .. } in jobs {
            // Freed before the caller hears, as for a computed job.
            drop(slot);
            if !task.abandoned() {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                task.refuse(HashError::Busy);
            }
        }
    }

    /// The loop of hashing thread `n` (from 0).
    fn work(&self, n: usize) {
        lower_this_threads_priority();
        let mut memory = Memory::new(self.params.block_count());
        while let Some(Job {
            slot,
            task,
            queued_at,
        }) = self.next()
        {
            if task.abandoned() {
                // Dropping the job frees its slot; no answer is due to anyone.
                continue;
            }
            if queued_at.elapsed() > self.max_wait {
                self.refuse_all([Job {
                    slot,
                    task,
                    queued_at,
                }]);
                continue;
            }
            self.running.fetch_add(1, Ordering::AcqRel);
            let done = Done {
                _slot: slot,
                running: &self.running,
            };
            // A panic drops the reply (the caller gets an error) and `done`; the thread goes on.
            let started = Instant::now();
            self.started[n].store(self.micros_since_epoch() + 1, Ordering::Relaxed);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                task.run(&self.params, &mut memory, done)
            }));
            self.started[n].store(0, Ordering::Relaxed);
            let took = started.elapsed();
            self.record_job(took);
        }
    }
}

/// Runs the calling thread at a lower CPU priority ([`HASHING_NICE_INCREMENT`]). Hashing keeps
/// every core busy under a sign-in flood; at the workers' priority it would take the cores from
/// requests that need microseconds (an authenticated GET waited behind whole argon2 jobs: p99
/// above 50 ms in the load benchmark). At a low priority the scheduler runs those first and
/// gives hashing the time left over, so sign-in throughput is unchanged when nothing else is
/// waiting.
/// Best effort: a system that refuses leaves the priority as it was.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread, with no pointers. On Linux, nice values
    // are per thread: `PRIO_PROCESS` with a thread id changes only that thread, which started
    // with its creator's. (`getpriority` fails only for a thread that does not exist, never for
    // the caller's own id, so its result, which may be -1 as a valid nice value, is not checked.)
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let own = libc::getpriority(libc::PRIO_PROCESS, tid);
        let lowered = own.saturating_add(HASHING_NICE_INCREMENT).min(19);
        libc::setpriority(libc::PRIO_PROCESS, tid, lowered);
    }
}

/// A hashing thread's argon2 memory: one buffer for the configured parameters, allocated at the
/// first use and reused for every hash. Argon2 writes every block before reading it, so the
/// buffer needs no clearing between uses.
struct Memory {
    /// Blocks the configured parameters need.
    keep: usize,
    blocks: Vec<Block>,
}

impl Memory {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            blocks: Vec::new(),
        }
    }

    /// Calls `f` with `count` blocks: from the kept buffer when they fit (a stored hash with
    /// smaller parameters uses its start), else from a buffer for this call only (a stored hash
    /// with larger parameters than the configured ones; rare, and rehashed at sign-in).
    fn with_blocks<T>(
        &mut self,
        count: usize,
        f: impl FnOnce(&mut [Block]) -> T,
    ) -> Result<T, HashError> {
        if count <= self.keep {
            if self.blocks.len() < self.keep {
                self.blocks = blocks(self.keep)?;
            }
            Ok(f(&mut self.blocks[..count]))
        } else {
            Ok(f(&mut blocks(count)?))
        }
    }
}

fn blocks(count: usize) -> Result<Vec<Block>, HashError> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(count)
        .map_err(|_| HashError::Internal(format!("cannot allocate {count} KiB for argon2")))?;
    blocks.resize(count, Block::new());
    Ok(blocks)
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// A new hash of `password` with a random salt.
fn hash_new(params: &Params, memory: &mut Memory, password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| HashError::Internal("no randomness".into()))?;
    hash_with_salt(params, memory, password, &salt)
}

/// The PHC string the `argon2` crate's `hash_password` makes for this salt:
/// `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`, a 32-byte output.
fn hash_with_salt(
    params: &Params,
    memory: &mut Memory,
    password: &[u8],
    salt: &[u8],
) -> Result<String, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError::Internal(e.to_string());
    let mut output = [0u8; Output::MAX_LENGTH];
    let output = &mut output[..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    memory
        .with_blocks(params.block_count(), |blocks| {
            argon2id(params).hash_password_into_with_memory(password, salt, output, blocks)
        })?
        .map_err(|e| internal(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| internal(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| internal(&e))?),
        hash: Some(Output::new(output).map_err(|e| internal(&e))?),
    };
    Ok(hash.to_string())
}

/// Recomputes the stored hash (its own algorithm, version, parameters and salt) and compares
/// the outputs in constant time. Anything unreadable does not match.
fn verify_stored(params: &Params, memory: &mut Memory, password: &[u8], stored: &str) -> Verified {
    let no = Verified {
        matches: false,
        needs_rehash: false,
    };
    let Ok(hash) = PasswordHash::new(stored) else {
        return no;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return no;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return no;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return no;
    };
    // The output length is the stored one's.
    let Ok(stored_params) = Params::try_from(&hash) else {
        return no;
    };
    let mut output = [0u8; Output::MAX_LENGTH];
    let output = &mut output[..expected.len()];
    let argon2 = Argon2::new(algorithm, version, stored_params.clone());
    let computed = memory.with_blocks(stored_params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, output, blocks)
    });
    let matches = matches!(computed, Ok(Ok(())))
        && aws_lc_rs::constant_time::verify_slices_are_equal(output, expected.as_bytes()).is_ok();
    let current = (algorithm, version) == (Algorithm::Argon2id, Version::V0x13)
        && (
            stored_params.m_cost(),
            stored_params.t_cost(),
            stored_params.p_cost(),
        ) == (params.m_cost(), params.t_cost(), params.p_cost());
    Verified {
        matches,
        needs_rehash: matches && !current,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use argon2::{PasswordHasher, PasswordVerifier};

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

    #[cfg(target_os = "linux")]
    #[test]
    fn lowering_the_priority_changes_only_the_calling_thread() {
        fn own_nice() -> i32 {
            // SAFETY: reads the calling thread's nice value; no pointers.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        }
        let before = own_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_threads_priority();
            own_nice()
        })
        .join()
        .unwrap();
        // Relative to the caller's, so also right under `nice -n 15 cargo test`.
        assert_eq!(lowered, (before + HASHING_NICE_INCREMENT).min(19));
        assert_eq!(own_nice(), before, "the caller's thread keeps its priority");
    }

    /// Polls the condition until it holds, failing after ten seconds.
    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A running job and the sender that releases it.
    type BlockingJob = (
        tokio::task::JoinHandle<Result<(), HashError>>,
        std::sync::mpsc::Sender<()>,
    );

    /// A job that holds its hashing thread until `release` is sent to (or dropped).
    fn blocking_job(hasher: &Hasher) -> BlockingJob {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let admission = hasher.try_admit().expect("a free place");
        let job = tokio::spawn(admission.run(move |_, _| {
            let _ = blocked.recv();
        }));
        (job, release)
    }

    /// A blocking job that has been running for longer than `limit` when this returns.
    async fn job_run_past(hasher: &Hasher, limit: Duration) -> BlockingJob {
        let running_before = hasher.running();
        let job = blocking_job(hasher);
        wait_until("the job runs", || hasher.running() > running_before).await;
        let started = Instant::now();
        wait_until("it has run past the limit", || started.elapsed() > limit).await;
        job
    }

    /// Admits and queues `count` hash jobs, each queued before the next is admitted, so that
    /// their order in the queue is the order of the handles.
    async fn queue_in_order(
        hasher: &Hasher,
        count: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<String, HashError>>> {
        let waiting_before = hasher.waiting();
        let mut queued = Vec::new();
        for n in 0..count {
            let admission = hasher.try_admit().expect("admitted");
            queued.push(tokio::spawn(async move {
                admission.hash(&format!("queued {n}")).await
            }));
            wait_until("the job is queued", || {
                hasher.waiting() == waiting_before + n + 1
            })
            .await;
        }
        queued
    }

    /// Each job's outcome, in order: computed, or the error's text. Every answer is due well
    /// within ten seconds (the tests' limits are longer where that matters).
    async fn outcomes(
        jobs: Vec<tokio::task::JoinHandle<Result<String, HashError>>>,
    ) -> Vec<Result<(), String>> {
        let mut outcomes = Vec::new();
        for job in jobs {
            let outcome = tokio::time::timeout(Duration::from_secs(10), job)
                .await
                .expect("answered in time")
                .unwrap();
            outcomes.push(outcome.map(|_| ()).map_err(|e| e.to_string()));
        }
        outcomes
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
        // Larger stored parameters than the configured ones (a buffer for that call only).
        let big = new.hash("pw").await.unwrap();
        assert_eq!(old.verify("pw", Some(&big)).await.unwrap(), verified);
        assert!(!old.verify("pW", Some(&big)).await.unwrap().matches);
    }

    #[test]
    fn a_reused_buffer_gives_the_plain_argon2_output() {
        let configured = Params::new(256, 2, 1, None).unwrap();
        let mut memory = Memory::new(configured.block_count());
        let salt = b"sixteen byte salt";
        // Other parameters in between, using the start of the buffer or one of their own.
        let cases = [
            (Params::new(256, 2, 1, None).unwrap(), "first"),
            (Params::new(64, 1, 1, None).unwrap(), "smaller"),
            (Params::new(256, 2, 1, None).unwrap(), "second"),
            (Params::new(512, 1, 2, None).unwrap(), "larger, two lanes"),
            (Params::new(256, 2, 1, None).unwrap(), "third"),
        ];
        for (params, password) in cases {
            let ours = hash_with_salt(&params, &mut memory, password.as_bytes(), salt).unwrap();
            let plain = argon2id(&params)
                .hash_password_with_salt(password.as_bytes(), salt)
                .unwrap()
                .to_string();
            assert_eq!(ours, plain, "{password}");
        }
        assert_eq!(memory.blocks.len(), configured.block_count());
    }

    #[tokio::test]
    async fn hashes_of_the_plain_argon2_api_verify_and_ours_verify_with_it() {
        let hasher = Hasher::new(&settings(64, 1, 1)).unwrap();
        let params = Params::new(64, 1, 1, None).unwrap();

        let plain = argon2id(&params).hash_password(b"pw").unwrap().to_string();
        let verified = hasher.verify("pw", Some(&plain)).await.unwrap();
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!hasher.verify("pw ", Some(&plain)).await.unwrap().matches);

        let ours = hasher.hash("pw").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2id(&params).verify_password(b"pw", &parsed).is_ok());
        assert!(argon2id(&params).verify_password(b"pw ", &parsed).is_err());

        // Another algorithm, version and output length verify too, and ask for a rehash.
        let other = Params::new(64, 1, 1, Some(24)).unwrap();
        let legacy = Argon2::new(Algorithm::Argon2i, Version::V0x10, other)
            .hash_password(b"pw")
            .unwrap()
            .to_string();
        let verified = hasher.verify("pw", Some(&legacy)).await.unwrap();
        assert_eq!(
            verified,
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
        assert!(!hasher.verify("pw!", Some(&legacy)).await.unwrap().matches);
    }

    #[tokio::test]
    async fn jobs_run_on_the_named_hashing_threads() {
        let hasher = Hasher::new(&settings(64, 2, 0)).unwrap();
        let name = hasher
            .try_admit()
            .unwrap()
            .run(|_, _| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        let name = name.expect("a named thread");
        assert!(
            name == "authpool-hash-1" || name == "authpool-hash-2",
            "{name}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_frees_its_places() {
        // One slot running and one place waiting: a third job is refused without waiting.
        let hasher = Hasher::new(&settings(64, 1, 1)).unwrap();
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("waits").await })
        };
        wait_until("the second job waits", || hasher.waiting() == 1).await;
        // The refusal is held for a moment (a client retrying at once is slowed down), and
        // decided without waiting for a place.
        let refused_at = Instant::now();
        assert!(matches!(hasher.hash("refused").await, Err(HashError::Busy)));
        assert!(refused_at.elapsed() >= REFUSAL_HOLD, "a refusal is held");
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        assert!(refused_at.elapsed() < Duration::from_secs(1));
        assert_eq!(
            (
                hasher.in_flight(),
                hasher.running(),
                hasher.waiting(),
                hasher.rejected()
            ),
            (2, 1, 1, 2)
        );

        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(waiting.await.unwrap().is_ok());
        assert_eq!(hasher.in_flight(), 0);
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));
        assert!(hasher.hash("admitted again").await.is_ok());
    }

    #[tokio::test]
    async fn a_job_that_waited_too_long_is_refused_not_computed() {
        let max_wait = Duration::from_millis(20);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 1), max_wait).unwrap();
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        let queued_at = Instant::now();
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("waits too long").await })
        };
        wait_until("the second job waits", || hasher.waiting() == 1).await;
        // The time it waits is the point here: the first job holds the only thread past it.
        wait_until("the wait is over", || queued_at.elapsed() > max_wait * 2).await;
        release.send(()).unwrap();
        running.await.unwrap().unwrap();

        assert!(matches!(waiting.await.unwrap(), Err(HashError::Busy)));
        assert_eq!(hasher.rejected(), 1);
        assert_eq!(hasher.in_flight(), 0);
        // A job that does not wait is computed.
        assert!(hasher.hash("admitted again").await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_jobs_that_can_no_longer_start_in_time_are_refused_newest_first() {
        // A limit no job reaches in this test: any refusal below is the estimate's.
        let max_wait = Duration::from_secs(60);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 8), max_wait).unwrap();
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        // No job has ended, so nothing predicts a wait: all three are admitted and queued.
        let queued = queue_in_order(&hasher, 3).await;
        // Then jobs become slow, as when other work takes the cores: with the running job's
        // end folded in, jobs take ~39 s, so once it ends the second queued job would start
        // within the limit and the third would not.
        hasher.inner.shared.record_job(Duration::from_secs(45));
        release.send(()).unwrap();
        running.await.unwrap().unwrap();

        let busy = Err(HashError::Busy.to_string());
        assert_eq!(outcomes(queued).await, [Ok(()), Ok(()), busy]);
        assert_eq!(hasher.rejected(), 1);
        assert_eq!(hasher.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_slowly_draining_queue_refuses_at_once_though_it_has_room() {
        // Admissions stop at a quarter of it, 20 ms.
        let max_wait = Duration::from_millis(80);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 8), max_wait).unwrap();
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        assert!(hasher.try_admit().is_ok(), "room, and nothing waits");
        let queued_at = Instant::now();
        let waiting = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("waits").await })
        };
        wait_until("the second job waits", || hasher.waiting() == 1).await;
        let limit = max_wait / ADMISSION_SHARE;
        wait_until("it has waited the admissions' limit", || {
            queued_at.elapsed() > limit
        })
        .await;
        let refused_at = Instant::now();
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        assert!(refused_at.elapsed() < limit, "refused without waiting");
        assert_eq!(hasher.in_flight(), 2, "six places are still free");

        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        let _ = waiting.await.unwrap();
        assert!(
            hasher.try_admit().is_ok(),
            "admitted again once the queue drained"
        );
    }

    #[tokio::test]
    async fn a_job_is_admitted_to_a_predicted_wait_of_a_quarter_of_the_limit_at_most() {
        let max_wait = Duration::from_secs(60);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 8), max_wait).unwrap();
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        // Jobs take 7 s on the one thread: a new job waits 7 s for each admitted ahead of it,
        // the running one included, and may be admitted to 15 s of waiting.
        hasher.inner.shared.record_job(Duration::from_secs(7));
        let first = hasher.try_admit().expect("7 s ahead");
        let second = hasher.try_admit().expect("14 s ahead");
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)), "21 s");
        drop((first, second));
        assert!(hasher.try_admit().is_ok(), "7 s ahead again");
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn admissions_are_refused_when_jobs_take_too_long_to_serve_one_more_in_time() {
        let max_wait = Duration::from_millis(40);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 8), max_wait).unwrap();
        // A job that takes longer than the limit, as when other work has the cores.
        let (slow, release) = job_run_past(&hasher, max_wait).await;
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();

        let (running, release) = blocking_job(&hasher);
        wait_until("the next job runs", || hasher.running() == 1).await;
        // Nothing waits, but one more would wait a whole job: refused at once.
        assert_eq!(hasher.waiting(), 0);
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        // With the thread free, a job starts at once whatever jobs take.
        assert!(hasher.try_admit().is_ok());
    }

    #[tokio::test]
    async fn a_job_running_past_the_limit_refuses_admissions_before_it_ends() {
        let max_wait = Duration::from_millis(40);
        let hasher = Hasher::with_max_wait(&settings(64, 1, 8), max_wait).unwrap();
        // No job has ended yet, so there is no average: only the running one can tell.
        let (running, release) = job_run_past(&hasher, max_wait).await;
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(
            hasher.try_admit().is_ok(),
            "a free thread starts a job at once"
        );
    }

    #[tokio::test]
    async fn a_free_thread_admits_while_another_job_has_stalled() {
        let max_wait = Duration::from_millis(40);
        let hasher = Hasher::with_max_wait(&settings(64, 2, 8), max_wait).unwrap();
        let (stalled, release) = job_run_past(&hasher, max_wait).await;
        // The second thread is free, so this one would start at once.
        let (second, release_second) = blocking_job(&hasher);
        wait_until("both jobs run", || hasher.running() == 2).await;
        // Now one more would queue behind a stalled thread: refused.
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        drop((release, release_second));
        stalled.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exactly_concurrency_jobs_run_at_once() {
        let hasher = Hasher::new(&settings(64, 2, 2)).unwrap();
        let jobs: Vec<_> = (0..3).map(|_| blocking_job(&hasher)).collect();
        wait_until("two jobs run and one waits", || {
            hasher.running() == 2 && hasher.waiting() == 1
        })
        .await;
        // Still so a moment later: there is no third thread.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!((hasher.running(), hasher.waiting()), (2, 1));
        for (job, release) in jobs {
            drop(release);
            job.await.unwrap().unwrap();
        }
        assert_eq!(hasher.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_frees_its_place_and_its_job_is_not_computed() {
        let hasher = Hasher::new(&settings(64, 1, 1)).unwrap();

        // An admission dropped unused gives its place back at once.
        let unused = hasher.try_admit().unwrap();
        assert_eq!(hasher.in_flight(), 1);
        drop(unused);
        assert_eq!(hasher.in_flight(), 0);

        // A queued job whose caller went away is skipped, and its place freed.
        let (running, release) = blocking_job(&hasher);
        wait_until("the first job runs", || hasher.running() == 1).await;
        let computed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = tokio::spawn({
            let computed = computed.clone();
            hasher
                .try_admit()
                .unwrap()
                .run(move |_, _| computed.store(true, Ordering::SeqCst))
        });
        wait_until("the second job waits", || hasher.waiting() == 1).await;
        assert!(matches!(hasher.try_admit(), Err(HashError::Busy)));
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());

        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        wait_until("every place is free", || hasher.in_flight() == 0).await;
        assert_eq!((hasher.running(), hasher.waiting()), (0, 0));
        assert!(!computed.load(Ordering::SeqCst), "an abandoned job ran");
        assert!(hasher.verify("pw", None).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_answers_an_error_and_keeps_its_thread() {
        let hasher = Hasher::new(&settings(64, 1, 0)).unwrap();
        let failed = hasher
            .try_admit()
            .unwrap()
            .run(|_, _| -> () { panic!("a test panic in a hashing job") })
            .await;
        assert!(matches!(failed, Err(HashError::Internal(_))));
        assert_eq!((hasher.in_flight(), hasher.running()), (0, 0));
        assert!(hasher.hash("still works").await.is_ok());
    }

    #[test]
    fn the_threads_end_with_the_last_hasher() {
        let hasher = Hasher::new(&settings(64, 2, 0)).unwrap();
        let shared = Arc::downgrade(&hasher.inner.shared);
        drop(hasher);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the hashing threads still run");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
