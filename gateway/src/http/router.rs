//! Routes: matching a method and path to a handler, and what every request goes through on the
//! way (request id and span, rate limits, the in-flight bound, metrics). Each route has a template
//! (`/api/bookings/{id}`) for logs and metrics, never the raw path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::ORIGIN;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::api::{admin, analytics, bookings, concerts, docs, health, queue};
use crate::http::body::{Body, read_json};
use crate::http::cors;
use crate::http::error::ApiError;
use crate::http::error::Limit;
use crate::http::headers::REQUEST_ID;
use crate::http::limits::Slot;
use crate::live::sse;
use crate::metrics;
use crate::state::AppState;

/// A matched route with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    ListConcerts,
    ConcertStream,
    GetConcert(&'p str),
    CreateConcert,
    UpdateConcert(&'p str),
    CreateBooking,
    GetBooking(&'p str),
    BookingEvents(&'p str),
    JoinQueue(&'p str),
    QueueTicket(&'p str),
    QueueEvents(&'p str),
    Dashboard,
    Health,
    Ready,
    Metrics,
    OpenApi,
    /// The page that renders the API's document.
    Docs,
    /// Anything outside `/api`: the web app's files and pages.
    WebApp(&'p str),
}

impl Route<'_> {
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListConcerts => "/api/concerts",
            Route::ConcertStream => "/api/concerts/stream",
            Route::GetConcert(_) => "/api/concerts/{id}",
            Route::CreateConcert => "/api/admin/concerts",
            Route::UpdateConcert(_) => "/api/admin/concerts/{id}",
            Route::CreateBooking => "/api/bookings",
            Route::GetBooking(_) => "/api/bookings/{id}",
            Route::BookingEvents(_) => "/api/bookings/{id}/events",
            Route::JoinQueue(_) => "/api/concerts/{id}/queue",
            Route::QueueTicket(_) => "/api/queue/{id}",
            Route::QueueEvents(_) => "/api/queue/{id}/events",
            Route::Dashboard => "/api/analytics/dashboard",
            Route::Health => "/api/health",
            Route::Ready => "/api/health/ready",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/api/openapi.json",
            Route::Docs => "/docs",
            Route::WebApp(_) => "/{web}",
        }
    }

    /// Probes and scrapes are neither rate limited nor shed: they must see an overloaded gateway.
    fn is_operational(&self) -> bool {
        matches!(
            self,
            Route::Health | Route::Ready | Route::Metrics | Route::OpenApi | Route::Docs
        )
    }
}

/// The route for `method` and `path`: `Err(MethodNotAllowed)` names what the path does allow.
pub fn match_route<'p>(method: &Method, path: &'p str) -> Result<Route<'p>, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, allow) = match segments.as_slice() {
        ["api", "concerts"] => (Route::ListConcerts, "GET"),
        ["api", "concerts", "stream"] => (Route::ConcertStream, "GET"),
        ["api", "concerts", id] => (Route::GetConcert(id), "GET"),
        ["api", "concerts", id, "queue"] => (Route::JoinQueue(id), "POST"),
        ["api", "queue", id] => (Route::QueueTicket(id), "GET"),
        ["api", "queue", id, "events"] => (Route::QueueEvents(id), "GET"),
        ["api", "admin", "concerts"] => (Route::CreateConcert, "POST"),
        ["api", "admin", "concerts", id] => (Route::UpdateConcert(id), "PATCH"),
        ["api", "bookings"] => (Route::CreateBooking, "POST"),
        ["api", "bookings", id] => (Route::GetBooking(id), "GET"),
        ["api", "bookings", id, "events"] => (Route::BookingEvents(id), "GET"),
        ["api", "analytics", "dashboard"] => (Route::Dashboard, "GET"),
        ["api", "health"] => (Route::Health, "GET"),
        ["api", "health", "ready"] => (Route::Ready, "GET"),
        ["metrics"] => (Route::Metrics, "GET"),
        ["api", "openapi.json"] => (Route::OpenApi, "GET"),
        ["docs"] => (Route::Docs, "GET"),
        ["api", ..] => return Err(ApiError::RouteNotFound),
        _ => (Route::WebApp(path), "GET"),
    };
    let allowed = method.as_str() == allow || (allow == "GET" && method == Method::HEAD);
    if allowed {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// The client's request id if it is a sensible one, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&Uuid::now_v7().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        })
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
    if let Some(mut answer) = cors::preflight(&state.cors, &method, &path, request.headers()) {
        metrics::request(
            "preflight",
            method.as_str(),
            answer.status().as_u16(),
            started.elapsed(),
        );
        answer.headers_mut().insert(REQUEST_ID, id);
        return answer;
    }
    let route = match_route(&method, &path);
    let template = route.as_ref().map(Route::template).unwrap_or("unmatched");
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        route = template,
        booking_id = tracing::field::Empty,
    );
    let mut response = async {
        let answer = match route {
            Ok(route) => admit(&state, peer, route, request).await,
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
    cors::decorate(&state.cors, &path, origin.as_ref(), response.headers_mut());
    response
}

/// Rate limits, the body (read before a slot is taken: a body trickling in holds no slot), the
/// in-flight bound, then the handler.
async fn admit<B>(
    state: &Arc<AppState>,
    peer: SocketAddr,
    route: Route<'_>,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    if route.is_operational() {
        return dispatch(state, route, parts, Vec::new(), None).await;
    }
    let client = state.client_address(peer, &parts.headers);
    state.limits.check(Limit::Requests, client)?;
    if route == Route::CreateBooking {
        state.limits.check(Limit::Bookings, client)?;
    }
    if matches!(
        route,
        Route::ConcertStream | Route::BookingEvents(_) | Route::QueueEvents(_)
    ) {
        // Streams are bounded by their own capacity, held for as long as they are open.
        return dispatch(state, route, parts, Vec::new(), None).await;
    }
    let body = match route {
        Route::CreateConcert | Route::UpdateConcert(_) => {
            admin::authorize(state, &parts.headers)?;
            read_json(&parts.headers, body, state.body_timeout).await?
        }
        Route::CreateBooking => read_json(&parts.headers, body, state.body_timeout).await?,
        _ => Vec::new(),
    };
    let slot = state.request_capacity.slot()?;
    dispatch(state, route, parts, body, Some(slot)).await
}

/// Calls the route's handler; `slot`, the request's place among those in flight, is held until
/// the handler is done, or given to one that waits without it.
async fn dispatch(
    state: &Arc<AppState>,
    route: Route<'_>,
    parts: http::request::Parts,
    body: Vec<u8>,
    slot: Option<Slot>,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::ListConcerts => concerts::list(state).await,
        Route::ConcertStream => sse::stock_stream(Arc::clone(state)).await,
        Route::GetConcert(id) => concerts::get(state, id).await,
        Route::CreateConcert => admin::create(state, body).await,
        Route::UpdateConcert(id) => admin::update(state, id, body).await,
        Route::CreateBooking => bookings::create(state, &parts.headers, body, slot).await,
        Route::GetBooking(id) => bookings::get(state, id).await,
        Route::BookingEvents(id) => sse::booking_stream(Arc::clone(state), id).await,
        Route::JoinQueue(id) => queue::join(state, id, &parts.headers).await,
        Route::QueueTicket(id) => queue::get(state, id).await,
        Route::QueueEvents(id) => sse::queue_stream(Arc::clone(state), id).await,
        Route::Dashboard => analytics::get(&state.dashboards, parts.uri.query()).await,
        Route::WebApp(path) => state.web.response(path).ok_or(ApiError::RouteNotFound),
        Route::Health => health::live(),
        Route::Ready => health::ready(state).await,
        Route::Metrics => Ok(health::metrics(&state.metrics)),
        Route::OpenApi => Ok(docs::document()),
        Route::Docs => state
            .web
            .response("/docs/index.html")
            .ok_or(ApiError::RouteNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes() {
        assert_eq!(
            match_route(&Method::GET, "/api/concerts").ok(),
            Some(Route::ListConcerts)
        );
        assert_eq!(
            match_route(&Method::GET, "/api/concerts/").ok(),
            Some(Route::ListConcerts)
        );
        assert_eq!(
            match_route(&Method::GET, "/api/concerts/stream").ok(),
            Some(Route::ConcertStream)
        );
        assert_eq!(
            match_route(&Method::GET, "/api/bookings/abc").ok(),
            Some(Route::GetBooking("abc"))
        );
        assert_eq!(
            match_route(&Method::GET, "/api/bookings/abc/events").ok(),
            Some(Route::BookingEvents("abc"))
        );
        assert_eq!(
            match_route(&Method::POST, "/api/bookings").ok(),
            Some(Route::CreateBooking)
        );
        assert!(matches!(
            match_route(&Method::GET, "/api/nope"),
            Err(ApiError::RouteNotFound)
        ));
        assert!(matches!(
            match_route(&Method::DELETE, "/api/bookings"),
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        ));
        assert_eq!(
            match_route(&Method::GET, "/analytics").ok(),
            Some(Route::WebApp("/analytics"))
        );
        assert_eq!(
            match_route(&Method::GET, "/").ok(),
            Some(Route::WebApp("/"))
        );
        assert!(matches!(
            match_route(&Method::POST, "/analytics"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }

    #[test]
    fn a_sensible_request_id_is_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&headers), "has space");
        assert_eq!(request_id(&HeaderMap::new()).len(), 36);
    }
}
