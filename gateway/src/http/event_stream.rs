//! Connections whose first request opens an event stream, served without hyper.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for every HTTP/1 connection for as
//! long as it is open: most of what an idle event stream costs, and tens of thousands of streams
//! stay open through an on-sale. A connection whose first bytes are `GET` of one of the three
//! stream routes is served here instead: its request head is read into a buffer dropped once it
//! is parsed, the request goes through the same routes (rate limits, stream capacity, metrics,
//! request id, handlers) as any other, and the answer is written straight to the socket, the
//! stream chunk by chunk, each chunk in one write. The connection closes when the answer ends.
//! Everything else (other routes, HTTP/2, a stream asked for on a connection that served other
//! requests first) goes to hyper.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::connection::{Activity, Watched};
use crate::http::response::Body;

/// Bytes looked at to tell a stream's request from others: the longest stream request line,
/// `GET /api/bookings/<36-character id>/events HTTP/1.1`, is 63.
const PEEK_BYTES: usize = 128;
/// The largest request head read; hyper's own limit is of the same order.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most header lines a request head may have.
const MAX_HEADERS: usize = 64;

/// Whether a `GET` of a path opens an event stream.
pub type IsStream = fn(&str) -> bool;

/// Whether a connection starting with `start` asks first for an event stream.
pub fn opens_event_stream(start: &[u8], is_stream: IsStream) -> bool {
    let Some(rest) = start.strip_prefix(b"GET ") else {
        return false;
    };
    let Some(target) = rest
        .iter()
        .position(|byte| *byte == b' ')
        .and_then(|end| std::str::from_utf8(&rest[..end]).ok())
    else {
        return false;
    };
    is_stream(target.split('?').next().unwrap_or_default())
}

/// Waits for the connection's first bytes and tells whether they ask for an event stream,
/// without taking them from the socket.
pub async fn first_request_is_a_stream(
    socket: &TcpStream,
    is_stream: IsStream,
) -> std::io::Result<bool> {
    let mut start = [0u8; PEEK_BYTES];
    let peeked = socket.peek(&mut start).await?;
    Ok(opens_event_stream(&start[..peeked], is_stream))
}

/// What reading a request head came to.
enum Head {
    Request(Box<Request<Empty<Bytes>>>),
    /// The client closed the connection first.
    Closed,
    /// Answered with this status and no body, as hyper answers a head it cannot read.
    Refused(StatusCode),
}

/// Reads and parses one request head; whatever follows it is not read.
async fn read_head(io: &mut Watched<TcpStream>) -> std::io::Result<Head> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if buffer.len() >= MAX_HEAD_BYTES {
            return Ok(Head::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        }
        if io.read_buf(&mut buffer).await? == 0 {
            return Ok(Head::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        match head.parse(&buffer) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(_)) => {
                return Ok(to_request(&head)
                    .map(Box::new)
                    .map_or(Head::Refused(StatusCode::BAD_REQUEST), Head::Request));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Ok(Head::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
            }
            Err(_) => return Ok(Head::Refused(StatusCode::BAD_REQUEST)),
        }
    }
}

