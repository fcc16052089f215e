//! The outbound policy of `http.request` and `message.send`: which addresses a workflow may make
//! the engine connect to, how many redirects it follows and how much of a response it reads.
//!
//! Workflow authors choose URLs, so every outbound request is a potential SSRF. The policy is
//! enforced where it cannot be bypassed:
//! * on the addresses a host name resolves to, inside the client's DNS resolver, so the address
//!   that is checked is the address that is connected (no DNS-rebinding window between a check
//!   and the connect);
//! * on IP-literal hosts before sending, because hyper connects to those without resolving;
//! * on every redirect hop (a custom redirect policy re-checks literal hosts; names go through
//!   the resolver again);
//! * proxies are disabled, otherwise the resolver would only ever see the proxy's name.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};
use wf_core::error::StepError;

/// 5 MiB: big enough for API answers, small enough to keep step records and memory bounded.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 5 * 1024 * 1024;
/// Browsers allow ~20; APIs rarely need more than a couple.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// What outbound requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), loopback and
    /// unspecified addresses. Link-local and cloud metadata addresses are refused regardless.
    pub allow_private: bool,
    /// Responses longer than this are cut while streaming and fail the step.
    pub max_response_bytes: usize,
    /// Redirects followed before failing the step.
    pub max_redirects: usize,
}

impl Default for OutboundPolicy {
    /// The strict policy: a forgotten configuration must not open the private network.
    fn default() -> Self {
        Self::aws()
    }
}

impl OutboundPolicy {
    /// `wf dev` on a developer machine: local services (a webhook receiver on localhost, a
    /// database UI on the LAN) are the point of trying workflows locally.
    pub fn local() -> Self {
        Self {
            allow_private: true,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }

    /// Lambda inside a VPC: private addresses are other people's services.
    pub fn aws() -> Self {
        Self {
            allow_private: false,
            ..Self::local()
        }
    }

    /// Whether the engine may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ForbiddenAddress> {
        match classify(ip) {
            AddressClass::Public => Ok(()),
            AddressClass::Private(_) if self.allow_private => Ok(()),
            AddressClass::Private(reason) | AddressClass::Forbidden(reason) => {
                Err(ForbiddenAddress {
                    address: ip,
                    reason,
                    host: None,
                })
            }
        }
    }

    /// Checks a URL before it is requested: the scheme, and the host when it is an IP literal
    /// (names are checked by the resolver at connect time).
    pub fn check_url(&self, url: &Url) -> Result<(), UrlRefused> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(UrlRefused::Scheme(other.to_owned())),
        }
        match url.host() {
            None => Err(UrlRefused::NoHost),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map_err(UrlRefused::Address),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map_err(UrlRefused::Address),
        }
    }

    /// A client builder (rustls) that enforces this policy: filtering DNS resolver, bounded and
    /// re-checked redirects, no proxies. `BuiltinActions` must be given a client built from it.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let policy = *self;
        reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver {
                policy,
                hosts: None,
            }))
            .redirect(redirect::Policy::custom(move |attempt| {
                // `previous` holds every URL requested so far, the original one included,
                // so it is the number of redirects this one would make beyond the limit.
                if attempt.previous().len() > policy.max_redirects {
                    let max = policy.max_redirects;
                    return attempt.error(TooManyRedirects { max });
                }
                match policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }))
    }

    /// [`Self::client_builder`] whose resolver answers `hosts` (name → addresses) itself,
    /// like curl's `--resolve`, and the system resolver for other names; the policy filters
    /// both alike. Lets tests name a host that resolves to a forbidden address.
    #[cfg(feature = "test-support")]
    pub fn client_builder_with_hosts(
        &self, hosts: std::collections::HashMap<String, Vec<IpAddr>>,
    ) -> reqwest::ClientBuilder {
        self.client_builder().dns_resolver(Arc::new(PolicyResolver {
            policy: *self,
            hosts: Some(Arc::new(hosts)),
        }))
    }

    /// `client_builder().build()`.
    pub fn build_client(&self) -> Result<reqwest::Client, reqwest::Error> {
        self.client_builder().build()
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to connect to {address}{}: {reason}", host.as_ref().map(|h| format!(" (resolved from {h})")).unwrap_or_default())]
pub struct ForbiddenAddress {
    pub address: IpAddr,
    pub reason: &'static str,
    /// The host name that resolved to it (None for IP literals).
    pub host: Option<String>,
}

/// Why a URL is refused before any connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("unsupported URL scheme {0:?} (only http and https)")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
    #[error(transparent)]
    Address(ForbiddenAddress),
}

