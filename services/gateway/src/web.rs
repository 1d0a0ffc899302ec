//! What a browser needs besides the transports: `/v1/info` (what this gateway offers), the
//! development sign-in, the web app and the SDK it loads (embedded at build time), and CORS
//! for pages served elsewhere.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chorus_core::{UserId, protocol::ErrorCode};
use serde::Deserialize;

use crate::server::{Shared, http_error};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// How long a development token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The app's pages may load only their own scripts and styles and talk only to this
/// gateway: user text can never become markup or reach another host.
const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self' ws: wss:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// `GET /v1/info`: the protocol, the transports, and whether the dev sign-in is on.
pub(crate) async fn info(State(shared): State<Arc<Shared>>) -> Response {
    Json(serde_json::json!({
        "protocol": 1,
        "transports": ["websocket", "sse"],
        "dev_sign_in": shared.config.dev_sign_in,
        "web": shared.config.web,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevTokenRequest {
    user: String,
}

/// `POST /v1/dev/token` `{"user":"alice"}`: a token for anyone who asks. Only standalone
/// `--dev` turns it on, and only on a loopback address.
pub(crate) async fn dev_token(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<DevTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !shared.config.dev_sign_in {
        return http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the development sign-in is off (standalone --dev turns it on)",
        );
    }
    let Ok(Json(req)) = body else {
        return http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "expected a JSON body {\"user\":\"…\"}",
        );
    };
    let user = match UserId::new(&req.user) {
        Ok(user) => user,
        Err(e) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                &e.to_string(),
            );
        }
    };
    let token = shared.auth.mint(&user, DEV_TOKEN_TTL);
    Json(serde_json::json!({
        "token": token,
        "user": user,
        "expires_in": DEV_TOKEN_TTL.as_secs(),
    }))
    .into_response()
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn asset(table: &[(&str, &'static [u8])], file: &str) -> Response {
    let Some((_, bytes)) = table.iter().find(|(name, _)| *name == file) else {
        return http_error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such file in this build",
        );
    };
    (
        [
            (header::CONTENT_TYPE, content_type(file)),
            // Small files, embedded in the binary: always revalidated, so an upgrade shows.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, APP_CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        *bytes,
    )
        .into_response()
}

/// `GET /`: the web app.
pub(crate) async fn index() -> Response {
    asset(assets::APP, "index.html")
}

/// `GET /app/<file>`: the app's scripts and styles.
pub(crate) async fn app_file(Path(file): Path<String>) -> Response {
    asset(assets::APP, &file)
}

/// `GET /sdk/<file>`: the browser build of the TypeScript SDK (clients/js).
pub(crate) async fn sdk_file(Path(file): Path<String>) -> Response {
    asset(assets::SDK, &file)
}

/// Whether this build carries the web app.
pub fn app_embedded() -> bool {
    assets::APP.iter().any(|(name, _)| *name == "index.html")
        && assets::SDK.iter().any(|(name, _)| *name == "index.js")
}

/// CORS for `/v1/info` and the SSE transport: the configured origins (or `*`) may call them
/// with an `Authorization` header. Tokens are never cookies, so allowing an origin lends it
/// nothing it does not already hold.
pub(crate) async fn cors(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let allowed = headers
        .get(header::ORIGIN)
        .filter(|origin| {
            shared
                .config
                .allowed_origins
                .iter()
                .any(|a| a == "*" || origin.as_bytes() == a.as_bytes())
        })
        .cloned();
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = allowed {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    response
}
