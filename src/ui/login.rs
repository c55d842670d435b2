//! Signing in to the page: the API token typed once becomes a session cookie.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::{access_of, render};
use crate::api::session;

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct Login {
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path on this site only (never `//host`).
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// `POST /ui/login`: the token typed once becomes a session cookie.
pub async fn login(req: HttpRequest, form: web::Form<Login>) -> HttpResponse {
    let Some(access) = access_of(&req).filter(|a| a.is_required()) else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .finish();
    };
    if !access.token_matches(&form.token) {
        tracing::warn!(target: "api", "sign-in to the page with a wrong token");
        let mut r = render(
            "login.html",
            context! { title => "Sign in", page => "", version => env!("CARGO_PKG_VERSION"), next => safe_next(&form.next), failed => true },
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let (id, _csrf) = access.sessions().start();
    let cookie = Cookie::build(session::COOKIE, id)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(CookieAge::seconds(session::LIFETIME.as_secs() as i64))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, safe_next(&form.next)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next("/activity?plugin=ntfy"), "/activity?plugin=ntfy");
        for bad in ["//evil.example", "https://evil.example", "", "/\\evil"] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }
}
