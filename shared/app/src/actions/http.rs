//! `http.request` and `message.send`: outbound HTTP under the [`OutboundPolicy`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;
use wf_core::error::StepError;
use wf_core::json_depth::{MAX_JSON_DEPTH, check_depth};
use wf_core::ports::ActionContext;

use super::outbound::{
    self, BodyError, ForbiddenAddress, OutboundPolicy, TooManyRedirects, TransportCodes,
    UrlRefused, find_cause, read_body_limited,
};
use super::params_error;

/// How much of an error response body goes into the step error's details (step records are
/// stored in DynamoDB items of at most 400 KB).
const ERROR_BODY_CHARS: usize = 2048;

/// The codes of the actions' transport failures.
const TRANSPORT_CODES: TransportCodes = TransportCodes {
    connect: "http.connect",
    invalid: "http.invalid_request",
    redirect: Some("http.redirect"),
    other: "http.transport",
};

/// Params of `http.request` (already validated against the catalog schema).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpParams {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    query: Map<String, Value>,
    /// `Some(Value::Null)` is a JSON `null` body: keep it apart from "absent".
    #[serde(default, deserialize_with = "present")]
    json: Option<Value>,
    body: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    expect_status: Vec<u16>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Params of `message.send`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageParams {
    url: String,
    text: String,
    blocks: Option<Vec<Value>>,
}

/// A response read in full (within the size limit).
struct ReadResponse {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

enum Body {
    None,
    Json(Value),
    Text(String),
}

/// What both actions send through: the client and the policy it was built from (its resolver
/// and redirect policy enforce the policy; IP-literal URLs are checked before sending).
#[derive(Clone, Copy)]
pub(crate) struct Transport<'a> {
    pub client: &'a reqwest::Client,
    pub policy: &'a OutboundPolicy,
}

/// One outbound request, as both actions describe it.
struct Outbound {
    method: reqwest::Method,
    url: Url,
    headers: HeaderMap,
    body: Body,
    timeout: Duration,
}

pub(crate) async fn request(
    via: Transport<'_>, params: HttpParams, ctx: &ActionContext,
) -> Result<Value, StepError> {
    let method = reqwest::Method::from_bytes(params.method.as_bytes()).map_err(|_| {
        params_error(
            "http.request",
            vec![("/method".into(), "not an HTTP method".into())],
        )
    })?;
    let mut url = parse_url("http.request", &params.url)?;
    if !params.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &params.query {
            let value = match value {
                Value::String(s) => s.clone(),
                // Numbers and booleans as JSON writes them (1.5, true).
                other => other.to_string(),
            };
            pairs.append_pair(name, &value);
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &params.headers {
        let pointer = format!("/headers/{}", escape_pointer(name));
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            params_error(
                "http.request",
                vec![(pointer.clone(), "not a valid header name".into())],
            )
        })?;
        let text = value.as_str().unwrap_or_default();
        let header_value = HeaderValue::from_str(text).map_err(|_| {
            params_error(
                "http.request",
                vec![(pointer, "not a valid header value".into())],
            )
        })?;
        headers.append(header_name, header_value);
    }
    let body = match (params.json, params.body) {
        (Some(json), _) => Body::Json(json),
        (None, Some(text)) => Body::Text(text),
        (None, None) => Body::None,
    };
    // The step's remaining time bounds whatever the params ask for.
    let timeout = params
        .timeout_ms
        .map(Duration::from_millis)
        .map_or(ctx.timeout, |t| t.min(ctx.timeout));

    let response = send(
        via,
        Outbound {
            method,
            url,
            headers,
            body,
            timeout,
        },
        ctx,
    )
    .await?;

    let ok =
        (200..300).contains(&response.status) || params.expect_status.contains(&response.status);
    if !ok {
        return Err(status_error(&response));
    }
    Ok(json!({
        "status": response.status,
        "headers": headers_json(&response.headers),
        "body": decode_body(&response)?,
    }))
}

pub(crate) async fn send_message(
    via: Transport<'_>, params: MessageParams, ctx: &ActionContext,
) -> Result<Value, StepError> {
    let url = parse_url("message.send", &params.url)?;
    let mut payload = json!({ "text": params.text });
    if let Some(blocks) = params.blocks {
        payload["blocks"] = Value::Array(blocks);
    }
    let response = send(
        via,
        Outbound {
            method: reqwest::Method::POST,
            url,
            headers: HeaderMap::new(),
            body: Body::Json(payload),
            timeout: ctx.timeout,
        },
        ctx,
    )
    .await?;
    if !(200..300).contains(&response.status) {
        return Err(status_error(&response));
    }
    Ok(json!({ "status": response.status }))
}

fn parse_url(action: &str, raw: &str) -> Result<Url, StepError> {
    Url::parse(raw).map_err(|e| {
        params_error(
            action,
            vec![("/url".into(), format!("not a valid URL: {e}"))],
        )
    })
}

