//! API keys against a real Postgres: a key revoked by many operators at once is revoked and
//! recorded once, and only live keys are read for authorizing.

use futures::future::join_all;
use testkit::ScratchDatabase;

use pg_store::api_keys::{self, NewKey, Revoked};
use pg_store::audit::{self, Actor, Chain};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_at_once_by_many_is_revoked_and_recorded_once() {
    let scratch = ScratchDatabase::create("api_keys").await;
    let db = pg_store::connect(&scratch.url, 30).await.expect("migrated");
    let admin = Actor::admin_token();
    let key = NewKey {
        name: "gate 1",
        role: "scanner",
        secret_hash: [7; 32],
    };
    let made = api_keys::create(&db, key, &admin).await.expect("made");
    let kept = NewKey {
        name: "gate 2",
        role: "scanner",
        secret_hash: [8; 32],
    };
    let other = api_keys::create(&db, kept, &admin).await.expect("made");

    let revokes = (0..16).map(|_| api_keys::revoke(&db, made.id, &admin));
    let outcomes: Vec<Revoked> = join_all(revokes)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("revoked"))
        .collect();
    let now = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Revoked::Now(_)))
        .count();
    assert_eq!(now, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|outcome| !matches!(outcome, Revoked::Unknown))
    );

    let live: Vec<_> = api_keys::live(&db)
        .await
        .expect("read")
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(live, [other.id]);
    let entries = audit::page(&db, None, 100).await.expect("read");
    let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(
        actions,
        ["api_key.revoked", "api_key.created", "api_key.created"]
    );
    assert_eq!(
        audit::verify(&db).await.expect("walked"),
        Chain::Intact { entries: 3 }
    );
    assert_eq!(
        api_keys::revoke(&db, uuid::Uuid::now_v7(), &admin)
            .await
            .expect("asked"),
        Revoked::Unknown
    );
}
