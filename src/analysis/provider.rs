//! Where measurements come from: the object-safe [`MetricsProvider`] trait (tests use fakes) and
//! [`PrometheusProvider`], an instant query through `prometheus-http-query` with a timeout,
//! custom headers, a bearer token and a CA (rustls on the `ring` provider: no second TLS stack).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;

/// A query's answer: a scalar, or the (labels, value) pairs of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    /// A PromQL scalar.
    Scalar(f64),
    /// An instant vector (possibly empty: no series matched).
    Vector(Vec<(BTreeMap<String, String>, f64)>),
}

impl Sample {
    /// The values, in order.
    pub fn values(&self) -> Vec<f64> {
        match self {
            Sample::Scalar(v) => vec![*v],
            Sample::Vector(v) => v.iter().map(|(_, x)| *x).collect(),
        }
    }
}

/// Why a query gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection (refused, DNS, TLS).
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// Prometheus refused the query (syntax, unknown function, range vector result).
    BadQuery,
    /// Any other failure (HTTP 5xx, an unreadable answer, a bad setting).
    Other,
}

/// A failed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
}

impl ProviderError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Timeout => "timed out",
            ErrorKind::BadQuery => "bad query",
            ErrorKind::Other => "error",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for ProviderError {}

/// A boxed query future.
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = Result<Sample, ProviderError>> + Send + 'a>>;

/// Runs instant queries. Object-safe, so the controller holds an `Arc<dyn MetricsProvider>`.
pub trait MetricsProvider: Send + Sync {
    /// Evaluates `query` at `at` (None: the server's now).
    fn query<'a>(&'a self, query: &'a str, at: Option<Timestamp>) -> QueryFuture<'a>;
}

/// How to reach Prometheus, with secrets already resolved.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PrometheusSettings {
    /// Base URL.
    pub address: String,
    /// Per-query timeout (client side, and sent to Prometheus as `timeout`).
    pub timeout: Duration,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// PEM CA bundle.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for PrometheusSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSettings")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// Default per-query timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus server.
#[derive(Clone)]
pub struct PrometheusProvider {
    client: prometheus_http_query::Client,
    timeout: Duration,
}

impl fmt::Debug for PrometheusProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusProvider")
            .field("address", &self.client.base_url().as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PrometheusProvider {
    /// A provider for `settings`; fails on an invalid address, header or CA.
    pub fn new(settings: &PrometheusSettings) -> Result<Self, ProviderError> {
        // reqwest is built without a default crypto provider: use ring, as kube does. A
        // provider installed earlier (by anything) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |m: String| ProviderError::new(ErrorKind::Other, m);
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(format!("header name {k:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| bad(format!("header {k}: {e}")))?;
            headers.append(name, value);
        }
        if let Some(token) = &settings.bearer_token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| bad("the bearer token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .default_headers(headers)
            .no_proxy();
        if let Some(pem) = &settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(bad("the CA holds no PEM certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if settings.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        let client = prometheus_http_query::Client::from(http, &settings.address)
            .map_err(|e| bad(format!("address {:?}: {e}", settings.address)))?;
        Ok(Self {
            client,
            timeout: settings.timeout,
        })
    }
}

fn classify(e: prometheus_http_query::Error) -> ProviderError {
    use prometheus_http_query::Error as E;
    match &e {
        E::Prometheus(p) if p.is_timeout() || p.is_canceled() => {
            ProviderError::new(ErrorKind::Timeout, p.to_string())
        }
        E::Prometheus(p) if p.is_bad_data() || p.is_execution() => {
            ProviderError::new(ErrorKind::BadQuery, p.message())
        }
        E::Client(c) => match c.inner() {
            Some(r) if r.is_timeout() => ProviderError::new(ErrorKind::Timeout, chain(r)),
            Some(r) if r.is_connect() => ProviderError::new(ErrorKind::Unreachable, chain(r)),
            Some(r) => ProviderError::new(ErrorKind::Other, chain(r)),
            None => ProviderError::new(ErrorKind::Other, e.to_string()),
        },
        _ => ProviderError::new(ErrorKind::Other, e.to_string()),
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl MetricsProvider for PrometheusProvider {
    fn query<'a>(&'a self, query: &'a str, at: Option<Timestamp>) -> QueryFuture<'a> {
        Box::pin(async move {
            let mut q = self
                .client
                .query(query)
                .timeout(self.timeout.as_millis().min(i64::MAX as u128) as i64);
            if let Some(t) = at {
                q = q.at(t.as_second());
            }
            let res = q.post().await.map_err(classify)?;
            use prometheus_http_query::response::Data;
            match res.into_inner().0 {
                Data::Scalar(s) => Ok(Sample::Scalar(s.value())),
                Data::Vector(v) => Ok(Sample::Vector(
                    v.into_iter()
                        .map(|iv| {
                            let (labels, s) = iv.into_inner();
                            (labels.into_iter().collect(), s.value())
                        })
                        .collect(),
                )),
                Data::Matrix(_) => Err(ProviderError::new(
                    ErrorKind::BadQuery,
                    "the query returns a range vector: use an instant vector or a scalar (e.g. wrap it in rate() or last_over_time())",
                )),
            }
        })
    }
}
