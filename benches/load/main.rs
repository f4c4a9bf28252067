//! Load benchmark of authpool: starts the release binary on loopback with production
//! argon2 parameters on a fresh database, seeds users, drives it at several concurrencies, and
//! prints each figure next to the machine's raw argon2id and RS256 limits as a ratio.
//!
//! ```sh
//! cargo bench --bench load                                   # 1 000 users, SQLite, 10 s per step
//! cargo bench --bench load -- --users 1000000                # the scale check
//! cargo bench --bench load -- --database-url postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench --bench load -- --help                         # every option
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

mod client;
mod raw;
mod report;
mod seed;
mod server;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use authpool::{
    config::Settings,
    crypto::keys::{KeyStore, TokenConfig},
    store::database,
};
use client::{Job, Outcome, Stats};
use http::{Method, StatusCode};
use report::{FloodRow, Row, mark};
use serde_json::json;
use server::{CpuUse, Memory, Server, ServerConfig};

const USAGE: &str = "\
cargo bench --bench load -- [OPTIONS]

  --users N             users to seed (default 1000). Any other number is the scale check: a
                        second server on 1000 users is driven in the slices between this
                        one's login and GET slices, and their latencies compared
  --database-url URL    PostgreSQL server to use (postgres://USER@HOST:PORT/DB): a fresh database
                        is created on it and dropped afterwards [default: SQLite in a temp dir]
  --duration-s S        seconds per workload and concurrency (default 10)
  --concurrency LIST    comma-separated concurrencies (default 1,8,64)
  --workloads LIST      any of login,get,refresh,mixed,flood (default: all)
  --flood N             connections of the login flood (default 256)
  --raw-s S             seconds per raw-limit measurement (default 5)
";

#[derive(Debug)]
struct Options {
    users: u64,
    database_url: Option<String>,
    duration: Duration,
    concurrency: Vec<usize>,
    workloads: Vec<String>,
    flood: usize,
    raw: Duration,
}

const WORKLOADS: &[&str] = &["login", "get", "refresh", "mixed", "flood"];

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            users: 1_000,
            database_url: None,
            duration: Duration::from_secs(10),
            concurrency: vec![1, 8, 64],
            workloads: WORKLOADS.iter().map(|w| w.to_string()).collect(),
            flood: 256,
            raw: Duration::from_secs(5),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |text: String| {
                text.replace('_', "")
                    .parse::<u64>()
                    .map_err(|e| format!("{name}: {e}"))
            };
            let seconds = |text: String| {
                text.parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{name}: a positive number of seconds"))
            };
            match name {
                // Added by `cargo bench` itself.
                "--bench" => {}
                "--users" => options.users = number(value()?)?.max(1),
                "--database-url" => options.database_url = Some(value()?),
                "--duration-s" => options.duration = seconds(value()?)?,
                "--raw-s" => options.raw = seconds(value()?)?,
                "--flood" => {
                    options.flood = usize::try_from(number(value()?)?.max(1)).unwrap_or(256)
                }
                "--concurrency" => {
                    options.concurrency = value()?
                        .split(',')
                        .map(|c| {
                            c.trim()
                                .parse::<usize>()
                                .map_err(|e| format!("{name}: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if options.concurrency.contains(&0) {
                        return Err(format!("{name}: concurrency 0"));
                    }
                }
                "--workloads" => {
                    options.workloads = value()?.split(',').map(|w| w.trim().to_string()).collect();
                    if let Some(unknown) = options
                        .workloads
                        .iter()
                        .find(|w| !WORKLOADS.contains(&w.as_str()))
                    {
                        return Err(format!("{name}: unknown workload {unknown}"));
                    }
                }
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(options)
    }

    fn wants(&self, workload: &str) -> bool {
        self.workloads.iter().any(|w| w == workload)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: not a benchmark run.
        println!(
            "load benchmark: run it with `cargo bench --bench load` (see benches/load/main.rs)"
        );
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(reason) if reason.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(reason) => {
            eprintln!("load: {reason}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("load: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Tokens of one session.
#[derive(Clone)]
struct Session {
    id_token: String,
    access_token: String,
    refresh_token: String,
}

/// Everything measured, for the report.
#[derive(Default)]
struct Results {
    argon2_one_core: f64,
    argon2_all_cores: f64,
    argon2_all_cores_per_call: f64,
    signatures: f64,
    verifications: f64,
    bare: BTreeMap<usize, Stats>,
    seeded: Option<seed::Seeded>,
    startups: Vec<Duration>,
    idle: Memory,
    rows: Vec<Row>,
    floods: Vec<FloodRow>,
    peak_reset_ok: bool,
    /// The raw argon2id rate each login step was judged against, by concurrency.
    login_limits: Vec<(usize, Limit)>,
    /// The scale check's baseline server: its login and GET stats, by workload and concurrency.
    baseline: Vec<(&'static str, usize, Stats)>,
}

/// A raw rate measured in slices: over all of them, and the slowest and fastest slice.
struct Limit {
    rate: f64,
    slowest: f64,
    fastest: f64,
}

/// Slices of a step measured in slices (see [`Ctx::interleaved`]).
const SLICES: u32 = 5;
/// The start of each slice whose answers the rate leaves out: the pipeline fills first.
const SLICE_WARM_UP: Duration = Duration::from_millis(100);
/// Users of the scale check's baseline: a run with another number of users also drives a
/// server on a database of this many, in the slices between its own.
const BASELINE_USERS: u64 = 1_000;

/// The scale check's second server, on its own database of [`BASELINE_USERS`] users.
struct Baseline {
    server: Server,
    addr: SocketAddr,
    sessions: Vec<Session>,
}

async fn run(options: Options) -> Result<(), String> {
    let run_started = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();
    let settings = Settings::defaults();
    let dir = tempfile::Builder::new()
        .prefix("authpool-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let mut results = Results::default();

    let db = seed::BenchDb::create(options.database_url.as_deref(), dir.path()).await?;
    let baseline_dir = dir.path().join("baseline");
    let baseline_db = if options.users == BASELINE_USERS {
        None
    } else {
        std::fs::create_dir_all(&baseline_dir).map_err(|e| format!("temp dir: {e}"))?;
        match seed::BenchDb::create(options.database_url.as_deref(), &baseline_dir).await {
            Ok(created) => Some(created),
            Err(err) => {
                db.drop_database().await;
                return Err(err);
            }
        }
    };
    progress(&format!("seeding {} users ({})", options.users, db.backend));
    let outcome = measure(
        &options,
        &settings,
        cores,
        (&db, baseline_db.as_ref()),
        dir.path().to_path_buf(),
        &mut results,
    )
    .await;
    db.drop_database().await;
    if let Some(baseline_db) = baseline_db {
        baseline_db.drop_database().await;
    }
    outcome?;

    let total = run_started.elapsed();
    print_report(&options, &settings, cores, &results, load_before, total);
    print_scale(&options, &results);
    Ok(())
}

/// Everything after the database exists; the caller drops the database however this ends.
async fn measure(
    options: &Options,
    settings: &Settings,
    cores: usize,
    (db, baseline_db): (&seed::BenchDb, Option<&seed::BenchDb>),
    dir: PathBuf,
    results: &mut Results,
) -> Result<(), String> {
    let seeded = seed::seed(&db.url, options.users).await?;
    progress(&format!(
        "seeded in {:.1} s (shared hash computed in {:.0} ms)",
        seeded.insert_time.as_secs_f64(),
        seeded.hash_time.as_secs_f64() * 1000.0
    ));
    results.seeded = Some(seeded);

    let config = ServerConfig::new(db.url.clone(), &dir).map_err(|e| format!("port: {e}"))?;
    let addr = config.addr;

    // First start: creates the signing key and the client row; then restarts on the existing
    // database are timed, spawn to `/health/ready` 200.
    progress("first start");
    let mut server = Server::spawn(&config)?;
    server.wait_ready(addr, Instant::now()).await?;
    server.stop();
    let mut server = None;
    for attempt in 0..3 {
        let spawned = Instant::now();
        let mut started = Server::spawn(&config)?;
        let ready = started.wait_ready(addr, spawned).await?;
        results.startups.push(ready);
        if attempt < 2 {
            started.stop();
        } else {
            server = Some(started);
        }
    }
    let server = server.expect("the last start is kept");
    progress(&format!("server pid {} on {addr}", server.pid));
    tokio::time::sleep(Duration::from_secs(1)).await;
    results.idle = server.memory();
    results.peak_reset_ok = server.reset_peak();

    // Sessions for the GET and refresh workers: one per worker at the highest concurrency.
    let max_concurrency = options.concurrency.iter().copied().max().unwrap_or(1);
    progress(&format!("signing in {} sessions", 2 * max_concurrency));
    let sessions = sign_in(addr, options.users, 2 * max_concurrency).await?;
    let (get_sessions, refresh_sessions) = sessions.split_at(max_concurrency);

    let baseline = match baseline_db {
        None => None,
        Some(baseline_db) => {
            progress(&format!(
                "baseline: seeding {BASELINE_USERS} users and starting"
            ));
            seed::seed(&baseline_db.url, BASELINE_USERS).await?;
            let config = ServerConfig::new(baseline_db.url.clone(), &dir.join("baseline"))
                .map_err(|e| format!("port: {e}"))?;
            let mut server = Server::spawn(&config)?;
            server.wait_ready(config.addr, Instant::now()).await?;
            let sessions = sign_in(config.addr, BASELINE_USERS, max_concurrency).await?;
            Some(Baseline {
                server,
                addr: config.addr,
                sessions,
            })
        }
    };

    // authpool's own signer and verifier, on the server's own key, for the raw RS256 rates.
    let bench_db = database::connect(&db.url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let keys = KeyStore::load(
        &bench_db,
        TokenConfig {
            issuer: config.issuer(),
            client_id: server::CLIENT_ID.to_string(),
            publish_after_retire: settings.tokens.longest_ttl(),
        },
    )
    .await
    .map_err(|e| format!("keys: {e}"))?;
    let first = &get_sessions[0];
    let claims =
        raw::RefreshClaimsSet::decode(&first.id_token, &first.access_token, &first.refresh_token)
            .ok_or("cannot decode the claims of the server's tokens")?;
    let ctx = Ctx {
        options,
        addr,
        server: &server,
    };
    // Each raw limit is measured just before the workloads compared with it (the server idle),
    // so that both see the machine in the same state; login's, in slices between its own.
    let stored = stored_hash(&db.url).await?;
    let argon2_rate = |memory, threads, duration| {
        raw::argon2_verifications(
            &settings.argon2,
            &stored,
            seed::PASSWORD,
            memory,
            threads,
            duration,
        )
    };
    if options.wants("login") || options.wants("mixed") || options.wants("flood") {
        progress("raw argon2id rate");
        results.argon2_one_core = argon2_rate(raw::Argon2Memory::Kept, 1, options.raw);
        results.argon2_all_cores = argon2_rate(raw::Argon2Memory::Kept, cores, options.raw);
        results.argon2_all_cores_per_call =
            argon2_rate(raw::Argon2Memory::PerCall, cores, options.raw);
    }
    if options.wants("login") {
        for &c in &options.concurrency {
            progress(&format!("login, concurrency {c}"));
            let logins = |users| {
                (0..c)
                    .map(|i| Job::login(users, seed::PASSWORD, seed_of(i), false))
                    .collect()
            };
            let mut lanes = vec![ctx.lane(logins(options.users))];
            if let Some(baseline) = &baseline {
                lanes.push(baseline.lane(logins(BASELINE_USERS)));
            }
            let raw = |duration| argon2_rate(raw::Argon2Memory::Kept, cores, duration);
            let (mut lanes, limit) = ctx.interleaved(lanes, Some(&raw)).await;
            let limit = limit.expect("measured with a raw rate");
            let (stats, measured) = lanes.remove(0);
            if let Some((stats, _)) = lanes.pop() {
                results.baseline.push(("login", c, stats));
            }
            let ratio = stats.ok_per_s() / limit.rate;
            let judged = c >= cores;
            results.login_limits.push((c, limit));
            results.rows.push(row(
                "login",
                c,
                &stats,
                measured,
                Some((ratio, "of argon2id")),
                if judged {
                    "≥ 90 %"
                } else {
                    "– (one core busy)"
                },
                judged.then_some(ratio >= 0.90),
                true,
            ));
        }
    }
    if options.wants("get") || options.wants("mixed") {
        let bare = raw::BareServer::start(raw::Rs256::of(&keys)?)?;
        for &c in &options.concurrency {
            progress(&format!("bare poem endpoint, concurrency {c}"));
            let jobs = get_jobs(get_sessions, c);
            let (_, stats) = client::run(bare.addr, vec![jobs], options.duration)
                .await
                .remove(0);
            if stats.errors + stats.timeouts > 0 {
                return Err(format!(
                    "the bare endpoint failed: {}",
                    stats.first_error.unwrap_or_default()
                ));
            }
            results.bare.insert(c, stats);
        }
    }

    if options.wants("get") {
        for &c in &options.concurrency {
            progress(&format!("authenticated GET, concurrency {c}"));
            let (stats, measured) = match &baseline {
                None => {
                    let (mut stats, measured) = ctx.phase(vec![get_jobs(get_sessions, c)]).await;
                    (stats.remove(0), measured)
                }
                Some(baseline) => {
                    let lanes = vec![
                        ctx.lane(get_jobs(get_sessions, c)),
                        baseline.lane(get_jobs(&baseline.sessions, c)),
                    ];
                    let (mut lanes, _) = ctx.interleaved(lanes, None).await;
                    let (base, _) = lanes.pop().expect("two lanes");
                    results.baseline.push(("auth GET", c, base));
                    lanes.pop().expect("two lanes")
                }
            };
            let stats = &stats;
            let ratio = results
                .bare
                .get(&c)
                .map(|b| stats.ok_per_s() / b.ok_per_s());
            let p99_ok = stats.ok_ms(99.0).is_some_and(|p| p <= 5.0);
            let (target, met) = if c >= 64 {
                ("≥ 30 %, p99 ≤ 5 ms", ratio.map(|r| r >= 0.30 && p99_ok))
            } else {
                ("≥ 30 %", ratio.map(|r| r >= 0.30))
            };
            results.rows.push(row(
                "auth GET",
                c,
                stats,
                measured,
                ratio.map(|r| (r, "of bare poem")),
                target,
                met,
                true,
            ));
        }
    }
    progress("raw RS256 rates");
    results.signatures = raw::signatures(&keys, &claims, cores, options.raw);
    results.verifications = raw::verifications(
        &raw::Rs256::of(&keys)?,
        &first.access_token,
        cores,
        options.raw,
    );

    if options.wants("refresh") {
        let mut jobs: Vec<Job> = refresh_sessions
            .iter()
            .map(|s| Job::Refresh {
                refresh_token: s.refresh_token.clone(),
            })
            .collect();
        let raw_rate = results.signatures / f64::from(raw::SIGNATURES_PER_TOKEN_SET);
        for &c in &options.concurrency {
            progress(&format!("refresh, concurrency {c}"));
            // Each worker goes on with the token it last received; the others wait their turn.
            let rest = jobs.split_off(c.min(jobs.len()));
            let (mut groups, measured) = ctx.phase_keeping_jobs(vec![jobs]).await;
            let (used, stats) = groups.remove(0);
            jobs = used;
            jobs.extend(rest);
            let ratio = stats.ok_per_s() / raw_rate;
            let judged = c >= cores;
            results.rows.push(row(
                "refresh",
                c,
                &stats,
                measured,
                Some((ratio, "of RS256 ÷ 3")),
                if judged {
                    "≥ 40 %"
                } else {
                    "– (one core busy)"
                },
                judged.then_some(ratio >= 0.40),
                true,
            ));
        }
    }
    if options.wants("mixed") {
        for &c in &options.concurrency {
            progress(&format!(
                "mixed: authenticated GET, concurrency {c}, beside a {}-connection login flood",
                options.flood
            ));
            // Clients that back off as told keep the hashing pool full (its queue refills
            // within a second); the hostile flood that retries at once is the next workload.
            let flood = flood_jobs(options, 1_000, true);
            let (stats, measured) = ctx.phase(vec![get_jobs(get_sessions, c), flood]).await;
            let (gets, flood) = (&stats[0], &stats[1]);
            let ratio = results.bare.get(&c).map(|b| gets.ok_per_s() / b.ok_per_s());
            let met = gets.ok_ms(99.0).is_some_and(|p| p <= 20.0) && gets.timeouts == 0;
            results.rows.push(row(
                "mixed: auth GET",
                c,
                gets,
                measured,
                ratio.map(|r| (r, "of bare poem")),
                "p99 ≤ 20 ms, 0 timeouts",
                Some(met),
                true,
            ));
            results.floods.push(flood_row(
                format!("mixed, GET concurrency {c}"),
                options.flood,
                flood,
            ));
        }
    }
    if options.wants("flood") {
        progress(&format!("login flood, {} connections", options.flood));
        let (stats, measured) = ctx.phase(vec![flood_jobs(options, 2_000, false)]).await;
        let flood = &stats[0];
        let peak_mib = measured.memory.peak_kib.map(|k| k as f64 / 1024.0);
        results.rows.push(row(
            "login flood",
            options.flood,
            flood,
            measured,
            Some((flood.ok_per_s() / results.argon2_all_cores, "of argon2id")),
            "peak RSS ≤ 100 MB",
            peak_mib.map(|m| m <= 100.0),
            false,
        ));
        results
            .floods
            .push(flood_row("login flood alone".into(), options.flood, flood));
    }

    server.stop();
    bench_db.close().await.ok();
    Ok(())
}

/// One seeded user per worker, from a different part of the user range each time.
fn seed_of(i: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (i as u64 + 1) ^ u64::from(nanos).rotate_left(17)
}

fn get_jobs(sessions: &[Session], c: usize) -> Vec<Job> {
    (0..c)
        .map(|i| Job::Get {
            access_token: sessions[i % sessions.len()].access_token.clone(),
        })
        .collect()
}

/// The login flood's clients; `polite` ones wait as `Retry-After` says after a 503.
fn flood_jobs(options: &Options, salt: usize, polite: bool) -> Vec<Job> {
    (0..options.flood)
        .map(|i| Job::login(options.users, seed::PASSWORD, seed_of(salt + i), polite))
        .collect()
}

/// What the server did during a phase, besides answering.
#[derive(Clone, Copy)]
struct Measured {
    memory: Memory,
    cpu: CpuUse,
}

/// A server driven in slices, and the jobs that drive it (kept from one slice to the next).
struct Lane<'a> {
    addr: SocketAddr,
    server: &'a Server,
    jobs: Vec<Job>,
}

/// What a phase needs of the run.
struct Ctx<'a> {
    options: &'a Options,
    addr: SocketAddr,
    server: &'a Server,
}

impl Baseline {
    fn lane(&self, jobs: Vec<Job>) -> Lane<'_> {
        Lane {
            addr: self.addr,
            server: &self.server,
            jobs,
        }
    }
}

impl<'a> Ctx<'a> {
    fn lane(&self, jobs: Vec<Job>) -> Lane<'a> {
        Lane {
            addr: self.addr,
            server: self.server,
            jobs,
        }
    }

    /// Runs the groups side by side for the duration; returns their stats, the server's peak
    /// memory and the CPU used during the phase.
    async fn phase(&self, groups: Vec<Vec<Job>>) -> (Vec<Stats>, Measured) {
        let (groups, measured) = self.phase_keeping_jobs(groups).await;
        (
            groups.into_iter().map(|(_, stats)| stats).collect(),
            measured,
        )
    }

    /// Runs the step in [`SLICES`] rounds, each of one slice of `raw` when given (a raw rate
    /// over the given time, measured with every server idle) and then one slice of each lane in
    /// turn. Returns each lane's merged stats and what its server used during its slices, and
    /// the raw rate over all its slices.
    ///
    /// Why slices: this VM's speed moves by up to a third between runs a minute apart (the raw
    /// argon2id rate most: its memory bandwidth is shared with other guests), more than the
    /// differences the ratios are there to show. Alternating keeps both sides of a comparison
    /// in the same seconds; each side gets as much time as when measured in one piece.
    async fn interleaved(
        &self,
        lanes: Vec<Lane<'_>>,
        raw: Option<&dyn Fn(Duration) -> f64>,
    ) -> (Vec<(Stats, Measured)>, Option<Limit>) {
        let slice = self.options.duration / SLICES;
        let raw_slice = self.options.raw / SLICES;
        let warm_up = SLICE_WARM_UP.min(slice / 4);
        let mut lanes: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                lane.server.reset_peak();
                (lane, Stats::default(), CpuUse::default(), 0.0)
            })
            .collect();
        let (mut hashes, mut slowest, mut fastest) = (0.0, f64::INFINITY, 0.0_f64);
        for _ in 0..SLICES {
            if let Some(raw) = raw {
                let rate = raw(raw_slice);
                hashes += rate * raw_slice.as_secs_f64();
                slowest = slowest.min(rate);
                fastest = fastest.max(rate);
            }
            for (lane, stats, cpu, elapsed) in &mut lanes {
                let before = lane.server.cpu_ticks();
                let started = Instant::now();
                let jobs = std::mem::take(&mut lane.jobs);
                let mut groups =
                    client::run_after_warm_up(lane.addr, vec![jobs], slice, warm_up).await;
                let seconds = started.elapsed().as_secs_f64();
                *elapsed += seconds;
                let used = before.cores_until(&lane.server.cpu_ticks(), seconds);
                cpu.server += used.server * seconds;
                cpu.bench += used.bench * seconds;
                cpu.other += used.other * seconds;
                let (jobs, slice_stats) = groups.pop().expect("one group");
                lane.jobs = jobs;
                stats.merge(slice_stats);
            }
        }
        let lanes = lanes
            .into_iter()
            .map(|(lane, mut stats, cpu, elapsed)| {
                stats.finish((slice - warm_up) * SLICES);
                let cpu = CpuUse {
                    server: cpu.server / elapsed,
                    bench: cpu.bench / elapsed,
                    other: cpu.other / elapsed,
                };
                let memory = lane.server.memory();
                (stats, Measured { memory, cpu })
            })
            .collect();
        let limit = raw.map(|_| Limit {
            rate: hashes / (raw_slice * SLICES).as_secs_f64(),
            slowest,
            fastest,
        });
        (lanes, limit)
    }

    async fn phase_keeping_jobs(
        &self,
        groups: Vec<Vec<Job>>,
    ) -> (Vec<(Vec<Job>, Stats)>, Measured) {
        // Let the previous phase's last requests and queued hashes drain.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.server.reset_peak();
        let before = self.server.cpu_ticks();
        let started = Instant::now();
        let results = client::run(self.addr, groups, self.options.duration).await;
        let cpu = before.cores_until(&self.server.cpu_ticks(), started.elapsed().as_secs_f64());
        let measured = Measured {
            memory: self.server.memory(),
            cpu,
        };
        (results, measured)
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    workload: &str,
    concurrency: usize,
    stats: &Stats,
    measured: Measured,
    ratio: Option<(f64, &'static str)>,
    target: &str,
    met: Option<bool>,
    busy_is_error: bool,
) -> Row {
    Row {
        workload: workload.to_string(),
        concurrency,
        rps: stats.ok_per_s(),
        p50_ms: stats.ok_ms(50.0),
        p99_ms: stats.ok_ms(99.0),
        errors: stats.errors + if busy_is_error { stats.busy() } else { 0 },
        timeouts: stats.timeouts,
        peak_mib: measured.memory.peak_kib.map(|k| k as f64 / 1024.0),
        cpu: measured.cpu,
        ratio,
        target: target.to_string(),
        met,
        first_error: stats.first_error.clone(),
    }
}

fn flood_row(during: String, connections: usize, stats: &Stats) -> FloodRow {
    let p99 = stats.busy_ms(99.0);
    FloodRow {
        during,
        connections,
        logins_per_s: stats.ok_per_s(),
        busy: stats.busy(),
        busy_per_s: stats.busy_in_window as f64 / stats.duration.as_secs_f64(),
        busy_with_retry_after: stats.busy_with_retry_after,
        busy_p50_ms: stats.busy_ms(50.0),
        busy_p99_ms: p99,
        errors: stats.errors,
        timeouts: stats.timeouts,
        met: (stats.busy() > 0).then(|| {
            stats.busy_with_retry_after == stats.busy()
                && p99.is_some_and(|p| p <= 50.0)
                && stats.timeouts == 0
        }),
    }
}

/// The password hash of a seeded user, read back from the database.
async fn stored_hash(url: &str) -> Result<String, String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = database::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let user = entity::user::Entity::find()
        .filter(entity::user::Column::EmailKey.eq(seed::email(0)))
        .one(&db)
        .await
        .map_err(|e| format!("read a seeded user: {e}"))?
        .ok_or("no seeded user")?;
    db.close().await.ok();
    Ok(user.password_hash)
}

/// Signs in `count` different seeded users, eight at a time.
async fn sign_in(addr: SocketAddr, users: u64, count: usize) -> Result<Vec<Session>, String> {
    let mut sessions = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let email = seed::email(i as u64 % users);
                tokio::spawn(async move {
                    let body = json!({ "email": email, "password": seed::PASSWORD }).to_string();
                    let request = client::request(Method::POST, "/api/login", None, Some(body));
                    match client::once(addr, request).await {
                        Outcome::Reply { status, body, .. } if status == StatusCode::OK => {
                            let field = |name| client::token_field(&body, name);
                            match (
                                field("id_token"),
                                field("access_token"),
                                field("refresh_token"),
                            ) {
                                (Some(id_token), Some(access_token), Some(refresh_token)) => {
                                    Ok(Session {
                                        id_token,
                                        access_token,
                                        refresh_token,
                                    })
                                }
                                _ => Err("login answered without tokens".to_string()),
                            }
                        }
                        Outcome::Reply { status, body, .. } => Err(format!(
                            "login of {email}: {status} {}",
                            String::from_utf8_lossy(&body)
                        )),
                        Outcome::Timeout => Err(format!("login of {email} timed out")),
                        Outcome::Failed(reason) => Err(format!("login of {email}: {reason}")),
                    }
                })
            })
            .collect();
        for handle in handles {
            sessions.push(handle.await.map_err(|e| e.to_string())??);
        }
    }
    Ok(sessions)
}

fn progress(message: &str) {
    eprintln!("[load] {message}");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib as f64 / 1_048_576.0),
        )
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash} (+ uncommitted changes)")
            } else {
                hash
            }
        }
        None => "unknown".into(),
    }
}

