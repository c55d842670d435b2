//! `server.api_token`: every endpoint but the health probes needs `Authorization: Bearer`.
//!
//! Without a token in the config nothing is checked (the config refuses to listen beyond
//! loopback then). A missing or wrong token is answered 401 with `WWW-Authenticate:
//! Bearer` and a JSON error that says what to send; the answer is the same for both, so
//! it tells a guesser nothing.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use super::error;
use crate::config::ApiToken;

/// Paths answered without a token: liveness and readiness probes carry no data.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// `/metrics`, open too with `metrics.public: true`.
pub const METRICS_PATH: &str = "/metrics";

/// Who may call the API: anyone (no token configured) or holders of the token.
#[derive(Debug, Clone, Default)]
pub struct Access {
    token: Option<Arc<ApiToken>>,
    public_metrics: bool,
}

impl Access {
    /// Access for the configured token, if any; `public_metrics` opens `/metrics` too.
    pub fn new(token: Option<ApiToken>, public_metrics: bool) -> Self {
        Access {
            token: token.map(Arc::new),
            public_metrics,
        }
    }

    /// Whether a token is required at all.
    pub fn is_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `path` (a route pattern) is served without a token.
    pub fn is_open(&self, path: &str) -> bool {
        !self.is_required()
            || OPEN_PATHS.contains(&path)
            || (self.public_metrics && path == METRICS_PATH)
    }

    /// `None` when `req` may go on; else the 401 to answer.
    pub fn denial(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let token = self.token.as_ref()?;
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match given {
            Some(given) if token.matches(given.as_bytes()) => None,
            _ => Some(unauthorized()),
        }
    }
}

/// The credentials of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, as RFC 6750 says).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized() -> HttpResponse {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        "this API needs the token from `server.api_token`: send `Authorization: Bearer <token>`",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"mydia-plugins\""),
    );
    res
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const TOKEN: &str = "s3cret-token-0123456789";

    fn access() -> Access {
        Access::new(Some(ApiToken::new(TOKEN).unwrap()), false)
    }

    #[test]
    fn the_right_bearer_token_passes_and_anything_else_is_401() {
        let ok = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("bearer  {TOKEN}")))
            .to_http_request();
        assert!(access().denial(&ok).is_none());
        for value in [
            None,
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {TOKEN}")),
            Some("Bearer".to_owned()),
            Some(TOKEN.to_owned()),
        ] {
            let mut req = TestRequest::default();
            if let Some(v) = &value {
                req = req.insert_header((header::AUTHORIZATION, v.as_str()));
            }
            let res = access().denial(&req.to_http_request()).unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{value:?}");
            assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[test]
    fn without_a_token_everything_passes() {
        let req = TestRequest::default().to_http_request();
        assert!(Access::default().denial(&req).is_none());
        assert!(!Access::default().is_required());
        assert!(Access::default().is_open("/api/v1/plugins"));
    }

    #[test]
    fn probes_are_open_and_metrics_only_when_public() {
        assert!(access().is_open("/healthz") && access().is_open("/readyz"));
        assert!(!access().is_open("/metrics") && !access().is_open("/api/v1/events"));
        let public = Access::new(Some(ApiToken::new(TOKEN).unwrap()), true);
        assert!(public.is_open("/metrics") && !public.is_open("/api/v1/events"));
    }
}