/// The redirect bound was reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {max} redirects")]
pub struct TooManyRedirects {
    pub max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressClass {
    Public,
    /// Allowed only with `allow_private`.
    Private(&'static str),
    /// Never allowed.
    Forbidden(&'static str),
}

fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if a == 169 && b == 254 {
        // 169.254.169.254 is the instance metadata service (credentials!) on every cloud.
        AddressClass::Forbidden("link-local / cloud metadata address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        AddressClass::Forbidden("not a unicast address")
    } else if ip.is_loopback() {
        AddressClass::Private("loopback address")
    } else if a == 0 {
        // 0.0.0.0 reaches the local host on Linux.
        AddressClass::Private("unspecified address")
    } else if ip.is_private() {
        AddressClass::Private("private address")
    } else if a == 100 && (64..128).contains(&b) {
        // Carrier-grade NAT space, also used inside some VPC setups.
        AddressClass::Private("shared (carrier-grade NAT) address")
    } else {
        AddressClass::Public
    }
}

/// The AWS Nitro IPv6 instance metadata endpoint.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let seg = ip.segments();
    // Forms that embed an IPv4 address reach that address: judge the embedded one, so
    // ::ffff:169.254.169.254 is no way around the metadata rule.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        // The deprecated IPv4-compatible form ::a.b.c.d (::/96, RFC 4291 2.5.5.1): stacks that
        // still route it reach a.b.c.d, so [::169.254.169.254] is the metadata address.
        return classify_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        // NAT64 well-known prefix 64:ff9b::/96.
        return classify_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    if seg[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        return classify_v4(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        ));
    }
    if ip == AWS_METADATA_V6 {
        AddressClass::Forbidden("cloud metadata address")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        AddressClass::Forbidden("link-local address")
    } else if ip.is_multicast() {
        AddressClass::Forbidden("not a unicast address")
    } else if ip.is_loopback() {
        AddressClass::Private("loopback address")
    } else if ip.is_unspecified() {
        AddressClass::Private("unspecified address")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private("unique local (private) address")
    } else {
        AddressClass::Public
    }
}

/// Resolves with the system resolver, then drops the addresses the policy refuses.
struct PolicyResolver {
    policy: OutboundPolicy,
    /// Names answered without the system resolver (tests only).
    hosts: Option<Arc<std::collections::HashMap<String, Vec<IpAddr>>>>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        let fixed = self.hosts.as_ref().and_then(|h| h.get(&host).cloned());
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = match fixed {
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut allowed: Vec<SocketAddr> = Vec::new();
            let mut refused: Option<ForbiddenAddress> = None;
            for addr in resolved {
                match policy.check_ip(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(e) => {
                        tracing::debug!(host = %host, address = %addr.ip(), reason = e.reason, "resolved address refused");
                        refused.get_or_insert(e);
                    }
                }
            }
            if allowed.is_empty() {
                let err: Box<dyn StdError + Send + Sync> = match refused {
                    Some(e) => Box::new(ForbiddenAddress {
                        host: Some(host),
                        ..e
                    }),
                    None => format!("{host} resolved to no address").into(),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The first error of type `T` in `err`'s source chain (policy errors arrive wrapped by
/// reqwest and hyper).
pub(crate) fn find_cause<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The step error codes a caller of [`transport_error`] gives each kind of failure.
pub(crate) struct TransportCodes {
    /// The connection could not be made (retryable).
    pub connect: &'static str,
    /// The request could not be built (permanent).
    pub invalid: &'static str,
    /// A redirect went wrong (permanent); `None` counts it with `other`.
    pub redirect: Option<&'static str>,
    /// Resets, truncated bodies, protocol errors: usually transient (retryable).
    pub other: &'static str,
}

/// What a reqwest failure means for a step. The message leaves the URL out: it may carry a
/// secret (a token in a webhook URL, credentials in a proxy or gateway URL).
pub(crate) fn transport_error(e: reqwest::Error, codes: &TransportCodes) -> StepError {
    let e = e.without_url();
    let message = wf_core::error::error_chain(&e);
    if e.is_timeout() {
        StepError::timeout(message)
    } else if e.is_connect() {
        StepError::retryable(codes.connect, message)
    } else if e.is_builder() {
        StepError::new(codes.invalid, message)
    } else if let Some(code) = codes.redirect.filter(|_| e.is_redirect()) {
        StepError::new(code, message)
    } else {
        StepError::retryable(codes.other, message)
    }
}

/// Why a body could not be read in full.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("response body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the response body failed: {0}")]
    Read(#[from] reqwest::Error),
}

/// Reads the body, stopping as soon as it exceeds `limit` (a declared Content-Length over the
/// limit fails before reading anything).
pub(crate) async fn read_body_limited(
    response: &mut reqwest::Response, limit: usize,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("test literal"))
    }
    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("test literal"))
    }

