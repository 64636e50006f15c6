//! The audit log against a real Postgres: appends chain in commit order whoever appends at once,
//! an entry lives or dies with its transaction, Postgres refuses to change or remove one, and a
//! row changed or removed behind the triggers' back breaks the chain where it was.

use serde_json::json;
use sqlx::PgPool;
use testkit::ScratchDatabase;

use pg_store::audit::{self, Actor, Chain, Change};

async fn migrated() -> (ScratchDatabase, PgPool) {
    let scratch = ScratchDatabase::create("audit").await;
    let db = pg_store::connect(&scratch.url, 30).await.expect("migrated");
    (scratch, db)
}

async fn record(db: &PgPool, target: String) {
    let mut tx = db.begin().await.expect("began");
    audit::append(
        &mut tx,
        Change {
            actor: &Actor::admin_token(),
            action: "concert.created",
            target,
            details: json!({"price": "12.50", "tiers": [1, 2]}),
        },
    )
    .await
    .expect("appended");
    tx.commit().await.expect("committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_appended_at_once_make_one_intact_chain() {
    let (_scratch, db) = migrated().await;
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Intact { entries: 0 }
    );
    let appends = (0..24).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { record(&db, format!("concert:{n}")).await })
    });
    for append in futures::future::join_all(appends).await {
        append.expect("appended");
    }
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Intact { entries: 24 }
    );
    let newest = audit::page(&db, None, 10).await.expect("a page");
    assert_eq!(newest.len(), 10);
    let older = audit::page(&db, newest.last().map(|e| e.seq), 100)
        .await
        .expect("the next page");
    assert_eq!(older.len(), 14);
    let seqs: Vec<i64> = newest.iter().chain(&older).map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] > pair[1]), "{seqs:?}");
    assert_eq!(older.last().map(|e| e.prev_hash.clone()), Some(vec![0; 32]));
}

#[tokio::test]
async fn an_entry_is_rolled_back_with_its_change() {
    let (_scratch, db) = migrated().await;
    let mut tx = db.begin().await.expect("began");
    audit::append(
        &mut tx,
        Change {
            actor: &Actor::system("test"),
            action: "concert.created",
            target: "concert:never".to_owned(),
            details: json!({}),
        },
    )
    .await
    .expect("appended");
    tx.rollback().await.expect("rolled back");
    record(&db, "concert:kept".to_owned()).await;
    let entries = audit::page(&db, None, 10).await.expect("a page");
    assert_eq!(
        entries
            .iter()
            .map(|e| e.target.as_str())
            .collect::<Vec<_>>(),
        ["concert:kept"]
    );
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Intact { entries: 1 }
    );
}

#[tokio::test]
async fn postgres_refuses_to_change_or_remove_an_entry() {
    let (_scratch, db) = migrated().await;
    record(&db, "concert:a".to_owned()).await;
    for statement in [
        "UPDATE audit_log SET target = 'concert:b'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let refused = sqlx::query(statement).execute(&db).await;
        let message = refused
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(message.contains("append-only"), "{statement}: {message:?}");
    }
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Intact { entries: 1 }
    );
}

#[tokio::test]
async fn a_row_changed_or_removed_behind_the_triggers_breaks_the_chain_there() {
    let (_scratch, db) = migrated().await;
    for n in 0..5 {
        record(&db, format!("concert:{n}")).await;
    }
    let seqs: Vec<i64> = audit::page(&db, None, 10)
        .await
        .expect("a page")
        .iter()
        .rev()
        .map(|e| e.seq)
        .collect();
    // A superuser can bypass the triggers: that is what the chain is for.
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&db)
        .await
        .expect("triggers off");
    sqlx::query(
        "UPDATE audit_log SET details = '{\"price\": \"1.00\", \"tiers\": [1, 2]}' WHERE seq = $1",
    )
    .bind(seqs[3])
    .execute(&db)
    .await
    .expect("tampered");
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Broken {
            seq: seqs[3],
            reason: "its hash does not match its content"
        }
    );
    sqlx::query("DELETE FROM audit_log WHERE seq = $1")
        .bind(seqs[1])
        .execute(&db)
        .await
        .expect("removed");
    assert_eq!(
        audit::verify(&db).await.expect("verified"),
        Chain::Broken {
            seq: seqs[2],
            reason: "its previous hash is not the hash of the entry before it"
        }
    );
}