/// The highest login rate possible, as a share of the raw argon2id rate `hashes` (per second, all
/// cores), when a sign-in costs one hash and the token set's signatures at `signatures` per
/// second (all cores) and nothing else: core time per sign-in is `1/hashes + n/signatures`,
/// with `n` the signatures of one token set.
fn login_ceiling(hashes: f64, signatures: f64) -> f64 {
    let per_sign_in = f64::from(raw::SIGNATURES_PER_TOKEN_SET);
    signatures / (signatures + per_sign_in * hashes)
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

fn print_report(
    options: &Options,
    settings: &Settings,
    cores: usize,
    results: &Results,
    load_before: String,
    total: Duration,
) {
    let a = &settings.argon2;
    println!();
    println!("## authpool load benchmark");
    println!();
    println!(
        "Machine: {} × {cores} cores, {} RAM; load average before {load_before}, after {}.",
        cpu_model(),
        memory_total(),
        load_average()
    );
    println!(
        "Commit {}; release build; {} with {} users; argon2id m={} KiB t={} p={}, {} hashing slots + {} queued; \
         {:.0} s per step; client timeout {} s.",
        commit(),
        if options.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        options.users,
        a.memory_kib,
        a.iterations,
        a.parallelism,
        a.concurrency,
        a.queue,
        options.duration.as_secs_f64(),
        client::REQUEST_TIMEOUT.as_secs()
    );
    println!();
    println!("{}", report::rows_table(&results.rows));
    println!();
    if !results.floods.is_empty() {
        println!("{}", report::flood_table(&results.floods));
        println!();
    }

    let idle = mib(results.idle.rss_kib);
    println!(
        "- Idle RSS after start-up: {} (target ≤ 30 MB) {}",
        idle.map_or("?".into(), |m| format!("{m:.1} MB")),
        mark(idle.map(|m| m <= 30.0))
    );
    let mut startups = results.startups.clone();
    startups.sort();
    if let Some(median) = startups.get(startups.len() / 2) {
        let median_ms = median.as_secs_f64() * 1000.0;
        println!(
            "- Start-up to ready on the existing database: {median_ms:.0} ms median of {} ({}) (target ≤ 300 ms) {}",
            startups.len(),
            startups
                .iter()
                .map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>()
                .join(", "),
            mark(Some(median_ms <= 300.0))
        );
    }
    println!(
        "- Raw argon2id (the argon2 crate, same parameters, one verification = one hash, 19 MiB \
         kept per thread): {:.1} hashes/s on {cores} cores, {:.1} on one core; with a fresh \
         allocation per call instead: {:.1}/s on {cores} cores",
        results.argon2_all_cores, results.argon2_one_core, results.argon2_all_cores_per_call
    );
    for (c, limit) in &results.login_limits {
        println!(
            "- Login at {c} judged against the raw argon2id rate measured in {SLICES} slices \
             between its own: {:.1} hashes/s on {cores} cores (slices {:.1}–{:.1})",
            limit.rate, limit.slowest, limit.fastest
        );
    }
    println!(
        "- Raw RS256 with authpool's kept aws-lc-rs key pair: {:.0} signatures/s on {cores} cores \
         → refresh limit {:.0}/s ({} signatures per refresh)",
        results.signatures,
        results.signatures / f64::from(raw::SIGNATURES_PER_TOKEN_SET),
        raw::SIGNATURES_PER_TOKEN_SET
    );
    if !results.login_limits.is_empty() && results.signatures > 0.0 {
        let ceilings: Vec<String> = results
            .login_limits
            .iter()
            .map(|(c, limit)| {
                format!(
                    "{:.1} % at {c}",
                    100.0 * login_ceiling(limit.rate, results.signatures)
                )
            })
            .collect();
        println!(
            "- Login ceiling: a sign-in is one hash and {} RS256 signatures, so even if nothing \
             else cost anything, logins could reach at most {} of the raw argon2id rate",
            raw::SIGNATURES_PER_TOKEN_SET,
            ceilings.join(", ")
        );
    }
    println!(
        "- Raw RS256 verification (jsonwebtoken, authpool's validation): {:.0}/s on {cores} cores",
        results.verifications
    );
    if !results.bare.is_empty() {
        let bare: Vec<String> = results
            .bare
            .iter()
            .map(|(c, s)| {
                format!(
                    "c={c}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
                    s.ok_per_s(),
                    s.ok_ms(50.0).unwrap_or(0.0),
                    s.ok_ms(99.0).unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "- Bare poem endpoint verifying the same token (in the bench process): {}",
            bare.join("; ")
        );
    }
    if let Some(seeded) = &results.seeded {
        println!(
            "- Seeding: {} users in {:.1} s (one shared argon2id hash, {:.0} ms)",
            options.users,
            seeded.insert_time.as_secs_f64(),
            seeded.hash_time.as_secs_f64() * 1000.0
        );
    }
    if !results.peak_reset_ok {
        println!(
            "- Note: /proc/PID/clear_refs was not writable: peak RSS is the process's lifetime peak"
        );
    }
    for row in results.rows.iter().filter(|r| r.errors + r.timeouts > 0) {
        // A 503 records no error text; a row whose only errors are 503s says so.
        let first = match (&row.first_error, row.timeouts) {
            (Some(error), _) => error.as_str(),
            (None, 0) => "503 with Retry-After only (hashing queue)",
            (None, _) => "timeout",
        };
        println!(
            "- {} at {}: first error: {first}",
            row.workload, row.concurrency
        );
    }
    println!(
        "- Throughput targets against all-core raw rates are judged at concurrency ≥ cores; the \
         login flood's clients back off as Retry-After says in the mixed workload, and retry \
         at once, ignoring it, in the flood alone."
    );
    println!("- Whole run: {:.0} s.", total.as_secs_f64());
}

/// The scale check: the login and GET latencies of this run's server against those of the
/// baseline server on [`BASELINE_USERS`] users, measured in the slices between its own.
fn print_scale(options: &Options, results: &Results) {
    if results.baseline.is_empty() {
        return;
    }
    println!();
    println!(
        "Scale: {} users against {BASELINE_USERS} on a second server, driven in alternating \
         slices of the same steps (target: login and auth GET latency within 20 %)",
        options.users
    );
    for (workload, concurrency, base) in &results.baseline {
        let Some(row) = results
            .rows
            .iter()
            .find(|r| r.workload == *workload && r.concurrency == *concurrency)
        else {
            continue;
        };
        let compare = |now: Option<f64>, then: Option<f64>| match (now, then) {
            (Some(now), Some(then)) if then > 0.0 => Some(now / then),
            _ => None,
        };
        let p50 = compare(row.p50_ms, base.ok_ms(50.0));
        let p99 = compare(row.p99_ms, base.ok_ms(99.0));
        let met = match (p50, p99) {
            (Some(a), Some(b)) => Some(a <= 1.2 && b <= 1.2),
            _ => None,
        };
        let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2} ms"));
        let pct = |r: Option<f64>| r.map_or("?".into(), |r| format!("{:+.0} %", (r - 1.0) * 100.0));
        println!(
            "- {workload} at {concurrency}: p50 {} → {} ({}), p99 {} → {} ({}) {}",
            ms(base.ok_ms(50.0)),
            ms(row.p50_ms),
            pct(p50),
            ms(base.ok_ms(99.0)),
            ms(row.p99_ms),
            pct(p99),
            mark(met)
        );
    }
}
