//! How `wf deploy` authenticates to the management API: a bearer token, AWS SigV4 (service
//! `lambda`: a function URL with `AWS_IAM` auth), or nothing (`wf dev` on loopback).

use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use tokio::sync::Mutex;

/// The signing name of Lambda function URLs.
const SERVICE: &str = "lambda";
/// Credentials that expire sooner than this are fetched again before signing.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// What every request carries.
pub enum Auth {
    /// `--no-sign`: nothing (e.g. `wf dev`).
    None,
    /// `Authorization: Bearer <token>` (`--token` or `WF_API_TOKEN`).
    Bearer(String),
    /// SigV4 with the default AWS credential chain.
    SigV4(Signer),
}

impl Auth {
    /// For the header line of the report: how requests are authenticated.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "unsigned".into(),
            Auth::Bearer(_) => "bearer token".into(),
            Auth::SigV4(s) => format!("AWS SigV4, service {SERVICE}, region {}", s.region),
        }
    }

    pub fn is_sigv4(&self) -> bool {
        matches!(self, Auth::SigV4(_))
    }
}

/// Signs requests with credentials from the default chain (environment, profile, SSO, web
/// identity, container, instance metadata), fetched once and again shortly before they expire.
pub struct Signer {
    provider: SharedCredentialsProvider,
    credentials: Mutex<Credentials>,
    region: String,
}

/// Why there is no way to sign.
#[derive(Debug)]
pub enum AuthError {
    /// No region in `--region`, `AWS_REGION`, the function URL's host or the AWS config.
    NoRegion,
    /// The credential chain found nothing (its explanation).
    NoCredentials(String),
}

impl Signer {
    /// Region first (`--region`/`AWS_REGION` as `region`, else the function URL's host, else
    /// the AWS profile's), then credentials.
    pub async fn from_environment(region: Option<String>, host: &str) -> Result<Self, AuthError> {
        let region = match region.or_else(|| region_from_host(host)) {
            Some(r) => r,
            // The SDK's own chain (AWS_PROFILE's region, instance metadata), through the loader
            // so it gets the HTTP client (the workspace has no default one).
            None => wf_aws::config::sdk_loader()
                .load()
                .await
                .region()
                .map(|r| r.to_string())
                .ok_or(AuthError::NoRegion)?,
        };
        let config = wf_aws::config::sdk_loader()
            .region(Region::new(region.clone()))
            .load()
            .await;
        let provider = config.credentials_provider().ok_or_else(|| {
            AuthError::NoCredentials("the AWS configuration has no credential provider".into())
        })?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| AuthError::NoCredentials(super::api::error_chain(&e)))?;
        Ok(Self {
            provider,
            credentials: Mutex::new(credentials),
            region,
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token` with temporary
    /// credentials) for a request with exactly these `headers` and `body`.
    pub async fn sign(
        &self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = self.current_credentials().await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("cannot sign: {}", super::api::error_chain(&e)))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| format!("cannot sign: {}", super::api::error_chain(&e)))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    async fn current_credentials(&self) -> Result<Credentials, String> {
        let mut held = self.credentials.lock().await;
        let expiring = held
            .expiry()
            .is_some_and(|t| t <= SystemTime::now() + REFRESH_BEFORE_EXPIRY);
        if expiring {
            *held = self.provider.provide_credentials().await.map_err(|e| {
                format!(
                    "cannot refresh the AWS credentials: {}",
                    super::api::error_chain(&e)
                )
            })?;
        }
        Ok(held.clone())
    }
}

/// The region of a Lambda function URL host, `<url-id>.lambda-url.<region>.on.aws`.
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host.strip_suffix(".on.aws")?;
    let (_, region) = rest.split_once(".lambda-url.")?;
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_a_function_url_host_only() {
        assert_eq!(
            region_from_host("abcdefghij1234567890.lambda-url.eu-west-1.on.aws").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_host("X.LAMBDA-URL.us-east-2.ON.AWS.").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_from_host("127.0.0.1"), None);
        assert_eq!(region_from_host("api.example.com"), None);
        assert_eq!(region_from_host("x.lambda-url..on.aws"), None);
        assert_eq!(region_from_host("x.lambda-url.eu/west.on.aws"), None);
        assert_eq!(region_from_host("lambda-url.eu-west-1.on.aws"), None);
    }
}
