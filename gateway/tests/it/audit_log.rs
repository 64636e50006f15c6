//! `GET /api/admin/audit-log`: each concert created or changed is an entry, by whom, newest
//! first, a page at a time; only the admin reads it.

use serde_json::{Value, json};

use testkit::gateway::{ADMIN_TOKEN, spawn_app};

#[tokio::test]
async fn concerts_created_and_changed_are_in_the_audit_log_page_by_page() {
    let app = spawn_app().await;
    let (first, _) = app.create_concert(&[(10.0, 5)]).await;
    let (second, tiers) = app.create_concert(&[(25.5, 7)]).await;
    let changed = app
        .client
        .patch(app.url(&format!("/api/admin/concerts/{second}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"waitingRoom": {"admitPerSecond": 40}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(changed.status(), 200);
    let read = |query: String| {
        let app = &app;
        async move {
            let answer = app
                .client
                .get(app.url(&format!("/api/admin/audit-log{query}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("answered");
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.expect("json")
        }
    };
    let newest = read("?limit=2".to_owned()).await;
    let entries = newest["entries"].as_array().expect("entries");
    let summary: Vec<(&str, String)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["target"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("concert.changed", format!("\"concert:{second}\"")),
            ("concert.created", format!("\"concert:{second}\"")),
        ]
    );
    assert_eq!(
        entries[0]["actor"],
        json!({"kind": "admin_token", "id": "bootstrap"})
    );
    assert_eq!(entries[0]["details"], json!({"admitPerSecond": 40}));
    assert_eq!(
        entries[1]["details"]["ticketTiers"][0]["id"],
        tiers[0].id.to_string()
    );
    assert_eq!(entries[1]["details"]["ticketTiers"][0]["price"], "25.50");
    assert_eq!(entries[0]["hash"].as_str().map(str::len), Some(64));
    let cursor = newest["nextCursor"].as_str().expect("a next page");
    let older = read(format!("?cursor={cursor}&limit=50")).await;
    let targets: Vec<&str> = older["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert!(
        targets.contains(&format!("concert:{first}").as_str()),
        "{older}"
    );
    assert!(older.get("nextCursor").is_none(), "{older}");

    let anonymous = app
        .client
        .get(app.url("/api/admin/audit-log"))
        .send()
        .await
        .expect("answered");
    assert_eq!(anonymous.status(), 401);
    let bad = app
        .client
        .get(app.url("/api/admin/audit-log?limit=0&cursor=-3"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400);
}
