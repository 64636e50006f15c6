//! The routes and what every request goes through on the way to one (request id and span, rate
//! limits, authorization, the body, the in-flight bound, metrics). The table in `table` is the
//! only place a route is written; its template (`/api/bookings/{id}`) names it in logs and
//! metrics, never the raw path.

mod table;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use api_types::headers::REQUEST_ID;
use bytes::Bytes;
use domain::roles::Role;
use http::header::ORIGIN;
use http::{Method, Request, Response};
use tracing::Instrument;

use crate::api::docs;
use crate::http::body::{Body, read_json};
use crate::http::cors;
use crate::http::error::{ApiError, Limit};
use crate::http::headers::{bearer, request_id};
use crate::http::limits::Slot;
use crate::metrics;
use crate::operators::Operator;
use crate::state::AppState;

/// Which request rates a route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// None: probes and scrapes must see an overloaded gateway.
    Exempt,
    Requests,
    /// The request rate and the booking rate.
    Bookings,
}

/// Where a route's request waits for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Answered whatever the load (probes and scrapes).
    Always,
    /// Takes one of the in-flight slots for as long as it is answered.
    Slot,
    /// An event stream, bounded by the streams' own capacity for as long as it is open.
    Stream,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (a customer's access token, where a handler reads one, is its own affair).
    Anyone,
    /// An operator whose role covers this one.
    Operator(Role),
    /// Anyone while `ANALYTICS_PUBLIC`, else an `analyst`.
    Analytics,
}

/// What a route goes through before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub rate: Rate,
    pub access: Access,
    /// A JSON body is read (before a slot is taken: a body trickling in holds no slot).
    pub json_body: bool,
    pub admission: Admission,
}

impl Policy {
    pub const OPERATIONS: Self = Self {
        rate: Rate::Exempt,
        access: Access::Anyone,
        json_body: false,
        admission: Admission::Always,
    };
    pub const READ: Self = Self {
        rate: Rate::Requests,
        access: Access::Anyone,
        json_body: false,
        admission: Admission::Slot,
    };
    pub const STREAM: Self = Self {
        admission: Admission::Stream,
        ..Self::READ
    };
    pub const BOOKING: Self = Self {
        rate: Rate::Bookings,
        json_body: true,
        ..Self::READ
    };
    /// A write anyone may make, with a JSON body.
    pub const WRITE: Self = Self {
        json_body: true,
        ..Self::READ
    };
    pub const ANALYTICS: Self = Self {
        access: Access::Analytics,
        ..Self::READ
    };

    /// This policy, for operators of `role` only.
    pub const fn only(self, role: Role) -> Self {
        Self {
            access: Access::Operator(role),
            ..self
        }
    }
}

/// What a handler is called with.
#[derive(Debug)]
pub struct Call {
    pub state: Arc<AppState>,
    pub parts: http::request::Parts,
    /// The JSON body, for routes that read one; empty otherwise.
    pub body: Vec<u8>,
    /// The request's place among those in flight, for a handler that waits without it.
    pub slot: Option<Slot>,
    /// Who asked: the peer, or the address a trusted proxy forwarded for.
    pub client: IpAddr,
    /// The operator, on a route for operators.
    operator: Option<Operator>,
    /// Where the path parameter stands in the path.
    param: Range<usize>,
}

impl Call {
    /// The operator who made this call, on a route for operators.
    pub fn operator(&self) -> Result<&Operator, ApiError> {
        self.operator.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// The path parameter (`{id}`); empty for a route without one.
    pub fn param(&self) -> &str {
        self.parts
            .uri
            .path()
            .get(self.param.clone())
            .unwrap_or_default()
    }
}

pub type Handled = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send>>;
pub type Handler = fn(Call) -> Handled;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param,
}

#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub template: &'static str,
    pub policy: Policy,
    segments: Vec<Segment>,
    handler: Handler,
    operation: Option<fn() -> docs::Operation>,
}

impl Route {
    fn new(
        method: Method,
        template: String,
        policy: Policy,
        handler: Handler,
        operation: Option<fn() -> docs::Operation>,
    ) -> Self {
        // Made once per route at start, for as long as the process runs.
        let template: &'static str = template.leak();
        let segments = template
            .split('/')
            .skip(1)
            .map(|segment| {
                if segment.starts_with('{') {
                    Segment::Param
                } else {
                    Segment::Literal(segment)
                }
            })
            .collect();
        Self {
            method,
            template,
            policy,
            segments,
            handler,
            operation,
        }
    }

    /// Where `path`'s parameter stands if `path` is this route's, with how many literal
    /// segments matched.
    fn matches(&self, path: &Segments<'_>) -> Option<(usize, Range<usize>)> {
        if self.segments.len() != path.count {
            return None;
        }
        let mut param = 0..0;
        let mut literals = 0;
        for (segment, span) in self.segments.iter().zip(&path.spans) {
            match segment {
                Segment::Literal(literal) if path.text.get(span.clone()) == Some(*literal) => {
                    literals += 1;
                }
                Segment::Literal(_) => return None,
                Segment::Param => param = span.clone(),
            }
        }
        Some((literals, param))
    }

