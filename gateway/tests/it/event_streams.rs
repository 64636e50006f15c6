//! Event streams on the lean path (a connection whose first request opens a stream, served
//! without hyper's per-connection buffers): the wire format, the same limits as any request,
//! freeing the stream's place when the client goes, shutdown, and hyper still serving a stream
//! asked for on a connection that carried other requests first.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use testkit::gateway::{TestApp, spawn_app, spawn_app_with, test_config};

/// A raw connection to the app, and what it has read so far.
struct Raw {
    socket: TcpStream,
    read: Vec<u8>,
}

impl Raw {
    async fn send(app: &TestApp, request: &str) -> Self {
        let address = app.address.trim_start_matches("http://");
        let mut socket = TcpStream::connect(address).await.expect("connected");
        socket
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        Self {
            socket,
            read: Vec::new(),
        }
    }

    /// Reads until what was read contains `marker` (within 10 s); false if the connection
    /// closed first.
    async fn read_until(&mut self, marker: &str) -> bool {
        let mut chunk = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(10), async {
            while !String::from_utf8_lossy(&self.read).contains(marker) {
                match self.socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => self.read.extend_from_slice(&chunk[..n]),
                }
            }
            true
        })
        .await
        .expect("read within 10 s")
    }

    /// Reads to the end of the connection (within 10 s).
    async fn read_to_end(&mut self) -> String {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.socket.read_to_end(&mut self.read),
        )
        .await
        .expect("closed within 10 s")
        .expect("readable");
        self.text()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.read).into_owned()
    }

    /// The response head read so far, header names in lower case.
    fn head(&self) -> String {
        let text = self.text();
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_chunked_carries_the_usual_headers_and_ends_cleanly_at_shutdown() {
    let app = spawn_app().await;
    app.create_concert(&[(10.0, 3)]).await;
    let mut stream = Raw::send(&app, &get("/api/concerts/stream")).await;
    assert!(stream.read_until("event: snapshot").await, "a snapshot");
    let head = stream.head();
    for line in [
        "http/1.1 200 ok",
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "transfer-encoding: chunked",
        "connection: close",
        "x-request-id: ",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    // The snapshot arrives as one chunk: its size in hex, then the frame.
    let body = stream.text();
    let body = body
        .split("\r\n\r\n")
        .skip(1)
        .collect::<Vec<_>>()
        .join("\r\n\r\n");
    let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
    let size = usize::from_str_radix(size, 16).expect("hex chunk size");
    assert!(rest.starts_with("event: snapshot\nid: "), "{rest:?}");
    assert!(rest.len() >= size, "the chunk is whole");

    let state = app.state.clone();
    app.stop().await;
    assert!(state.shutdown.is_cancelled());
    let all = stream.read_to_end().await;
    assert!(
        all.ends_with("\r\n0\r\n\r\n"),
        "the last chunk, then the close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_for_capacity_gets_a_whole_problem_and_a_closed_stream_frees_its_place() {
    let mut config = test_config();
    config.max_sse_clients = 1;
    let app = spawn_app_with(config).await;
    let mut first = Raw::send(&app, &get("/api/concerts/stream")).await;
    assert!(first.read_until("event: snapshot").await);

    let mut refused = Raw::send(&app, &get("/api/concerts/stream")).await;
    let answer = refused.read_to_end().await;
    let head = refused.head();
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("a content length")
        .parse()
        .expect("a number");
    assert_eq!(body.len(), length);
    let problem: serde_json::Value = serde_json::from_str(body).expect("a problem body");
    assert_eq!(problem["status"], 503);

    // The client goes away without a word: its place is free once the gateway notices.
    drop(first);
    let mut reopened = false;
    for _ in 0..50 {
        let mut next = Raw::send(&app, &get("/api/concerts/stream")).await;
        if next.read_until("event: snapshot").await {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "the closed stream's place was never freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_endless_stream_request_is_refused_like_any_other() {
    let mut config = test_config();
    config.connection_limits.header_timeout = Duration::from_millis(500);
    let app = spawn_app_with(config).await;

    let mut broken = Raw::send(
        &app,
        "GET /api/concerts/stream HTTP/1.1\r\nHost: test\r\nno colon here\r\n\r\n",
    )
    .await;
    broken.read_to_end().await;
    assert!(
        broken.head().starts_with("http/1.1 400"),
        "{}",
        broken.head()
    );

    let mut unfinished =
        Raw::send(&app, "GET /api/concerts/stream HTTP/1.1\r\nHost: test\r\n").await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        unfinished.read_to_end().await,
        "",
        "closed without an answer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed at the header timeout"
    );

    let mut unknown = Raw::send(&app, &get("/api/bookings/not-an-id/events")).await;
    unknown.read_to_end().await;
    assert!(
        unknown.head().starts_with("http/1.1 400"),
        "{}",
        unknown.head()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_stream_is_delimited_by_the_close() {
    let app = spawn_app().await;
    app.create_concert(&[(10.0, 3)]).await;
    let mut stream = Raw::send(&app, "GET /api/concerts/stream HTTP/1.0\r\n\r\n").await;
    assert!(stream.read_until("event: snapshot").await);
    let head = stream.head();
    assert!(!head.contains("transfer-encoding"), "{head}");
    let body = stream.text();
    assert!(
        body.split("\r\n\r\n")
            .nth(1)
            .is_some_and(|body| body.starts_with("event: snapshot")),
        "the frame itself, no chunk size: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_asked_for_after_other_requests_on_the_connection_is_served_by_hyper() {
    let app = spawn_app().await;
    app.create_concert(&[(10.0, 3)]).await;
    let mut connection = Raw::send(&app, &get("/api/concerts")).await;
    assert!(connection.read_until("\"concerts\"").await);
    connection
        .socket
        .write_all(get("/api/concerts/stream").as_bytes())
        .await
        .expect("second request sent");
    assert!(connection.read_until("event: snapshot").await);
    let text = connection.text();
    let second = text
        .split("HTTP/1.1 ")
        .nth(2)
        .expect("a second response")
        .to_ascii_lowercase();
    assert!(second.starts_with("200 ok"), "{second}");
    assert!(
        second.contains("content-type: text/event-stream"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_connection_that_has_said_nothing() {
    let mut config = test_config();
    config.connection_limits.header_timeout = Duration::from_secs(30);
    let app = spawn_app_with(config).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let _silent = TcpStream::connect(&address).await.expect("connected");
    // Accepted and waiting for its first byte before the gateway is told to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = app.state.clone();
    let started = tokio::time::Instant::now();
    app.stop().await;
    assert!(state.shutdown.is_cancelled());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
}
