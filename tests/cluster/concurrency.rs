//! Races on one server, requests all in flight together: one account per email, one exchange
//! per refresh token, and attempt limits that parallel guesses cannot overshoot. On the
//! database `TestDb` gives: SQLite, or PostgreSQL with `AUTHPOOL_TEST_DATABASE_URL`.

use std::time::Instant;

use entity::{code, login_failure, mail_outbox, refresh_token, session, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{
    db::TestDb,
    harness::{
        Answer, Cluster, PASSWORD, all_at_once, claims, count, error, field, recipient, wrong_code,
    },
};

async fn one_server(extra: &[(&str, &str)]) -> Cluster {
    Cluster::start(TestDb::new().await, 1, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn fifty_parallel_sign_ups_with_one_email_make_one_account() {
    let mut cluster = one_server(&[]).await;
    let api = cluster[0].api().clone();
    let answers = all_at_once(50, |i| {
        let api = api.clone();
        // One address in three spellings: an email is one account whatever its case.
        let email = ["ada@example.org", "Ada@Example.org", "ADA@EXAMPLE.ORG"][i % 3];
        async move { api.register(email).await }
    })
    .await;
    assert_eq!(
        answers.iter().filter(|a| a.status == 201).count(),
        1,
        "{answers:#?}"
    );
    assert_eq!(
        count(&answers, 400, "UsernameExistsException"),
        49,
        "{answers:#?}"
    );
    let users = user::Entity::find().all(cluster.db()).await.unwrap();
    assert_eq!(users.len(), 1);

    // One confirmation queued, by the one sign-up that committed, and delivered once.
    cluster.outbox_drained().await;
    let queued = mail_outbox::Entity::find().all(cluster.db()).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:#?}");
    cluster.stop().await;
    let mails = cluster.mails();
    assert_eq!(mails.len(), 1);
    assert!(recipient(&mails[0]).eq_ignore_ascii_case("ada@example.org"));
}

/// The sessions of a user, and the refresh tokens issued in them.
async fn sessions_of(
    cluster: &Cluster,
    email: &str,
) -> (Vec<session::Model>, Vec<refresh_token::Model>) {
    let uid = cluster.user(email).await.uid;
    let sessions = session::Entity::find()
        .filter(session::Column::Uid.eq(uid))
        .all(cluster.db())
        .await
        .unwrap();
    let ids: Vec<_> = sessions.iter().map(|s| s.id).collect();
    let tokens = refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.is_in(ids))
        .all(cluster.db())
        .await
        .unwrap();
    (sessions, tokens)
}

/// Presents one refresh token `n` times at once.
async fn refresh_at_once(cluster: &Cluster, refresh_token: &str, n: usize) -> Vec<Answer> {
    let api = cluster[0].api().clone();
    let token = refresh_token.to_string();
    all_at_once(n, |_| {
        let (api, token) = (api.clone(), token.clone());
        async move { api.refresh(&token).await }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn one_refresh_token_presented_twenty_times_at_once_is_exchanged_once() {
    let cluster = one_server(&[]).await;
    let email = "ada@example.org";
    cluster.confirmed_user(email, 0, 0).await;
    let signed_in = cluster[0].tokens(email).await;

    let answers = refresh_at_once(&cluster, field(&signed_in, "refresh_token"), 20).await;
    let winners: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:#?}");
    assert_eq!(
        count(&answers, 401, "NotAuthorizedException"),
        19,
        "{answers:#?}"
    );

    // One exchange: one refresh token issued beside the original, in the one session. The
    // others presented a token already exchanged, which with no grace (the default) is reuse
    // and ends the session, so even the winner's new tokens are refused.
    let (sessions, tokens) = sessions_of(&cluster, email).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(tokens.len(), 2, "{tokens:#?}");
    assert!(sessions[0].revoked_at.is_some(), "reuse ends the session");
    let won = winners[0].json();
    assert_eq!(
        cluster[0]
            .get_as("/api/account", field(&won, "access_token"))
            .await
            .error(),
        error(401, "NotAuthorizedException")
    );
    assert_eq!(
        cluster[0]
            .refresh(field(&won, "refresh_token"))
            .await
            .error(),
        error(401, "NotAuthorizedException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn with_a_reuse_grace_parallel_refreshes_all_continue_the_one_session() {
    let cluster = one_server(&[("AUTHPOOL_REFRESH_REUSE_GRACE_S", "30")]).await;
    let email = "ada@example.org";
    cluster.confirmed_user(email, 0, 0).await;
    let signed_in = cluster[0].tokens(email).await;
    let origin = claims(field(&signed_in, "access_token"))["origin_jti"].clone();

    // Racing tabs within the grace each get tokens...
    let answers = refresh_at_once(&cluster, field(&signed_in, "refresh_token"), 20).await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:#?}");
    let mut refresh_tokens = Vec::new();
    for answer in &answers {
        let tokens = answer.json();
        // ...of the same session: never a second live session from one token.
        assert_eq!(claims(field(&tokens, "access_token"))["origin_jti"], origin);
        assert_eq!(
            cluster[0]
                .get_as("/api/account", field(&tokens, "access_token"))
                .await
                .status,
            200
        );
        refresh_tokens.push(field(&tokens, "refresh_token").to_string());
    }
    refresh_tokens.sort();
    refresh_tokens.dedup();
    assert_eq!(refresh_tokens.len(), 20, "each exchange has its own token");

    let (sessions, tokens) = sessions_of(&cluster, email).await;
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert!(sessions[0].revoked_at.is_none(), "the session is live");
    assert_eq!(tokens.len(), 21, "the original and one per exchange");
}

/// Sends `n` different wrong codes at once through `attempt(code)`, and checks that exactly
/// five were judged (the code's attempts) and the rest found it dead.
async fn wrong_codes_at_once<F, Fut>(right: &str, n: usize, attempt: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    let answers = all_at_once(n, |i| {
        attempt(wrong_code(right, u32::try_from(i).unwrap() + 1))
    })
    .await;
    assert_eq!(
        count(&answers, 400, "CodeMismatchException"),
        5,
        "{answers:#?}"
    );
    assert_eq!(
        count(&answers, 400, "TooManyFailedAttemptsException"),
        n - 5,
        "{answers:#?}"
    );
}

/// The attempts counted on a user's code for a purpose.
async fn attempts(cluster: &Cluster, email: &str, purpose: &str) -> i32 {
    let uid = cluster.user(email).await.uid;
    code::Entity::find_by_id((uid, purpose.to_string()))
        .one(cluster.db())
        .await
        .unwrap()
        .expect("the code row")
        .attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn twenty_wrong_codes_at_once_use_five_attempts_and_kill_the_code() {
    let cluster = one_server(&[]).await;
    let api = cluster[0].api().clone();

    // A sign-up confirmation code.
    let email = "ada@example.org";
    assert_eq!(cluster[0].register(email).await.status, 201);
    let right = cluster.code(email, 1).await;
    wrong_codes_at_once(&right, 20, |code| {
        let api = api.clone();
        async move { api.confirm("ada@example.org", &code).await }
    })
    .await;
    assert_eq!(attempts(&cluster, email, "sign_up").await, 5);
    assert_eq!(
        cluster[0].confirm(email, &right).await.error(),
        error(400, "TooManyFailedAttemptsException")
    );
    assert!(cluster.user(email).await.confirmed_at.is_none());

    // A password-reset code.
    let email = "bob@example.org";
    let new_password = "purple monkey dishwasher lamp";
    cluster.confirmed_user(email, 0, 0).await;
    let requested = cluster[0]
        .post("/api/password/reset", json!({"email": email}))
        .await;
    assert_eq!(requested.status, 200);
    let right = cluster.code(email, 2).await;
    let reset = move |api: crate::harness::Api, code: String| async move {
        api.post(
            "/api/password/reset/confirm",
            json!({"email": "bob@example.org", "code": code,
                   "new_password1": new_password, "new_password2": new_password}),
        )
        .await
    };
    wrong_codes_at_once(&right, 20, |code| reset(api.clone(), code)).await;
    assert_eq!(attempts(&cluster, email, "reset_password").await, 5);
    assert_eq!(
        reset(api.clone(), right).await.error(),
        error(400, "TooManyFailedAttemptsException")
    );
    assert_eq!(cluster[0].login(email, PASSWORD).await.status, 200);
    assert_eq!(cluster[0].login(email, new_password).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "process-level: run by .ci/run"]
async fn thirty_wrong_passwords_at_once_get_no_more_answers_than_the_lockout_allows() {
    let cluster = one_server(&[]).await;
    let email = "ada@example.org";
    cluster.confirmed_user(email, 0, 0).await;
    let api = cluster[0].api().clone();

    let started = Instant::now();
    let answers = all_at_once(30, |_| {
        let api = api.clone();
        async move {
            api.login("ada@example.org", "not the password at all")
                .await
        }
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let judged = count(&answers, 401, "NotAuthorizedException");
    let refused = count(&answers, 429, "PasswordAttemptsExceededException");
    assert_eq!(judged + refused, answers.len(), "{answers:#?}");

    // Five failures are free; the fifth locks for 1 s, and each failure after a lock ends
    // doubles it (1 + 2 + 4 + ... s). So within `elapsed` seconds at most
    // 5 + log2(elapsed + 1) guesses can be judged; every other one must be refused unjudged,
    // however many arrive together.
    let allowed = 5 + (elapsed + 1.0).log2().floor() as usize;
    assert!(
        (5..=allowed).contains(&judged),
        "{judged} of 30 parallel guesses judged in {elapsed:.2} s (at most {allowed})"
    );
    let key = format!("uid:{}", cluster.user(email).await.uid);
    let counter = login_failure::Entity::find_by_id(key)
        .one(cluster.db())
        .await
        .unwrap()
        .expect("a failure counter");
    assert_eq!(
        usize::try_from(counter.count).unwrap(),
        judged,
        "each judged guess counted once, the refused ones not at all"
    );
}
