//! Every route of the gateway, each written once: its OpenAPI operation (which gives the method
//! and the path template), what it goes through on the way, and the handler it calls with the
//! services that handler uses.

use std::sync::Arc;

use http::Method;
// The hidden traits utoipa-axum's `routes!` builds a document from: a path's tags and schemas.
use utoipa::__dev::{SchemaReferences, Tags};

use domain::roles::Role;

use crate::api::{
    admin, analytics, api_keys, audit_log, auth, bookings, concerts, docs, events, health, me,
    queue,
};
use crate::http::error::ApiError;
use crate::routes::{Call, Handled, Handler, Policy, Route};

/// A route the API document describes, from its handler's `#[utoipa::path]` annotation.
fn documented<P: Documented>(policy: Policy, handler: Handler) -> Route {
    let method = match P::methods().as_slice() {
        [utoipa::openapi::path::HttpMethod::Post] => Method::POST,
        [utoipa::openapi::path::HttpMethod::Patch] => Method::PATCH,
        [utoipa::openapi::path::HttpMethod::Delete] => Method::DELETE,
        _ => Method::GET,
    };
    Route::new(method, P::path(), policy, handler, Some(operation::<P>))
}

/// The route's part of the API document: its path, operation and the schemas it refers to.
fn operation<P: Documented>() -> docs::Operation {
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    let mut operation = P::operation();
    let tags = operation.tags.get_or_insert_with(Vec::new);
    tags.extend(P::tags().into_iter().map(str::to_owned));
    docs::Operation {
        path: P::path(),
        methods: P::methods(),
        operation,
        schemas,
    }
}

/// What `#[utoipa::path]` generates for a handler.
trait Documented: utoipa::Path + SchemaReferences + Tags<'static> {}

impl<P: utoipa::Path + SchemaReferences + Tags<'static>> Documented for P {}