/// The parsed head as the routes take it; `None` where a part is not valid HTTP.
fn to_request(head: &httparse::Request<'_, '_>) -> Option<Request<Empty<Bytes>>> {
    let mut request = Request::builder()
        .method(Method::from_bytes(head.method?.as_bytes()).ok()?)
        .uri(head.path?)
        .version(if head.version? == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for header in head.headers.iter() {
        request = request.header(
            HeaderName::from_bytes(header.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(header.value).ok()?,
        );
    }
    request.body(Empty::new()).ok()
}

/// How a response's body is delimited on a connection that closes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Its length is known and sent ahead.
    Length(u64),
    /// HTTP/1.1 chunks: a stream.
    Chunked,
    /// Until the connection closes: a stream to an HTTP/1.0 client, which knows no chunks.
    UntilClose,
}

impl Framing {
    fn of(response: &Response<Body>, version: Version) -> Self {
        match response.body().size_hint().exact() {
            Some(length) => Self::Length(length),
            None if version == Version::HTTP_10 => Self::UntilClose,
            None => Self::Chunked,
        }
    }
}

/// The status line and headers of `response`, framed as `framing` says.
fn response_head(response: &Response<Body>, framing: Framing) -> Vec<u8> {
    let status = response.status();
    let mut head = Vec::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default()
    );
    for (name, value) in response.headers() {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(length) => {
            let _ = write!(head, "content-length: {length}\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::UntilClose => {}
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// One chunk of a chunked body, ready for one write.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(data.len() + 12);
    let _ = write!(chunk, "{:x}\r\n", data.len());
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    chunk
}

/// Writes `response`, its body as it comes, until the body ends or the client goes away.
async fn write_response(
    io: &mut Watched<TcpStream>,
    response: Response<Body>,
    version: Version,
) -> std::io::Result<()> {
    let framing = Framing::of(&response, version);
    io.write_all(&response_head(&response, framing)).await?;
    let mut body = response.into_body();
    let mut scratch = [0u8; 64];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // The client sends nothing more on this connection: a read ending means it is gone.
            read = io.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        let Some(Ok(frame)) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if framing == Framing::Chunked {
            io.write_all(&chunk(&data)).await?;
        } else {
            io.write_all(&data).await?;
        }
    }
    if framing == Framing::Chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    io.shutdown().await
}

/// Serves the one request of a connection [`first_request_is_a_stream`] chose, with what
/// `answer` makes of it.
pub async fn serve<Answer, Answered>(
    answer: Answer,
    mut io: Watched<TcpStream>,
    activity: Arc<Activity>,
) -> std::io::Result<()>
where
    Answer: FnOnce(Request<Empty<Bytes>>) -> Answered,
    Answered: Future<Output = Response<Body>>,
{
    let request = match read_head(&mut io).await? {
        Head::Request(request) => *request,
        Head::Closed => return Ok(()),
        Head::Refused(status) => {
            let head = format!(
                "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                status.as_str(),
                status.canonical_reason().unwrap_or_default()
            );
            io.write_all(head.as_bytes()).await?;
            return io.shutdown().await;
        }
    };
    let _in_flight = activity.request();
    let version = request.version();
    // Boxed: the answer's future is large, and an open stream need not keep room for it.
    let response = Box::pin(answer(request)).await;
    write_response(&mut io, response, version).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_get_of_a_stream_route_is_taken() {
        let is_stream: IsStream =
            |path| path == "/api/concerts/stream" || path.ends_with("/events");
        let id = "0193a5f2-7c1e-7a11-8000-000000000001";
        for start in [
            "GET /api/concerts/stream HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
            "GET /api/concerts/stream?x=1 HTTP/1.1\r\n".to_owned(),
            format!("GET /api/bookings/{id}/events HTTP/1.1\r\n"),
            format!("GET /api/queue/{id}/events HTTP/1.1\r\n"),
        ] {
            assert!(opens_event_stream(start.as_bytes(), is_stream), "{start:?}");
        }
        for start in [
            "GET /api/concerts HTTP/1.1\r\n".to_owned(),
            "POST /api/concerts/stream HTTP/1.1\r\n".to_owned(),
            "HEAD /api/concerts/stream HTTP/1.1\r\n".to_owned(),
            format!("GET /api/bookings/{id} HTTP/1.1\r\n"),
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            // The request line is not all there yet: hyper reads the rest.
            "GET /api/concerts/str".to_owned(),
            String::new(),
        ] {
            assert!(
                !opens_event_stream(start.as_bytes(), is_stream),
                "{start:?}"
            );
        }
    }

    #[test]
    fn a_parsed_head_keeps_its_target_and_headers() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        let bytes = b"GET /api/concerts/stream?a=b HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n";
        assert!(matches!(
            head.parse(bytes),
            Ok(httparse::Status::Complete(_))
        ));
        let request = to_request(&head).expect("a valid head");
        assert_eq!(request.uri().path(), "/api/concerts/stream");
        assert_eq!(request.uri().query(), Some("a=b"));
        assert_eq!(request.headers()[api_types::headers::LAST_EVENT_ID], "7");
    }

    #[test]
    fn a_chunk_is_its_length_in_hex_then_the_data() {
        assert_eq!(chunk(b"event: a\n\n"), b"a\r\nevent: a\n\n\r\n");
    }
}
