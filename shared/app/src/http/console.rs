//! The web console: the single-page app built from `console/` (Vite + React), committed under
//! `console/dist` and embedded in the binary (rust-embed, embedded in debug builds too), so
//! `wf dev` and the api function serve it without Node.js. Same origin as the API: no CORS.
//!
//! `GET /` and any unknown non-API path that asks for HTML answer `index.html` (`no-cache`);
//! files under `/assets/` carry a content hash in their name and are `immutable`. API routes
//! keep precedence: the router matches them first, and an unknown path under an API prefix
//! (or one that does not ask for HTML) stays the API's JSON 404.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use super::ApiError;

#[derive(Embed)]
#[folder = "../../console/dist"]
struct Assets;

/// First path segments that belong to the API (an unknown path under them is a JSON 404).
const API_PREFIXES: &[&str] = &[
    "workflows",
    "executions",
    "hooks",
    "events",
    "cron",
    "openapi.json",
    "metrics",
    "health",
    "actions",
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Whether `path` is one of the console's static files (`/`, `/index.html`, `/assets/...`,
/// files at the root of the build such as `/favicon.svg`). They hold no data, so an
/// authenticating layer (the api function's bearer mode) may let them through: the browser
/// cannot add a header to a page load.
pub fn is_console_asset(path: &str) -> bool {
    let file = path.trim_start_matches('/');
    file.is_empty() || Assets::get(file).is_some()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file(path: &str, head: bool) -> Option<Response> {
    let asset = Assets::get(path)?;
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..16]));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if head {
        return Some((StatusCode::OK, headers).into_response());
    }
    Some((StatusCode::OK, headers, asset.data.into_owned()).into_response())
}

fn index(head: bool) -> Response {
    file("index.html", head).unwrap_or_else(|| {
        ApiError::not_found("the console is not built into this binary (console/dist is empty)")
            .into_response()
    })
}

/// `GET /`: the console.
pub async fn root(method: Method) -> Response {
    index(method == Method::HEAD)
}

/// What the router answers for a path no route matched: a console file, the console itself
/// for an HTML page load outside the API's prefixes (so its routes survive a reload), else the
/// API's JSON 404.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let not_found = || ApiError::not_found("no such route; see /openapi.json").into_response();
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let head = method == Method::HEAD;
    let path = uri.path().trim_start_matches('/');
    if let Some(found) = file(path, head) {
        return found;
    }
    let first = path.split('/').next().unwrap_or_default();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !API_PREFIXES.contains(&first) && !path.starts_with("assets/") {
        return index(head);
    }
    not_found()
}
