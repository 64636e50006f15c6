//! Routes: matching a method and path to a handler. Each route has a template (`/api/bookings/{id}`)
//! for logs and metrics, never the raw path.

use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{Body, read_json};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{admin, bookings, concerts, health};

/// A matched route with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    ListConcerts,
    GetConcert(&'p str),
    CreateConcert,
    CreateBooking,
    GetBooking(&'p str),
    Health,
    Ready,
}

impl Route<'_> {
    pub fn template(&self) -> &'static str {
        match self {
            Route::ListConcerts => "/api/concerts",
            Route::GetConcert(_) => "/api/concerts/{id}",
            Route::CreateConcert => "/api/admin/concerts",
            Route::CreateBooking => "/api/bookings",
            Route::GetBooking(_) => "/api/bookings/{id}",
            Route::Health => "/api/health",
            Route::Ready => "/api/health/ready",
        }
    }
}

/// The route for `method` and `path`: `Err(MethodNotAllowed)` names what the path does allow.
pub fn match_route<'p>(method: &Method, path: &'p str) -> Result<Route<'p>, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, allow) = match segments.as_slice() {
        ["api", "concerts"] => (Route::ListConcerts, "GET"),
        ["api", "concerts", id] => (Route::GetConcert(id), "GET"),
        ["api", "admin", "concerts"] => (Route::CreateConcert, "POST"),
        ["api", "bookings"] => (Route::CreateBooking, "POST"),
        ["api", "bookings", id] => (Route::GetBooking(id), "GET"),
        ["api", "health"] => (Route::Health, "GET"),
        ["api", "health", "ready"] => (Route::Ready, "GET"),
        _ => return Err(ApiError::RouteNotFound),
    };
    let allowed = method.as_str() == allow || (allow == "GET" && method == Method::HEAD);
    if allowed {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// Answers one request; every error becomes a problem response here.
pub async fn handle(state: Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match dispatch(&state, &path, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(&path),
    }
}

async fn dispatch(
    state: &AppState,
    path: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let route = match_route(request.method(), path)?;
    let (parts, body) = request.into_parts();
    match route {
        Route::ListConcerts => concerts::list(state).await,
        Route::GetConcert(id) => concerts::get(state, id).await,
        Route::CreateConcert => {
            admin::authorize(state, &parts.headers)?;
            let body = read_json(&parts.headers, body).await?;
            admin::create(state, body).await
        }
        Route::CreateBooking => {
            let body = read_json(&parts.headers, body).await?;
            bookings::create(state, &parts.headers, body).await
        }
        Route::GetBooking(id) => bookings::get(state, id).await,
        Route::Health => health::live(),
        Route::Ready => health::ready(state).await,
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
            match_route(&Method::GET, "/api/bookings/abc").ok(),
            Some(Route::GetBooking("abc"))
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
    }
}
