//! # The routes every application mounts
//!
//! `GET/POST /login`, `POST /logout`, `POST /lang` (the language switch),
//! `GET /static/style.css` (the one stylesheet, built into the binary).
//! [`layers`] wraps the application's whole router: a body limit (a larger
//! body gets a 413 page), and security headers on every answer (a strict
//! Content-Security-Policy: no script, style or image from anywhere but
//! the app itself; no framing; no referrer; no caching of pages).

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::accounts::SignInError;
use crate::error::WebError;
use crate::extract::{Posted, SignedIn};
use crate::i18n::{Lang, Tr};
use crate::layout::Page;
use crate::sessions::Session;
use crate::{Web, cookies, format};

pub const STYLESHEET: &str = include_str!("../static/style.css");

/// The shared routes, for an application's state `S` that holds a [`Web`].
pub fn routes<S>() -> Router<S>
where
    Web: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/login", get(login_form::<S>).post(login::<S>))
        .route("/logout", post(logout::<S>))
        .route("/lang", post(set_lang::<S>))
        .route("/static/style.css", get(stylesheet))
        .merge(crate::admin::routes())
}

/// Wraps an application's router: body limit and security headers.
pub fn layers<S>(router: Router<S>, body_limit: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(security_headers))
}

/// The 404 page, for an application's fallback.
pub async fn not_found() -> WebError {
    WebError::NotFound
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPartial<'a> {
    tr: Tr,
    csrf: &'a str,
    name: &'a str,
    error: Option<String>,
}

/// The visitor's session, or a new anonymous one (with its cookie).
fn session_of(web: &Web, headers: &HeaderMap) -> (Session, Option<String>) {
    match cookies::get(headers, cookies::SESSION).and_then(|id| web.sessions().get(&id)) {
        Some(s) => (s, None),
        None => {
            let s = web.sessions().create(None);
            let cookie = cookies::session(&s.id, web.settings().secure_cookies);
            (s, Some(cookie))
        }
    }
}

/// A page for visitors who are not signed in (a public page): `body` in
/// the base layout with no navigation, in the visitor's language (an
/// anonymous session carries the language switch's CSRF token). `back` is
/// the page's own path.
pub fn public_page(
    web: &Web,
    headers: &HeaderMap,
    back: &str,
    title_key: &str,
    body: impl FnOnce(Tr) -> Result<String, WebError>,
) -> Result<Response, WebError> {
    let (session, cookie) = session_of(web, headers);
    let tr = Tr::new(cookies::lang_of(headers));
    let body = body(tr)?;
    let title = tr.t(title_key);
    let html = Page {
        tr,
        site: &web.settings().site_name,
        title: &title,
        user: None,
        csrf: &session.csrf,
        nav: Vec::new(),
        back,
        body: &body,
    }
    .render()?;
    let mut res = Html(html).into_response();
    if let Some(c) = cookie {
        res.headers_mut()
            .insert(SET_COOKIE, c.parse().expect("cookie header"));
    }
    Ok(res)
}

fn login_page(
    web: &Web,
    lang: Lang,
    session: &Session,
    name: &str,
    error: Option<String>,
) -> Result<Html<String>, WebError> {
    let tr = Tr::new(lang);
    let body = LoginPartial {
        tr,
        csrf: &session.csrf,
        name,
        error,
    }
    .render()?;
    let title = tr.t("sign-in");
    Ok(Html(
        Page {
            tr,
            site: &web.settings().site_name,
            title: &title,
            user: None,
            csrf: &session.csrf,
            nav: Vec::new(),
            back: "/login",
            body: &body,
        }
        .render()?,
    ))
}

