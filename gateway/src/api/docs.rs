//! The OpenAPI 3.1 document of the API, made from the routes' operations (the handlers' own
//! annotations) and the types they read and write (so it cannot drift from them), served at
//! `/api/openapi.json`; `/docs`
//! renders it (the web app's build carries the page and its script, so it needs no network).

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{HttpMethod, Operation as PathOperation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{events, problems};
use crate::http::body::{Body, full};
use crate::http::error::{FieldError, Problem};
use crate::live::hub;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tickets",
        description = "Concert ticket booking for on-sale peaks: a booking is accepted in \
            milliseconds after one atomic reservation in Redis, then settled (charged, written to \
            Postgres) asynchronously. Errors are RFC 9457 problems with a stable `code`.",
        version = "1",
        license(name = "MIT")
    ),
    components(schemas(
        Problem,
        FieldError,
        crate::analytics::Period,
        events::ServerSentEvent,
        hub::StockEvent,
        events::Snapshot,
        events::TierStock,
        events::BookingEvent
    ), responses(
        problems::Invalid,
        problems::Unauthorized,
        problems::Forbidden,
        problems::BodyLate,
        problems::BodyTooLarge,
        problems::NotJson,
        problems::RateLimited,
        problems::Unavailable,
        problems::StreamUnavailable,
        problems::NotFound,
        problems::Recovering
    )),
    modifiers(&Credentials),
    tags(
        (name = "concerts", description = "The catalog and its live stock"),
        (name = "bookings", description = "Booking tickets and following them to their outcome"),
        (name = "waiting room", description = "A concert's queue: join it, wait your turn, book with the admission"),
        (name = "customers", description = "Signing in by a mailed link"),
        (name = "analytics", description = "The sales dashboard"),
        (name = "admin", description = "Operators: concerts and their sales (`box_office`), API keys and the audit log (`admin`)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// One route's part of the document.
pub(crate) struct Operation {
    pub(crate) path: String,
    pub(crate) methods: Vec<HttpMethod>,
    pub(crate) operation: PathOperation,
    /// The schemas its parameters and bodies refer to.
    pub(crate) schemas: Vec<(String, RefOr<Schema>)>,
}

/// The document as JSON: what [`ApiDoc`] says of the API as a whole, and every route's
/// operation.
pub(crate) fn assemble(operations: impl IntoIterator<Item = Operation>) -> Bytes {
    let mut document = ApiDoc::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    for route in operations {
        components.schemas.extend(route.schemas);
        document
            .paths
            .add_path_operation(route.path, route.methods, route.operation);
    }
    let mut document = serde_json::to_value(document).unwrap_or_default();
    name_link_fields(&mut document);
    Bytes::from(serde_json::to_vec_pretty(&document).unwrap_or_default())
}

/// The credentials: operators' (`ADMIN_TOKEN` or an API key's secret), and customers' access
/// tokens (JWTs).
#[derive(Debug)]
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            let mut operator = Http::new(HttpAuthScheme::Bearer);
            operator.description = Some(
                "`ADMIN_TOKEN` (the bootstrap admin) or an API key's secret; the key's role \
                 decides what it may do"
                    .to_owned(),
            );
            components.add_security_scheme("operator", SecurityScheme::Http(operator));
            let mut customer = Http::new(HttpAuthScheme::Bearer);
            customer.bearer_format = Some("JWT".to_owned());
            customer.description =
                Some("A customer's access token, from `POST /api/auth/sessions`".to_owned());
            components.add_security_scheme("customer", SecurityScheme::Http(customer));
        }
    }
}

/// utoipa 5.5 writes a link's fields in snake case (`operation_id`); OpenAPI names them in camel
/// case (`operationId`), which tools that follow links need.
fn name_link_fields(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if let Some(serde_json::Value::Object(links)) = object.get_mut("links") {
                for link in links.values_mut() {
                    if let serde_json::Value::Object(link) = link {
                        for (snake, camel) in [
                            ("operation_id", "operationId"),
                            ("operation_ref", "operationRef"),
                            ("request_body", "requestBody"),
                        ] {
                            if let Some(field) = link.remove(snake) {
                                link.insert(camel.to_owned(), field);
                            }
                        }
                    }
                }
            }
            object.values_mut().for_each(name_link_fields);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(name_link_fields),
        _ => {}
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub fn document(json: Bytes) -> Response<Body> {
    let mut response = Response::new(full(json));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