    fn allows(&self, method: &Method) -> bool {
        self.method == method || (self.method == Method::GET && method == Method::HEAD)
    }
}

/// More segments than any route's template has (a test holds every template under it); a path
/// with more is no route's.
const MAX_SEGMENTS: usize = 6;

/// A request path cut at its slashes once, for every route to compare against.
struct Segments<'a> {
    text: &'a str,
    /// Where each segment stands in `text`.
    spans: [Range<usize>; MAX_SEGMENTS],
    count: usize,
}

impl<'a> Segments<'a> {
    /// `None` for a path longer than any route.
    fn of(text: &'a str) -> Option<Self> {
        let mut spans = [const { 0..0 }; MAX_SEGMENTS];
        let mut count = 0;
        let mut offset = 1;
        for part in text.split('/').skip(1) {
            *spans.get_mut(count)? = offset..offset + part.len();
            count += 1;
            offset += part.len() + 1;
        }
        Some(Self { text, spans, count })
    }
}

#[derive(Debug)]
struct Table {
    routes: Vec<Route>,
    web_app: Route,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    routes: table::routes(),
    web_app: table::web_app(),
});

/// The route for `method` and `path`, with where its parameter stands: `Err(MethodNotAllowed)`
/// names what the path does allow.
pub fn route(method: &Method, path: &str) -> Result<(&'static Route, Range<usize>), ApiError> {
    let trimmed = path.trim_end_matches('/');
    // The most literal segments win; among one path's routes, the one of the request's method.
    let found = Segments::of(trimmed).and_then(|segments| {
        TABLE
            .routes
            .iter()
            .filter_map(|route| {
                route
                    .matches(&segments)
                    .map(|(literals, param)| (route, literals, param))
            })
            .max_by_key(|(route, literals, _)| (*literals, route.allows(method)))
    });
    let (route, param) = match found {
        Some((route, _, param)) => (route, param),
        None if trimmed == "/api" || trimmed.starts_with("/api/") => {
            return Err(ApiError::RouteNotFound);
        }
        None => (&TABLE.web_app, 0..path.len()),
    };
    if route.allows(method) {
        return Ok((route, param));
    }
    let allow: Vec<&str> = TABLE
        .routes
        .iter()
        .chain([&TABLE.web_app])
        .filter(|other| other.template == route.template)
        .map(|other| other.method.as_str())
        .collect();
    Err(ApiError::MethodNotAllowed {
        allow: allow.join(", "),
    })
}

/// Whether a `GET` of `path` opens an event stream.
pub fn is_event_stream(path: &str) -> bool {
    route(&Method::GET, path).is_ok_and(|(route, _)| route.policy.admission == Admission::Stream)
}

/// The API's OpenAPI document as JSON, made once from the documented routes.
pub fn openapi_json() -> Bytes {
    static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
        let operations = TABLE.routes.iter().filter_map(|route| route.operation);
        docs::assemble(operations.map(|made| made()))
    });
    DOCUMENT.clone()
}

/// Answers one request; every error becomes a problem response here.
pub async fn handle<B>(
    state: Arc<AppState>,
    peer: SocketAddr,
    request: Request<B>,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let origin = request.headers().get(ORIGIN).cloned();
    if let Some(mut answer) = cors::preflight(&state.edge.cors, &method, &path, request.headers()) {
        metrics::request(
            "preflight",
            method.as_str(),
            answer.status().as_u16(),
            started.elapsed(),
        );
        answer.headers_mut().insert(REQUEST_ID, id);
        return answer;
    }
    let matched = route(&method, &path);
    let template = matched
        .as_ref()
        .map_or("unmatched", |(route, _)| route.template);
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        route = template,
        booking_id = tracing::field::Empty,
    );
    let mut response = async {
        let answer = match matched {
            Ok((route, param)) => admit(state.clone(), peer, route, param, request).await,
            Err(error) => Err(error),
        };
        let response = answer.unwrap_or_else(|error| error.into_response(&path));
        tracing::debug!(status = response.status().as_u16(), took = ?started.elapsed(), "answered");
        response
    }
    .instrument(span)
    .await;
    metrics::request(
        template,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response.headers_mut().insert(REQUEST_ID, id);
    cors::decorate(
        &state.edge.cors,
        &path,
        origin.as_ref(),
        response.headers_mut(),
    );
    response
}