    #[test]
    fn metadata_and_link_local_are_refused_even_locally() {
        let local = OutboundPolicy::local();
        for ip in [
            v4("169.254.169.254"),
            v4("169.254.0.1"),
            v6("fe80::1"),
            v6("fd00:ec2::254"),
            v6("::ffff:169.254.169.254"),
            v6("64:ff9b::a9fe:a9fe"),
            v6("2002:a9fe:a9fe::1"),
            // IPv4-compatible (deprecated ::/96) forms of the metadata address.
            v6("::169.254.169.254"),
            v6("::a9fe:a9fe"),
        ] {
            assert!(local.check_ip(ip).is_err(), "{ip} must be refused");
        }
    }

    #[test]
    fn private_ranges_depend_on_the_policy() {
        let (local, aws) = (OutboundPolicy::local(), OutboundPolicy::aws());
        for ip in [
            v4("10.1.2.3"),
            v4("172.16.0.1"),
            v4("172.31.255.255"),
            v4("192.168.1.1"),
            v4("127.0.0.1"),
            v4("0.0.0.0"),
            v4("100.64.0.1"),
            v6("::1"),
            v6("::"),
            v6("fc00::1"),
            v6("fd12:3456::1"),
            v6("::ffff:10.0.0.1"),
        ] {
            assert!(local.check_ip(ip).is_ok(), "{ip} allowed locally");
            assert!(aws.check_ip(ip).is_err(), "{ip} refused on aws");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let aws = OutboundPolicy::aws();
        for ip in [
            v4("1.1.1.1"),
            v4("172.32.0.1"),
            v4("100.128.0.1"),
            v6("2606:4700::1111"),
        ] {
            assert!(aws.check_ip(ip).is_ok(), "{ip} is public");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_hosts() {
        let aws = OutboundPolicy::aws();
        let url = |s: &str| Url::parse(s).expect("test url");
        assert!(matches!(
            aws.check_url(&url("ftp://example.com/")),
            Err(UrlRefused::Scheme(_))
        ));
        assert!(matches!(
            aws.check_url(&url("file:///etc/passwd")),
            Err(UrlRefused::Scheme(_))
        ));
        assert!(aws.check_url(&url("https://example.com/")).is_ok());
        // WHATWG parsing normalises numeric hosts, so these are literals too.
        assert!(aws.check_url(&url("http://2130706433/")).is_err());
        assert!(aws.check_url(&url("http://0xa9.254.169.254/")).is_err());
        assert!(aws.check_url(&url("http://[::ffff:127.0.0.1]/")).is_err());
        assert!(aws.check_url(&url("http://[::127.0.0.1]/")).is_err());
        let local = OutboundPolicy::local();
        for metadata in [
            "http://[::169.254.169.254]/",
            "http://[::a9fe:a9fe]/",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
        ] {
            assert!(
                matches!(local.check_url(&url(metadata)), Err(UrlRefused::Address(_))),
                "{metadata}"
            );
        }
        // ::1 and :: stay loopback and unspecified, not an embedded 0.0.0.x.
        assert_eq!(
            local.check_ip(v6("::1")),
            Ok(()),
            "loopback is private, allowed locally"
        );
    }
}
