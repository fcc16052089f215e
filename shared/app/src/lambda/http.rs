//! The HTTP functions: the same axum routers as `wf dev`, served by `lambda_http` from Lambda
//! function URLs. What only Lambda knows (request id, caller IP, the IAM caller of an AWS_IAM
//! URL) is read here, in one middleware, and handed on as a neutral [`RequestInfo`] extension
//! and the tracing span; handlers never see Lambda types.
//!
//! The webhook function serves only `/hooks/{workflowId}/{token}` (its URL is public: tokens and
//! signatures authenticate callers). The api function serves the whole router; with
//! `WF_API_AUTH=bearer` (function URL auth NONE) every request but `/health` needs
//! `Authorization: Bearer <token>`, the token coming from `WF_API_TOKEN` or the SSM parameter
//! named by `WF_API_TOKEN_PARAMETER`. With `WF_API_AUTH=iam` (the default) AWS checks SigV4
//! before the function runs.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use subtle::ConstantTimeEq;
use tracing::{Instrument, error, info_span};

use crate::aws::{AwsAppError, AwsContext, ssm_parameter};
use crate::http::{ApiError, AppState, hooks_router, router};

/// Environment variables of the api function's authentication.
pub mod env {
    /// `iam` (default: the function URL checks SigV4) or `bearer`.
    pub const API_AUTH: &str = "WF_API_AUTH";
    /// The bearer token itself (local runs; on AWS prefer the SSM parameter).
    pub const API_TOKEN: &str = "WF_API_TOKEN";
    /// SSM SecureString holding the bearer token.
    pub const API_TOKEN_PARAMETER: &str = "WF_API_TOKEN_PARAMETER";
}

/// Facts about the request that only Lambda knows, for handlers and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    /// The IAM principal of a SigV4-signed request to an AWS_IAM function URL.
    pub caller_arn: Option<String>,
}

impl RequestInfo {
    /// Read the function URL's request context (absent outside Lambda: all None).
    pub fn from_request(req: &Request) -> Self {
        let mut info = RequestInfo::default();
        // Only the API Gateway v2 shape (what function URLs send) is compiled in; more variants
        // appear if another crate turns on lambda_http's other features.
        #[allow(irrefutable_let_patterns)]
        if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
            info.request_id = ctx.request_id.clone();
            info.source_ip = ctx.http.source_ip.clone();
            info.caller_arn = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.clone());
        }
        if info.request_id.is_none() {
            info.request_id = req.lambda_context_ref().map(|c| c.request_id.clone());
        }
        info
    }
}

/// The one middleware that reads Lambda's request context.
async fn lambda_context(mut req: Request, next: Next) -> Response {
    let info = RequestInfo::from_request(&req);
    let span = info_span!(
        "request",
        request_id = info.request_id.as_deref().unwrap_or(""),
        source_ip = info.source_ip.as_deref().unwrap_or(""),
        caller = info.caller_arn.as_deref().unwrap_or(""),
    );
    req.extensions_mut().insert(info);
    next.run(req).instrument(span).await
}

/// How the api function authenticates callers.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// The function URL (AuthType AWS_IAM) authenticated the caller already.
    Iam,
    /// `Authorization: Bearer <token>`; `None` = bearer mode without a token: every request is
    /// refused with 503 (fail closed) and the reason is logged.
    Bearer(Option<String>),
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAuth::Iam => f.write_str("Iam"),
            ApiAuth::Bearer(t) => {
                write!(f, "Bearer({})", if t.is_some() { "***" } else { "unset" })
            }
        }
    }
}

impl ApiAuth {
    /// From `WF_API_AUTH`, the token from `WF_API_TOKEN` or else the SSM parameter
    /// `WF_API_TOKEN_PARAMETER` (read once, at init).
    pub async fn from_env(ctx: &AwsContext) -> Result<Self, AwsAppError> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match get(env::API_AUTH)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("iam" | "aws_iam") => Ok(ApiAuth::Iam),
            Some("bearer" | "none") => {
                if let Some(token) = get(env::API_TOKEN) {
                    return Ok(ApiAuth::Bearer(Some(token.trim().to_string())));
                }
                let Some(name) = get(env::API_TOKEN_PARAMETER) else {
                    error!(
                        "WF_API_AUTH=bearer but neither WF_API_TOKEN nor WF_API_TOKEN_PARAMETER is set: every request is refused"
                    );
                    return Ok(ApiAuth::Bearer(None));
                };
                match ssm_parameter(&ctx.ssm, &name).await {
                    Ok(token) => Ok(ApiAuth::Bearer(Some(token.trim().to_string()))),
                    Err(e) => {
                        error!(parameter = %name, error = %e, "cannot read the api token: every request is refused");
                        Ok(ApiAuth::Bearer(None))
                    }
                }
            }
            Some(other) => Err(AwsAppError::Invalid {
                name: env::API_AUTH,
                message: format!("{other:?} is not iam or bearer"),
            }),
        }
    }
}

async fn bearer_auth(State(auth): State<Arc<ApiAuth>>, req: Request, next: Next) -> Response {
    let ApiAuth::Bearer(expected) = &*auth else {
        return next.run(req).await;
    };
    // Liveness, and the console's static files (no data: a browser cannot add a header to a
    // page load; the console then sends the token with every API call).
    let public = req.uri().path() == "/health"
        || (req.method() == axum::http::Method::GET
            && crate::http::console::is_console_asset(req.uri().path()));
    if public {
        return next.run(req).await;
    }
    let Some(expected) = expected else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_not_configured",
            "the API's bearer token is not configured (WF_API_TOKEN_PARAMETER); see the function's logs",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match given {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(req).await
        }
        other => {
            let message = if other.is_some() {
                "the bearer token is wrong"
            } else {
                "send Authorization: Bearer <token> (the SSM parameter in the stack's ApiTokenParameter output)"
            };
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// What the webhook function serves.
pub fn webhook_router(state: AppState) -> Router {
    let metrics = (state.app.clone(), super::Function::Webhook);
    hooks_router(state)
        .layer(middleware::from_fn(lambda_context))
        .layer(middleware::from_fn_with_state(metrics, emit_metrics_after))
}

/// What the api function serves.
pub fn api_router(state: AppState, auth: ApiAuth) -> Router {
    let metrics = (state.app.clone(), super::Function::Api);
    router(state)
        .layer(middleware::from_fn_with_state(Arc::new(auth), bearer_auth))
        .layer(middleware::from_fn(lambda_context))
        .layer(middleware::from_fn_with_state(metrics, emit_metrics_after))
}

/// Logs the request's metrics as EMF once it is answered.
async fn emit_metrics_after(
    State((app, function)): State<(Arc<crate::app::App>, super::Function)>, req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    super::emit_metrics(&app, function);
    response
}