async fn login_form<S>(State(web): State<Web>, headers: HeaderMap) -> Result<Response, WebError>
where
    Web: FromRef<S>,
{
    let (session, cookie) = session_of(&web, &headers);
    if session.user.is_some() {
        return Ok(Redirect::to(web.settings().home).into_response());
    }
    let page = login_page(&web, cookies::lang_of(&headers), &session, "", None)?;
    let mut res = page.into_response();
    if let Some(c) = cookie {
        res.headers_mut()
            .insert(SET_COOKIE, c.parse().expect("cookie header"));
    }
    Ok(res)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

async fn login<S>(
    State(web): State<Web>,
    headers: HeaderMap,
    Posted(form): Posted<LoginForm>,
) -> Result<Response, WebError>
where
    Web: FromRef<S>,
{
    let (session, _) = session_of(&web, &headers);
    let lang = cookies::lang_of(&headers);
    let name = form.name.trim().to_owned();
    let accounts = web.accounts().clone();
    let (n, p) = (name.clone(), form.password);
    let outcome = tokio::task::spawn_blocking(move || accounts.sign_in(&n, &p))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let tr = Tr::new(lang);
    let refused = |status: StatusCode, text: String| -> Result<Response, WebError> {
        let page = login_page(&web, lang, &session, &name, Some(text))?;
        Ok((status, page).into_response())
    };
    match outcome {
        Ok(account) => {
            web.sessions().remove(&session.id);
            let fresh = web.sessions().create(Some(account.name.clone()));
            web.audit()
                .record(&account.name, "sign_in", &account.name, "");
            let mut res = Redirect::to(web.settings().home).into_response();
            res.headers_mut().append(
                SET_COOKIE,
                cookies::session(&fresh.id, web.settings().secure_cookies)
                    .parse()
                    .expect("cookie header"),
            );
            if let Some(l) = account.lang {
                res.headers_mut().append(
                    SET_COOKIE,
                    cookies::lang(l, web.settings().secure_cookies)
                        .parse()
                        .expect("cookie header"),
                );
            }
            Ok(res)
        }
        Err(SignInError::Refused) => {
            web.audit().record("", "sign_in_refused", &name, "");
            refused(StatusCode::UNAUTHORIZED, tr.t("sign-in-refused"))
        }
        Err(SignInError::Locked { until }) => {
            web.audit().record("", "locked_out", &name, &until);
            let local =
                time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
                    .map(|t| {
                        let t = t.to_offset(time::UtcOffset::from_hms(7, 0, 0).expect("UTC+7"));
                        format!(
                            "{:02}:{:02} {}",
                            t.hour(),
                            t.minute(),
                            format::date(t.date())
                        )
                    })
                    .unwrap_or(until);
            refused(
                StatusCode::TOO_MANY_REQUESTS,
                tr.t1("sign-in-locked", "until", local),
            )
        }
        Err(SignInError::Unavailable(e)) => Err(WebError::Internal(e)),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout<S>(me: SignedIn, Posted(_): Posted<Empty>) -> Response
where
    Web: FromRef<S>,
{
    me.web.sessions().remove(&me.session.id);
    me.audit("sign_out", me.name(), "");
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        SET_COOKIE,
        cookies::clear_session(me.web.settings().secure_cookies)
            .parse()
            .expect("cookie header"),
    );
    res
}

#[derive(Deserialize)]
struct LangForm {
    lang: String,
    #[serde(default)]
    back: String,
}

/// A path of this site to go back to: never another site (`//host`, `http:`).
fn local_path(p: &str) -> &str {
    if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') {
        p
    } else {
        "/"
    }
}

async fn set_lang<S>(
    State(web): State<Web>,
    headers: HeaderMap,
    Posted(form): Posted<LangForm>,
) -> Result<Response, WebError>
where
    Web: FromRef<S>,
{
    let lang = Lang::parse(&form.lang)
        .ok_or_else(|| WebError::BadRequest(format!("language {:?}", form.lang)))?;
    let session = cookies::get(&headers, cookies::SESSION).and_then(|id| web.sessions().get(&id));
    if let Some(user) = session.and_then(|s| s.user) {
        web.accounts()
            .set_lang(&user, lang)
            .map_err(|e| WebError::Internal(e.to_string()))?;
    }
    let mut res = Redirect::to(local_path(&form.back)).into_response();
    res.headers_mut().insert(
        SET_COOKIE,
        cookies::lang(lang, web.settings().secure_cookies)
            .parse()
            .expect("cookie header"),
    );
    Ok(res)
}