/// Sends under the policy and reads the whole (bounded) response, all within `timeout`.
async fn send(
    via: Transport<'_>, req: Outbound, ctx: &ActionContext,
) -> Result<ReadResponse, StepError> {
    // IP literals never reach the resolver: check them here, before any connection.
    via.policy.check_url(&req.url).map_err(url_refused_error)?;

    let host = req.url.host_str().unwrap_or_default().to_owned();
    let mut builder = via
        .client
        .request(req.method.clone(), req.url)
        .headers(req.headers.clone());
    // An explicit Idempotency-Key param wins (the author may be forwarding one); otherwise the
    // step's key, stable across retries and redeliveries, lets the peer deduplicate.
    if !req.headers.contains_key("idempotency-key") {
        builder = builder.header("Idempotency-Key", ctx.idempotency_key.as_str());
    }
    builder = match req.body {
        Body::None => builder,
        // `json` sets Content-Type only when the params did not.
        Body::Json(value) => builder.json(&value),
        Body::Text(text) => {
            if !req.headers.contains_key(CONTENT_TYPE) {
                builder = builder.header(CONTENT_TYPE, "text/plain; charset=utf-8");
            }
            builder.body(text)
        }
    };

    let limit = via.policy.max_response_bytes;
    let timeout = req.timeout;
    tracing::debug!(method = %req.method, host = %host, timeout_ms = timeout.as_millis() as u64, "outbound request");
    let exchange = async move {
        let mut response = builder.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body_limited(&mut response, limit)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => StepError::new(
                    "http.response_too_large",
                    format!(
                        "the response body exceeds the limit of {limit} bytes (cut while reading)"
                    ),
                )
                .with_details(json!({ "status": status, "limitBytes": limit })),
                BodyError::Read(e) => transport_error(e),
            })?;
        Ok::<_, StepError>(ReadResponse {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(StepError::timeout(format!(
            "the request to {host} did not complete within {} ms",
            timeout.as_millis()
        ))
        .with_details(json!({ "timeoutMs": timeout.as_millis() as u64 }))),
    }
}

fn url_refused_error(refused: UrlRefused) -> StepError {
    match refused {
        UrlRefused::Address(forbidden) => forbidden_error(&forbidden),
        other => params_error_url(other.to_string()),
    }
}

fn params_error_url(message: String) -> StepError {
    StepError::new("http.invalid_url", message)
}

fn forbidden_error(forbidden: &ForbiddenAddress) -> StepError {
    StepError::new(
        "http.forbidden_address",
        format!("{forbidden} (blocked by the outbound address policy)"),
    )
    .with_details(json!({
        "address": forbidden.address.to_string(),
        "reason": forbidden.reason,
        "host": forbidden.host,
    }))
}

/// Maps a reqwest error, looking through its causes for the policy's own errors first.
fn transport_error(e: reqwest::Error) -> StepError {
    if let Some(forbidden) = find_cause::<ForbiddenAddress>(&e) {
        return forbidden_error(forbidden);
    }
    if let Some(refused) = find_cause::<UrlRefused>(&e) {
        return url_refused_error(refused.clone());
    }
    if let Some(too_many) = find_cause::<TooManyRedirects>(&e) {
        return StepError::new(
            "http.too_many_redirects",
            format!("stopped after {} redirects", too_many.max),
        )
        .with_details(json!({ "maxRedirects": too_many.max }));
    }
    outbound::transport_error(e, &TRANSPORT_CODES)
}

/// Every non-2xx status not expected is retryable: the catalog promises it, and the step's
/// maxRetries decides how far that goes.
fn status_error(response: &ReadResponse) -> StepError {
    let text = String::from_utf8_lossy(&response.body);
    let truncated = truncate_chars(&text, ERROR_BODY_CHARS);
    StepError::retryable(
        "http.status",
        format!("the server answered HTTP {}", response.status),
    )
    .with_details(json!({
        "status": response.status,
        "body": truncated,
        "truncated": truncated.len() < text.len(),
    }))
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        // Repeated headers are joined as RFC 9110 allows (except Set-Cookie, which stays
        // readable anyway since cookies rarely matter in a workflow).
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.as_str().to_owned(), Value::String(joined));
    }
    Value::Object(out)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The response body: JSON when the server says so (and it parses), else text. A JSON body
/// nested deeper than [`MAX_JSON_DEPTH`] fails the step: it could be stored but never read back.
fn decode_body(response: &ReadResponse) -> Result<Value, StepError> {
    if is_json_content_type(&response.headers) {
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        if let Err(e) = check_depth(&response.body, MAX_JSON_DEPTH) {
            return Err(StepError::new(
                "http.response_too_deep",
                format!(
                    "the response body (HTTP {}) is JSON nested deeper than the limit of {} \
                     levels of arrays and objects (level {} starts at line {}, column {}); \
                     it was not stored",
                    response.status,
                    e.limit,
                    e.limit + 1,
                    e.line,
                    e.column
                ),
            )
            .with_details(json!({
                "status": response.status,
                "limit": e.limit,
                "line": e.line,
                "column": e.column,
            })));
        }
        match serde_json::from_slice(&response.body) {
            Ok(value) => return Ok(value),
            // A server that lies about its content type: the text is still useful.
            Err(e) => {
                tracing::debug!(error = %e, "response declared JSON but did not parse; returning text")
            }
        }
    }
    Ok(Value::String(
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}

/// RFC 6901 escaping of one pointer segment.
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
