//! Bad input: every malformed request is a 4xx problem body, never a 5xx, and loses nothing.

use serde_json::{Value, json};

use testkit::gateway::{TestApp, booking_body, spawn_app};

/// Asserts an RFC 9457 problem body with `status` and returns it.
async fn problem(response: reqwest::Response, status: u16, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{context}"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    for member in ["type", "title", "detail", "instance", "code"] {
        assert!(body[member].is_string(), "{context}: {member} in {body}");
    }
    assert_eq!(body["status"], status, "{context}");
    // For clients that show `message`: the detail, or each bad field's message.
    match &body["message"] {
        Value::String(message) => assert_eq!(message, &body["detail"], "{context}"),
        Value::Array(messages) => {
            assert_eq!(body["code"], "ValidationFailed", "{context}");
            assert_eq!(
                messages.len(),
                body["errors"].as_array().map_or(0, Vec::len),
                "{context}"
            );
        }
        other => panic!("{context}: message {other} in {body}"),
    }
    assert_eq!(body["statusCode"], status, "{context}");
    assert_eq!(body["error"], body["title"], "{context}");
    body
}

async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/api/bookings"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_of_malformed_bookings_gets_only_4xx_problems() {
    let app = spawn_app().await;
    let (concert, tiers) = app.create_concert(&[(10.0, 5)]).await;
    let valid = booking_body(&tiers[0], 1, "a@b.co", "k");

    let mut corpus: Vec<(String, Vec<u8>)> = [
        "",
        "{",
        "}",
        "[]",
        "null",
        "true",
        "\"text\"",
        "123",
        "{}",
        "{\"ticketTierId\":",
        "[1,2,",
        "{\"a\":1,}",
        "{'single':'quotes'}",
        "\u{feff}{}",
        "{\"quantity\":1e999}",
    ]
    .iter()
    .map(|text| (format!("raw {text:?}"), text.as_bytes().to_vec()))
    .collect();
    corpus.push((
        "invalid utf-8".into(),
        vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
    ));
    corpus.push((
        "deep nesting".into(),
        [vec![b'['; 30_000], vec![b']'; 30_000]].concat(),
    ));
    let tier = tiers[0].id;
    for (case, body) in [
        (
            "a price read as a float",
            format!(
                r#"{{"ticketTierId":"{tier}","userEmail":"a@b.co","quantity":1,"totalPrice":9.999999999999999999,"idempotencyKey":"k"}}"#
            ),
        ),
        (
            "a price a hair over",
            format!(
                r#"{{"ticketTierId":"{tier}","userEmail":"a@b.co","quantity":1,"totalPrice":10.000000000000000001,"idempotencyKey":"k"}}"#
            ),
        ),
        (
            "a field given twice",
            format!(
                r#"{{"ticketTierId":"{tier}","userEmail":"a@b.co","quantity":2,"quantity":1,"totalPrice":10,"idempotencyKey":"k"}}"#
            ),
        ),
        (
            "an array for an object",
            format!(r#"["{tier}","a@b.co",1,10,"USD","k"]"#),
        ),
    ] {
        corpus.push((case.into(), body.into_bytes()));
    }

    let wrong_values: [(&str, Vec<Value>); 6] = [
        (
            "ticketTierId",
            vec![
                json!(null),
                json!(123),
                json!(""),
                json!("not-a-uuid"),
                json!([]),
                json!({}),
            ],
        ),
        (
            "userEmail",
            vec![
                json!(""),
                json!("x"),
                json!("a@"),
                json!("@b.co"),
                json!(5),
                json!(format!("{}@b.co", "a".repeat(300))),
                json!("a\u{0}@b.co"),
            ],
        ),
        (
            "quantity",
            vec![
                json!(0),
                json!(11),
                json!(-1),
                json!(1.5),
                json!("2"),
                json!(null),
                json!(1e300),
                json!(u64::MAX),
                json!(true),
            ],
        ),
        (
            "totalPrice",
            vec![
                json!(-10),
                json!("abc"),
                json!(10.001),
                json!("1e1"),
                json!(true),
                json!({}),
                json!("NaN"),
                json!(""),
                json!(1e300),
            ],
        ),
        (
            "currency",
            vec![json!("EUR"), json!(5), json!(""), json!("usd")],
        ),
        (
            "idempotencyKey",
            vec![
                json!(""),
                json!("has space"),
                json!("clé"),
                json!("k".repeat(300)),
                json!(5),
                json!(null),
            ],
        ),
    ];
    for (field, values) in &wrong_values {
        for value in values {
            let mut body = valid.clone();
            body[*field] = value.clone();
            corpus.push((
                format!("{field} = {value}"),
                serde_json::to_vec(&body).expect("json"),
            ));
        }
        let mut missing = valid.clone();
        missing.as_object_mut().expect("object").remove(*field);
        if *field != "currency" {
            corpus.push((
                format!("{field} missing"),
                serde_json::to_vec(&missing).expect("json"),
            ));
        }
    }

    for (name, body) in corpus {
        let response = post_raw(&app, "application/json", body).await;
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{name}: {status}");
        let problem = problem(response, status, &name).await;
        assert!(
            ["MalformedJson", "ValidationFailed"]
                .contains(&problem["code"].as_str().unwrap_or_default()),
            "{name}: {problem}"
        );
    }
    assert_eq!(
        app.redis_stock(concert, tiers[0].id).await,
        Some(5),
        "nothing was booked"
    );
    assert_eq!(
        app.book(&valid).await.status(),
        202,
        "the valid body still books"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_field_is_listed_in_one_answer() {
    let app = spawn_app().await;
    let body = json!({
        "ticketTierId": "x", "userEmail": "y", "quantity": 0, "totalPrice": "z", "currency": "EUR", "idempotencyKey": ""
    });
    let response = app.book(&body).await;
    let problem = problem(response, 400, "all wrong").await;
    assert_eq!(problem["code"], "ValidationFailed");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "ticketTierId",
            "userEmail",
            "quantity",
            "totalPrice",
            "currency",
            "idempotencyKey"
        ]
    );
    for error in problem["errors"].as_array().expect("errors") {
        assert!(
            error["message"].is_string() && error["code"].is_string(),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_media_types_and_huge_bodies_are_refused() {
    let app = spawn_app().await;
    let (_, tiers) = app.create_concert(&[(10.0, 5)]).await;
    let valid = serde_json::to_vec(&booking_body(&tiers[0], 1, "a@b.co", "k")).expect("json");

    problem(
        post_raw(&app, "text/plain", valid.clone()).await,
        415,
        "text/plain",
    )
    .await;
    problem(
        post_raw(&app, "application/x-www-form-urlencoded", valid.clone()).await,
        415,
        "form",
    )
    .await;
    let no_type = app
        .client
        .post(app.url("/api/bookings"))
        .body(valid.clone())
        .send()
        .await
        .expect("sent");
    problem(no_type, 415, "no content type").await;

    // The gateway answers an oversized body without reading it and closes the connection, so a
    // client still writing may see its pipe break first: these exchanges write, then read.
    let declared = raw_exchange(
        &app,
        "Content-Type: application/json\r\nContent-Length: 2097152\r\n",
        b"",
    )
    .await;
    assert_oversized(&declared, "2 MiB declared in Content-Length");

    let chunk = " ".repeat(70 * 1024);
    let chunked = format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let streamed = raw_exchange(
        &app,
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        chunked.as_bytes(),
    )
    .await;
    assert_oversized(&streamed, "70 KiB streamed without Content-Length");

    let with_charset = post_raw(&app, "application/json; charset=utf-8", valid).await;
    assert_eq!(with_charset.status(), 202);
}

/// Sends one request on a fresh connection and returns the raw answer, read to its end.
async fn raw_exchange(app: &TestApp, headers: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    let head = format!(
        "POST /api/bookings HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("head written");
    stream.write_all(body).await.expect("body written");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_oversized(answer: &str, context: &str) {
    assert!(answer.starts_with("HTTP/1.1 413"), "{context}: {answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{context}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let problem: Value = serde_json::from_str(body).expect("problem body");
    assert_eq!(problem["code"], "PayloadTooLarge", "{context}");
    assert_eq!(problem["status"], 413, "{context}");
}