/// The routes, in no particular order: a literal segment wins over a parameter.
pub(super) fn routes() -> Vec<Route> {
    use admin::{__path_create, __path_update};
    use analytics::__path_get as __path_dashboard;
    use api_keys::{
        __path_create as __path_create_key, __path_list as __path_keys,
        __path_revoke as __path_revoke_key,
    };
    use audit_log::__path_list as __path_audit_log;
    use auth::{__path_refresh, __path_request_link, __path_sign_in, __path_sign_out};
    use bookings::{__path_create as __path_book, __path_get as __path_booking};
    use concerts::{__path_get as __path_concert, __path_list as __path_concerts};
    use docs::__path_document;
    use events::{__path_booking_stream, __path_queue_stream, __path_stock_stream};
    use health::{__path_live, __path_metrics, __path_ready};
    use me::{__path_bookings as __path_my_bookings, __path_me};
    use queue::{__path_get as __path_ticket, __path_join};
    vec![
        documented::<__path_concerts>(Policy::READ, |call| {
            Box::pin(async move { concerts::list(&call.state.catalog, &call.state.stock).await })
        }),
        documented::<__path_concert>(Policy::READ, |call| {
            Box::pin(async move {
                let state = &call.state;
                concerts::get(&state.catalog, &state.stock, call.param()).await
            })
        }),
        documented::<__path_stock_stream>(Policy::STREAM, |call| {
            Box::pin(events::stock_stream(Arc::clone(&call.state.streams)))
        }),
        documented::<__path_create>(Policy::WRITE.only(Role::BoxOffice), |call| {
            Box::pin(
                async move { admin::create(&call.state.admin, call.operator()?, &call.body).await },
            )
        }),
        documented::<__path_update>(Policy::WRITE.only(Role::BoxOffice), |mut call| {
            Box::pin(async move {
                let body = std::mem::take(&mut call.body);
                admin::update(&call.state.admin, call.operator()?, call.param(), body).await
            })
        }),
        documented::<__path_create_key>(Policy::WRITE.only(Role::Admin), |call| {
            Box::pin(async move {
                api_keys::create(&call.state.operators, call.operator()?, &call.body).await
            })
        }),
        documented::<__path_keys>(Policy::READ.only(Role::Admin), |call| {
            Box::pin(async move { api_keys::list(&call.state.operators).await })
        }),
        documented::<__path_revoke_key>(Policy::READ.only(Role::Admin), |call| {
            Box::pin(async move {
                api_keys::revoke(&call.state.operators, call.operator()?, call.param()).await
            })
        }),
        documented::<__path_audit_log>(Policy::READ.only(Role::Admin), |call| {
            Box::pin(
                async move { audit_log::list(&call.state.admin.db, call.parts.uri.query()).await },
            )
        }),
        documented::<__path_request_link>(Policy::WRITE, |call| {
            Box::pin(async move {
                auth::request_link(&call.state.customers, call.client, &call.body).await
            })
        }),
        documented::<__path_sign_in>(Policy::WRITE, |call| {
            Box::pin(async move { auth::sign_in(&call.state.customers, &call.body).await })
        }),
        documented::<__path_refresh>(Policy::WRITE, |call| {
            Box::pin(async move { auth::refresh(&call.state.customers, &call.body).await })
        }),
        documented::<__path_sign_out>(Policy::READ, |call| {
            Box::pin(
                async move { auth::sign_out(&call.state.customers, &call.parts.headers).await },
            )
        }),
        documented::<__path_me>(Policy::READ, |call| {
            Box::pin(async move { me::me(&call.state.customers, &call.parts.headers) })
        }),
        documented::<__path_my_bookings>(Policy::READ, |call| {
            Box::pin(async move {
                let state = &call.state;
                me::bookings(
                    &state.customers,
                    &call.parts.headers,
                    call.parts.uri.query(),
                )
                .await
            })
        }),
        documented::<__path_book>(Policy::BOOKING, |call| {
            Box::pin(async move {
                bookings::create(
                    &call.state.bookings,
                    &call.parts.headers,
                    call.body,
                    call.slot,
                )
                .await
            })
        }),
        documented::<__path_booking>(Policy::READ, |call| {
            Box::pin(async move { bookings::get(&call.state.bookings, call.param()).await })
        }),
        documented::<__path_booking_stream>(Policy::STREAM, |call| {
            Box::pin(async move {
                let id = call.param().to_owned();
                let state = &call.state;
                events::booking_stream(Arc::clone(&state.streams), Arc::clone(&state.bookings), &id)
                    .await
            })
        }),
        // Joins are limited per address like bookings: a place is worth as much.
        documented::<__path_join>(Policy::BOOKING, |call| {
            Box::pin(async move {
                let state = &call.state;
                queue::join(
                    &state.catalog,
                    &state.waiting_rooms,
                    call.param(),
                    &call.body,
                )
                .await
            })
        }),
        documented::<__path_ticket>(Policy::READ, |call| {
            Box::pin(async move {
                queue::get(
                    &call.state.waiting_rooms,
                    call.param(),
                    call.parts.uri.query(),
                )
                .await
            })
        }),
        documented::<__path_queue_stream>(Policy::STREAM, |call| {
            Box::pin(async move {
                let id = call.param().to_owned();
                let state = &call.state;
                events::queue_stream(
                    Arc::clone(&state.streams),
                    Arc::clone(&state.waiting_rooms),
                    &id,
                    call.parts.uri.query(),
                )
                .await
            })
        }),
        documented::<__path_dashboard>(Policy::ANALYTICS, |call| {
            Box::pin(
                async move { analytics::get(&call.state.dashboards, call.parts.uri.query()).await },
            )
        }),
        documented::<__path_live>(Policy::OPERATIONS, |_| Box::pin(async { health::live() })),
        documented::<__path_ready>(Policy::OPERATIONS, |call| {
            Box::pin(async move {
                let state = &call.state;
                health::ready(&state.redis, &state.db, &state.guard).await
            })
        }),
        documented::<__path_metrics>(Policy::OPERATIONS, |call| {
            Box::pin(async move { Ok(health::metrics(&call.state.metrics)) })
        }),
        documented::<__path_document>(Policy::OPERATIONS, |_| {
            Box::pin(async { Ok(docs::document(super::openapi_json())) })
        }),
        Route::new(
            Method::GET,
            "/docs".to_owned(),
            Policy::OPERATIONS,
            docs_page,
            None,
        ),
    ]
}

/// Anything outside `/api` that no route names: the web app's files and pages.
pub(super) fn web_app() -> Route {
    Route::new(
        Method::GET,
        "/{web}".to_owned(),
        Policy::READ,
        web_page,
        None,
    )
}

fn docs_page(call: Call) -> Handled {
    Box::pin(async move {
        call.state
            .web
            .response("/docs/index.html")
            .ok_or(ApiError::RouteNotFound)
    })
}

fn web_page(call: Call) -> Handled {
    Box::pin(async move {
        call.state
            .web
            .response(call.parts.uri.path())
            .ok_or(ApiError::RouteNotFound)
    })
}
