//! Two replicas on one PostgreSQL behave as one server: sessions, lockout and code attempts,
//! signing keys and the mail outbox are shared through the database.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use entity::{code, login_failure, mail_outbox};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    db::TestDb,
    harness::{
        Answer, Cluster, DEADLINE, PASSWORD, all_at_once, claims, error, field, kid, recipient,
        wrong_code,
    },
};

/// Two replicas, A (`cluster[0]`) and B (`cluster[1]`), on a fresh PostgreSQL database.
async fn two_replicas() -> Cluster {
    Cluster::start(postgres_db().await, 2, &[]).await
}

/// A fresh PostgreSQL database.
async fn postgres_db() -> TestDb {
    let url = std::env::var("AUTHPOOL_TEST_DATABASE_URL").unwrap_or_default();
    assert!(
        url.starts_with("postgres"),
        "the scale-out tests run two replicas on one PostgreSQL: set \
         AUTHPOOL_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB (a user that may create \
         databases), as .ci/run does"
    );
    TestDb::new().await
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn replicas_started_together_on_an_empty_database_set_it_up_once() {
    // Without the setup lock, one of them failed creating a table the other had just created,
    // and each made a signing key of its own.
    let cluster = Cluster::start_together(postgres_db().await, 3).await;
    let keys = entity::signing_key::Entity::find()
        .all(cluster.db())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one signing key: {keys:?}");
    let first = jwks(&cluster, 0).await.body;
    for replica in 1..3 {
        assert_eq!(jwks(&cluster, replica).await.body, first);
    }
    let clients = entity::client::Entity::find()
        .all(cluster.db())
        .await
        .unwrap();
    assert_eq!(clients.len(), 1, "one client id: {clients:?}");
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn a_session_started_on_one_replica_is_refreshed_and_ended_on_the_other() {
    let cluster = two_replicas().await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let email = "ada@example.org";
    cluster.confirmed_user(email, 0, 1).await;

    let signed_in = a.tokens(email).await;
    assert_eq!(
        b.get_as("/api/account", field(&signed_in, "access_token"))
            .await
            .status,
        200
    );
    let refreshed = b.refresh(field(&signed_in, "refresh_token")).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let refreshed = refreshed.json();
    assert_eq!(
        claims(field(&refreshed, "access_token"))["origin_jti"],
        claims(field(&signed_in, "access_token"))["origin_jti"],
        "the refresh on B continues the session started on A"
    );
    assert_eq!(
        a.get_as("/api/account", field(&refreshed, "access_token"))
            .await
            .status,
        200
    );

    let signed_out = a
        .post_as(
            "/api/logout",
            field(&refreshed, "access_token"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(signed_out.status, 200, "{}", signed_out.body);
    // B refuses every token of the session at once: no cache to expire.
    for token in ["access_token", "id_token"] {
        let answer = b.get_as("/api/account", field(&refreshed, token)).await;
        assert_eq!(
            answer.error(),
            error(401, "NotAuthorizedException"),
            "{token} on B after sign-out on A: {}",
            answer.body
        );
    }
    let answer = b.refresh(field(&refreshed, "refresh_token")).await;
    assert_eq!(
        answer.error(),
        error(401, "NotAuthorizedException"),
        "{}",
        answer.body
    );
}

/// The account's sign-in failure counter.
async fn failure_counter(cluster: &Cluster, email: &str) -> login_failure::Model {
    let key = format!("uid:{}", cluster.user(email).await.uid);
    login_failure::Entity::find_by_id(key)
        .one(cluster.db())
        .await
        .unwrap()
        .expect("a failure counter")
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn failed_sign_ins_on_both_replicas_lock_the_account_on_both() {
    let cluster = two_replicas().await;
    let email = "ada@example.org";
    let wrong = "not the password at all";
    cluster.confirmed_user(email, 0, 1).await;

    // Five failures, in turn on A and B: four leave sign-in open, the fifth locks it.
    let mut last_counted_sent = Instant::now();
    for i in 0..5 {
        last_counted_sent = Instant::now();
        let answer = cluster[i % 2].login(email, wrong).await;
        assert_eq!(
            answer.error(),
            error(401, "NotAuthorizedException"),
            "failure #{} on replica {}: {}",
            i + 1,
            i % 2,
            answer.body
        );
    }
    let counter = failure_counter(&cluster, email).await;
    assert_eq!(counter.count, 5);
    assert!(counter.locked_until.is_some(), "{counter:?}");

    // The fifth failure locks for 1 s, and every failure after a lock doubles it. Wrong
    // passwords sent in turn to A and B are refused while a lock holds and counted after it:
    // each counted one comes no sooner than the lock before it allowed. Two more make 4 s.
    let mut failures = 5;
    let mut refused_by = [0; 2];
    let deadline = Instant::now() + DEADLINE;
    let mut turn = 0;
    while failures < 7 {
        let replica = turn % 2;
        turn += 1;
        let sent = Instant::now();
        let answer = cluster[replica].login(email, wrong).await;
        match answer.error() {
            e if e == error(429, "PasswordAttemptsExceededException") => refused_by[replica] += 1,
            e if e == error(401, "NotAuthorizedException") => {
                let lock = Duration::from_secs(1 << (failures - 5));
                assert!(
                    last_counted_sent.elapsed() >= lock,
                    "failure #{} counted {:?} after #{failures}, within its {lock:?} lock",
                    failures + 1,
                    last_counted_sent.elapsed()
                );
                failures += 1;
                last_counted_sent = sent;
            }
            other => panic!("unexpected answer {other:?}: {}", answer.body),
        }
        assert!(Instant::now() < deadline, "the locks never ended");
        // Polls the end of the lock; the attempts refused meanwhile are the point.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused_by.iter().all(|&n| n > 0),
        "both replicas refused sign-in during the locks: {refused_by:?}"
    );
    // Now locked for 4 s: the right password is refused on both replicas.
    for replica in 0..2 {
        let answer = cluster[replica].login(email, PASSWORD).await;
        assert_eq!(
            answer.error(),
            error(429, "PasswordAttemptsExceededException"),
            "the right password on replica {replica}: {}",
            answer.body
        );
    }
    assert_eq!(failure_counter(&cluster, email).await.count, 7);
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn wrong_codes_on_both_replicas_add_up_to_one_attempt_limit() {
    let cluster = two_replicas().await;
    let email = "ada@example.org";
    let registered = cluster[0].register(email).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let code = cluster.code(email, 1).await;

    // Five wrong codes in turn on A and B use up the code's five attempts; the sixth try,
    // on B, finds it dead.
    for i in 0..6 {
        let answer = cluster[i % 2]
            .confirm(email, &wrong_code(&code, u32::try_from(i).unwrap() + 1))
            .await;
        let expected = if i < 5 {
            "CodeMismatchException"
        } else {
            "TooManyFailedAttemptsException"
        };
        assert_eq!(
            answer.error(),
            error(400, expected),
            "wrong code #{} on replica {}",
            i + 1,
            i % 2
        );
    }
    // Dead on both, even for the right digits.
    for replica in 0..2 {
        let answer = cluster[replica].confirm(email, &code).await;
        assert_eq!(
            answer.error(),
            error(400, "TooManyFailedAttemptsException"),
            "the right code on replica {replica}"
        );
    }
    let user = cluster.user(email).await;
    assert!(user.confirmed_at.is_none());
    let row = code::Entity::find()
        .filter(code::Column::Uid.eq(user.uid))
        .one(cluster.db())
        .await
        .unwrap()
        .expect("the code row");
    assert_eq!(row.attempts, 5);
}

/// `/.well-known/jwks.json` of a replica, as served.
async fn jwks(cluster: &Cluster, replica: usize) -> Answer {
    let answer = cluster[replica].get("/.well-known/jwks.json").await;
    assert_eq!(answer.status, 200);
    answer
}

fn kids(jwks: &Answer) -> Vec<String> {
    jwks.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("a kid").to_string())
        .collect()
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn both_replicas_serve_one_jwks_and_follow_a_key_rotation() {
    let cluster = two_replicas().await;
    let email = "ada@example.org";
    cluster.confirmed_user(email, 0, 1).await;

    let (jwks_a, jwks_b) = (jwks(&cluster, 0).await, jwks(&cluster, 1).await);
    assert_eq!(jwks_a.body, jwks_b.body, "the same JWKS, byte for byte");
    let old_kid = match kids(&jwks_a).as_slice() {
        [kid] => kid.clone(),
        other => panic!("one key before any rotation: {other:?}"),
    };
    let before = cluster[0].tokens(email).await;
    assert_eq!(kid(field(&before, "access_token")), old_kid);

    // `authpool keys rotate` on the shared database, as an operator would run it beside the
    // servers: neither replica is told.
    let output = cluster.command(&["keys", "rotate"]);
    let new_kid = output
        .strip_prefix("new signing key ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("the new kid in {output:?}"))
        .to_string();
    assert_ne!(new_kid, old_kid);

    // The first replica to reload signs with the new key; the other accepts its tokens at
    // once, whether or not it has reloaded yet (an unknown kid makes it look).
    let deadline = Instant::now() + DEADLINE;
    let signer = loop {
        let mut switched = None;
        for replica in 0..2 {
            if kids(&jwks(&cluster, replica).await).contains(&new_kid) {
                switched = Some(replica);
                break;
            }
        }
        if let Some(replica) = switched {
            break replica;
        }
        assert!(
            Instant::now() < deadline,
            "no replica picked up the rotated key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let other = 1 - signer;
    let fresh = cluster[signer].tokens(email).await;
    assert_eq!(kid(field(&fresh, "access_token")), new_kid);
    let answer = cluster[other]
        .get_as("/api/account", field(&fresh, "access_token"))
        .await;
    assert_eq!(
        answer.status, 200,
        "a token signed with the rotated key by replica {signer}, on replica {other}: {}",
        answer.body
    );

    // Both end up serving the same JWKS again: the new key first, the old one still published
    // while tokens it signed are alive.
    loop {
        let (jwks_a, jwks_b) = (jwks(&cluster, 0).await, jwks(&cluster, 1).await);
        if jwks_a.body == jwks_b.body && kids(&jwks_a) == [new_kid.clone(), old_kid.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas' JWKS did not converge: {} / {}",
            jwks_a.body,
            jwks_b.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other replica signs with the new key too, and tokens from before the rotation still
    // work on both.
    let fresh = cluster[other].tokens(email).await;
    assert_eq!(kid(field(&fresh, "access_token")), new_kid);
    assert_eq!(
        cluster[signer]
            .get_as("/api/account", field(&fresh, "access_token"))
            .await
            .status,
        200
    );
    for replica in 0..2 {
        assert_eq!(
            cluster[replica]
                .get_as("/api/account", field(&before, "access_token"))
                .await
                .status,
            200,
            "a token signed before the rotation, on replica {replica}"
        );
    }
}

#[tokio::test]
#[ignore = "process-level: run by .ci/run"]
async fn both_delivery_workers_send_every_message_exactly_once() {
    let mut cluster = two_replicas().await;
    const WAVES: usize = 5;
    const WAVE: usize = 60;
    const USERS: usize = WAVES * WAVE;
    let apis = [cluster[0].api().clone(), cluster[1].api().clone()];
    // Waves of sign-ups in flight together, half on each replica: each queues its confirmation
    // in the outbox and wakes its own replica's worker, so both workers keep claiming from the
    // shared outbox while mail is queued on both sides.
    for wave in 0..WAVES {
        let answers = all_at_once(WAVE, |i| {
            let api = apis[i % 2].clone();
            let email = format!("user{}@example.org", wave * WAVE + i);
            async move { api.register(&email).await }
        })
        .await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.status, 201, "sign-up #{i}: {}", answer.body);
        }
    }

    // Every message arrives...
    cluster.wait_for_mails(USERS).await;
    // ...the outbox has nothing left to send...
    cluster.outbox_drained().await;
    let sent_by = [
        cluster[0].metric("authpool_mail_sent_total").await,
        cluster[1].metric("authpool_mail_sent_total").await,
    ];
    // ...and once both replicas have stopped (each finishes its send in progress), nothing
    // can still arrive: count what did.
    cluster.stop().await;
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for mail in cluster.mails() {
        *per_recipient.entry(recipient(&mail)).or_default() += 1;
    }
    let twice: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(per_recipient.len(), USERS, "{per_recipient:?}");
    for i in 0..USERS {
        let to = format!("user{i}@example.org");
        assert_eq!(per_recipient.get(&to), Some(&1), "{to}");
    }
    // Each replica counts its own sends: together exactly one per message, and both took part.
    assert_eq!(
        sent_by.iter().sum::<f64>(),
        USERS as f64,
        "sends counted by A and B: {sent_by:?}"
    );
    assert!(
        sent_by.iter().all(|&n| n > 0.0),
        "both workers delivered: {sent_by:?}"
    );
    let rows = mail_outbox::Entity::find().all(cluster.db()).await.unwrap();
    assert_eq!(rows.len(), USERS);
    assert!(
        rows.iter()
            .all(|r| r.sent_at.is_some() && r.claim_token.is_none()),
        "every row sent and released"
    );
}
