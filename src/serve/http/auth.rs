//! Who may use the HTTP side: with `[serve] token` set, every route but `/healthz`, `/readyz`
//! and `/login` asks for `Authorization: Bearer TOKEN` or the cookie `/login` sets; and every
//! request that changes something must come from this server's own pages or a script, never
//! from another site (its `Origin` and `Sec-Fetch-Site` say where it came from; the
//! dashboard's forms also carry a per-process CSRF secret, checked in `dashboard.rs`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{ApiError, App, dashboard};

/// The cookie the login form sets: the token itself, HttpOnly and SameSite=Strict.
const COOKIE: &str = "pulpo_token";

/// A random secret, hex: 128 bits from the system's generator.
pub(super) fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    if let Err(err) =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        // Without randomness there is no CSRF secret to trust: refuse every form, not none.
        tracing::error!(error = %err, "cannot read /dev/urandom: the dashboard's forms will be refused");
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request carries: a bearer header, else the login cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
}

/// Whether a request comes from another site: its `Sec-Fetch-Site` says so, or its `Origin`
/// names another host than the one it was sent to.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// The middleware in front of the API, the dashboard and `/metrics`.
pub(super) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && cross_site(headers) {
        return ApiError(
            StatusCode::FORBIDDEN,
            "refused: a cross-site request may not change jobs or tubes (send it from the \
             dashboard itself, or from a script without an Origin header)"
                .to_owned(),
        )
        .into_response();
    }
    if let Some(token) = &app.token
        && !presented(headers).is_some_and(|given| same_secret(&given, token))
    {
        let wants_html = request.uri().path() == "/"
            || (!request.uri().path().starts_with("/api") && request.uri().path() != "/metrics");
        if wants_html && !changes {
            return Redirect::to("/login").into_response();
        }
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send the [serve] token as `Authorization: Bearer TOKEN`".to_owned(),
        )
        .into_response();
    }
    next.run(request).await
}

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new().route("/login", axum::routing::get(login_page).post(login))
}

async fn login_page() -> maud::Markup {
    login_form(None)
}

fn login_form(problem: Option<&str>) -> maud::Markup {
    dashboard::page(
        "Sign in",
        html! {
            section.card.narrow {
                h2 { "Sign in" }
                p.muted { "This server asks for its " code { "[serve] token" } "." }
                @if let Some(problem) = problem { p.flash.bad { (problem) } }
                form method="post" action="/login" {
                    label { "Token " input type="password" name="token" autofocus; }
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The login form's fields.
#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Login>,
) -> Response {
    if cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            login_form(Some("refused: a cross-site sign-in")),
        )
            .into_response();
    }
    match &app.token {
        Some(token) if same_secret(&form.token, token) => {
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", form.token);
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Some(_) => (StatusCode::UNAUTHORIZED, login_form(Some("wrong token"))).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_origin_is_cross_site_and_the_same_is_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&headers));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&headers));
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_site(&headers));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&headers));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", ""));
    }
}
