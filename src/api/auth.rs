//! `server.api_token`: every endpoint but the health probes needs `Authorization: Bearer`.
//!
//! Without a token in the config nothing is checked (the config refuses to listen beyond
//! loopback then). A missing or wrong token is answered 401 with `WWW-Authenticate:
//! Bearer` and a JSON error that says what to send; the answer is the same for both, so
//! it tells a guesser nothing. The web page's session cookie (see [`super::session`])
//! counts as the token, with its CSRF token required on anything but GET and HEAD.

use std::sync::Arc;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use super::error;
use super::session::{Sessions, COOKIE, CSRF_HEADER};
use crate::config::ApiToken;

/// Paths answered without a token: liveness and readiness probes carry no data.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The page's own paths: a page without a session answers its sign-in form, so these
/// pass the token check and decide themselves; the assets hold nothing secret.
pub const PAGE_PATHS: &[&str] = &[
    "/",
    "/activity",
    "/hooks",
    "/try",
    "/plugins/{name}",
    "/ui/login",
    "/assets/{file}",
];

/// `/metrics`, open too with `metrics.public: true`.
pub const METRICS_PATH: &str = "/metrics";

/// Who may call the API: anyone (no token configured) or holders of the token.
#[derive(Debug, Clone, Default)]
pub struct Access {
    token: Option<Arc<ApiToken>>,
    public_metrics: bool,
    sessions: Arc<Sessions>,
}

impl Access {
    /// Access for the configured token, if any; `public_metrics` opens `/metrics` too.
    pub fn new(token: Option<ApiToken>, public_metrics: bool) -> Self {
        Access {
            token: token.map(Arc::new),
            public_metrics,
            sessions: Arc::default(),
        }
    }

    /// Whether `token` is the configured token (false when none is configured).
    pub fn token_matches(&self, token: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.matches(token.trim().as_bytes()))
    }

    /// The page's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The session `req` carries in its cookie, if it is live: its id.
    pub fn session_of(&self, req: &HttpRequest) -> Option<String> {
        let id = req.cookie(COOKIE)?.value().to_owned();
        self.sessions.csrf(&id).map(|_| id)
    }

    /// Whether a token is required at all.
    pub fn is_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `path` (a route pattern) is served without a token.
    pub fn is_open(&self, path: &str) -> bool {
        !self.is_required()
            || OPEN_PATHS.contains(&path)
            || PAGE_PATHS.contains(&path)
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
        if given.is_some_and(|given| token.matches(given.as_bytes())) {
            return None;
        }
        let Some(session) = self.session_of(req) else {
            return Some(unauthorized());
        };
        let safe = matches!(*req.method(), Method::GET | Method::HEAD);
        let csrf = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if safe || csrf.is_some_and(|c| self.sessions.csrf_matches(&session, c)) {
            return None;
        }
        Some(error(
            StatusCode::FORBIDDEN,
            "this change came with the page's session but without its CSRF token; reload the page and try again",
        ))
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
            let res = access().denial(&req.to_http_request()).expect("refused");
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
    fn the_page_session_counts_as_the_token_and_changes_need_its_csrf_token() {
        let a = access();
        let (id, csrf) = a.sessions().start();
        let cookie = actix_web::cookie::Cookie::new(COOKIE, id.clone());
        let get = TestRequest::default()
            .cookie(cookie.clone())
            .to_http_request();
        assert!(a.denial(&get).is_none());
        let post = |csrf: Option<&str>| {
            let mut r = TestRequest::post().cookie(cookie.clone());
            if let Some(c) = csrf {
                r = r.insert_header((CSRF_HEADER, c));
            }
            a.denial(&r.to_http_request())
        };
        assert!(post(Some(&csrf)).is_none());
        assert_eq!(post(None).unwrap().status(), StatusCode::FORBIDDEN);
        assert_eq!(post(Some(&id)).unwrap().status(), StatusCode::FORBIDDEN);
        let stale = TestRequest::default()
            .cookie(actix_web::cookie::Cookie::new(COOKIE, "0".repeat(64)))
            .to_http_request();
        assert_eq!(a.denial(&stale).unwrap().status(), StatusCode::UNAUTHORIZED);
        a.sessions().end(&id);
        assert_eq!(a.denial(&get).unwrap().status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn probes_are_open_and_metrics_only_when_public() {
        assert!(access().is_open("/healthz") && access().is_open("/readyz"));
        assert!(!access().is_open("/metrics") && !access().is_open("/api/v1/events"));
        let public = Access::new(Some(ApiToken::new(TOKEN).unwrap()), true);
        assert!(public.is_open("/metrics") && !public.is_open("/api/v1/events"));
    }
}