/// The route's policy, then its handler.
async fn admit<B>(
    state: Arc<AppState>,
    peer: SocketAddr,
    route: &Route,
    param: Range<usize>,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let policy = route.policy;
    let client = state.edge.client_address(peer, &parts.headers);
    if policy.rate != Rate::Exempt {
        state.edge.limits.check(Limit::Requests, client)?;
        if policy.rate == Rate::Bookings {
            state.edge.limits.check(Limit::Bookings, client)?;
        }
    }
    let needed = match policy.access {
        Access::Anyone => None,
        Access::Analytics if state.operators.analytics_public => None,
        Access::Analytics => Some(Role::Analyst),
        Access::Operator(role) => Some(role),
    };
    let operator = match needed {
        // No credential at all guesses nothing, so it does not count against the address.
        Some(_) if bearer(&parts.headers).is_none_or(str::is_empty) => {
            return Err(ApiError::Unauthorized);
        }
        Some(role) => Some(
            state
                .edge
                .limits
                .authenticate(client, || state.operators.authorize(&parts.headers, role))?,
        ),
        None => None,
    };
    let body = if policy.json_body {
        read_json(&parts.headers, body, state.edge.body_timeout).await?
    } else {
        Vec::new()
    };
    let slot = match policy.admission {
        Admission::Slot => Some(state.edge.request_capacity.slot()?),
        Admission::Always | Admission::Stream => None,
    };
    let call = Call {
        state,
        parts,
        body,
        slot,
        client,
        operator,
        param,
    };
    (route.handler)(call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(method: &Method, path: &str) -> Option<&'static str> {
        route(method, path).ok().map(|(route, _)| route.template)
    }

    #[test]
    fn paths_match_their_routes() {
        assert_eq!(
            template(&Method::GET, "/api/concerts"),
            Some("/api/concerts")
        );
        assert_eq!(
            template(&Method::GET, "/api/concerts/"),
            Some("/api/concerts")
        );
        assert_eq!(
            template(&Method::GET, "/api/concerts/stream"),
            Some("/api/concerts/stream")
        );
        assert_eq!(
            template(&Method::GET, "/api/concerts/abc"),
            Some("/api/concerts/{id}")
        );
        assert_eq!(
            template(&Method::GET, "/api/bookings/abc"),
            Some("/api/bookings/{id}")
        );
        assert_eq!(
            template(&Method::GET, "/api/bookings/abc/events"),
            Some("/api/bookings/{id}/events")
        );
        assert_eq!(
            template(&Method::POST, "/api/bookings"),
            Some("/api/bookings")
        );
        assert_eq!(
            template(&Method::HEAD, "/api/concerts"),
            Some("/api/concerts")
        );
        assert_eq!(template(&Method::GET, "/analytics"), Some("/{web}"));
        assert_eq!(template(&Method::GET, "/"), Some("/{web}"));
        assert_eq!(template(&Method::GET, "/docs"), Some("/docs"));
        assert!(matches!(
            route(&Method::GET, "/api/nope"),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/api/bookings/abc/events/more"),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            route(&Method::DELETE, "/api/bookings"),
            Err(ApiError::MethodNotAllowed { allow }) if allow == "POST"
        ));
        for method in [Method::GET, Method::POST] {
            let (found, _) = route(&method, "/api/admin/api-keys").expect("a route");
            assert_eq!(found.method, method);
        }
        assert!(matches!(
            route(&Method::PUT, "/api/admin/api-keys"),
            Err(ApiError::MethodNotAllowed { allow }) if allow == "POST, GET"
        ));
        assert!(matches!(
            route(&Method::POST, "/analytics"),
            Err(ApiError::MethodNotAllowed { allow }) if allow == "GET"
        ));
    }

    #[test]
    fn a_parameter_is_found_where_it_stands() {
        let path = "/api/bookings/abc/events";
        let (_, param) = route(&Method::GET, path).expect("a route");
        assert_eq!(&path[param], "abc");
    }

    #[test]
    fn the_three_streams_are_the_stream_routes() {
        let streams: Vec<_> = TABLE
            .routes
            .iter()
            .filter(|route| route.policy.admission == Admission::Stream)
            .map(|route| route.template)
            .collect();
        assert_eq!(
            streams,
            [
                "/api/concerts/stream",
                "/api/bookings/{id}/events",
                "/api/queue/{id}/events"
            ]
        );
        assert!(is_event_stream("/api/queue/abc/events"));
        assert!(!is_event_stream("/api/queue/abc"));
    }

    #[test]
    fn every_route_fits_the_segment_bound_and_longer_paths_are_none() {
        for route in &TABLE.routes {
            assert!(route.segments.len() < MAX_SEGMENTS, "{}", route.template);
        }
        let deep = "/api/bookings/abc/events/more/and/more";
        assert!(Segments::of(deep).is_none());
        assert!(matches!(
            route(&Method::GET, deep),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            route(&Method::GET, "/a/b/c/d/e/f/g"),
            Ok((route, _)) if route.template == "/{web}"
        ));
    }

    #[test]
    fn every_template_is_written_once() {
        let mut seen = std::collections::HashSet::new();
        for route in &TABLE.routes {
            assert!(
                seen.insert((route.method.clone(), route.template)),
                "{}",
                route.template
            );
        }
    }
}
