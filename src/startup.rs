//! Building the shared state and the app, and running the server until a signal stops it.
//! `build_state` and `build_app` are shared by `main` and the tests.

use std::{sync::Arc, time::Duration};

use poem::{EndpointExt, Response, Server, endpoint::BoxEndpoint, listener::TcpListener};
use sea_orm::{DatabaseConnection, DbErr};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    crypto::{
        keys::{KeyStore, TokenConfig},
        password::Hasher,
    },
    housekeeping,
    mail::Mailer,
    state::AppState,
    store::{self, database::SetupLock},
};

/// How often each process re-reads the signing keys, to follow rotations made elsewhere.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once a stop signal arrives.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why the server could not start. Each message is one line naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot use the database (AUTHPOOL_DATABASE_URL): {0}")]
    Database(DbErr),
    #[error("cannot listen on {addr} (AUTHPOOL_BIND): {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("mail (AUTHPOOL_MAIL_URL, AUTHPOOL_TEMPLATES_DIR): {0}")]
    Mail(#[from] crate::mail::MailSetupError),
    #[error("password hashing (AUTHPOOL_ARGON2_*): {0}")]
    Hasher(crate::crypto::password::HashError),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Connects to the database and brings its schema up to date.
pub async fn open_database(settings: &Settings) -> Result<DatabaseConnection, StartupError> {
    let (db, setup) = open_database_for_setup(settings).await?;
    setup.release().await.map_err(StartupError::Database)?;
    Ok(db)
}

/// [`open_database`], still holding the setup lock for more first-start work.
async fn open_database_for_setup(
    settings: &Settings,
) -> Result<(DatabaseConnection, SetupLock), StartupError> {
    let db = store::database::connect(settings.database_url.expose())
        .await
        .map_err(StartupError::Database)?;
    let setup = store::database::setup_lock(&db)
        .await
        .map_err(StartupError::Database)?;
    store::database::migrate(&db)
        .await
        .map_err(StartupError::Database)?;
    Ok((db, setup))
}

/// Everything request handlers share: database, client id, keys, mailer.
pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    // The client id and the first signing key are made under the setup lock too: replicas
    // starting together on an empty database must end up with one of each.
    let (db, setup) = open_database_for_setup(&settings).await?;
    let client_id =
        store::clients::ensure_client_id(&db, settings.client_id.as_deref(), generate_client_id)
            .await
            .map_err(StartupError::Database)?;
    let keys = KeyStore::load(
        &db,
        TokenConfig {
            issuer: settings.issuer(),
            client_id: client_id.clone(),
            publish_after_retire: settings.tokens.longest_ttl(),
        },
    )
    .await
    .map_err(StartupError::Database)?;
    setup.release().await.map_err(StartupError::Database)?;
    let mail = Mailer::new(&settings.mail)?;
    let hasher = Hasher::new(&settings.argon2).map_err(StartupError::Hasher)?;
    Ok(AppState {
        settings: Arc::new(settings),
        reads: store::reads::Reads::new(&db),
        db,
        client_id: client_id.into(),
        keys,
        mail,
        hasher,
        metrics: Arc::new(crate::metrics::Metrics::new()),
    })
}

/// The HTTP app for this state.
pub fn build_app(state: AppState) -> BoxEndpoint<'static, Response> {
    crate::api::routes(state).map_to_response().boxed()
}

/// Runs the server and its background work until SIGTERM or SIGINT, then lets in-flight
/// requests finish and returns.
pub async fn serve(settings: Settings) -> Result<(), StartupError> {
    let bind = settings.bind;
    let state = build_state(settings).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| StartupError::Bind { addr: bind, source })?;
    // poem binds by address; hand it the port we just proved free.
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    drop(listener);

    let stop = CancellationToken::new();
    let worker = tokio::spawn(
        state
            .mail
            .clone()
            .run_worker(state.db.clone(), stop.child_token()),
    );
    let reloader = tokio::spawn(reload_keys(state.clone(), stop.child_token()));
    let housekeeping = state.settings.housekeeping_interval.map(|interval| {
        tokio::spawn(housekeeping::run(
            state.clone(),
            interval,
            stop.child_token(),
        ))
    });

    tracing::info!(%addr, issuer = %state.settings.issuer(), "authpool listening");
    let app = build_app(state);
    release_startup_memory();
    let result = Server::new(TcpListener::bind(addr))
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(SHUTDOWN_GRACE))
        .await;
    stop.cancel();
    let _ = tokio::join!(worker, reloader);
    if let Some(housekeeping) = housekeeping {
        let _ = housekeeping.await;
    }
    tracing::info!("authpool stopped");
    result.map_err(StartupError::Serve)
}

/// Gives the allocator's free memory back to the system. Start-up (migrations, the OpenAPI
/// document the routes are built from, the first key load) allocates a few MB it frees again,
/// and glibc keeps freed heap pages mapped: trimming once here took idle RSS from ~30 MB to
/// ~23 MB (measured on the release build). Other allocators do not need it.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of glibc's own heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn reload_keys(state: AppState, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(KEY_RELOAD_INTERVAL) => {}
        }
        if let Err(err) = state.keys.reload(&state.db).await {
            tracing::warn!(error = %err, "could not reload signing keys");
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stop signal received; finishing in-flight requests");
}

/// A Cognito-style app client id: 26 lower-case letters and digits from the system CSPRNG.
/// The id is public (every token carries it), so the slight modulo bias is harmless.
fn generate_client_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 26];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
