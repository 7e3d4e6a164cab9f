//! # Errors, as pages
//!
//! Every error an officer can meet is a page with the right status, in
//! Vietnamese first and then English (the visitor may not be signed in, so
//! both are always shown). Internal details go to the log, not the page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::i18n::{Lang, Tr};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("page not found")]
    NotFound,
    /// Signed in, but not allowed (role, or a unit outside the officer's).
    #[error("not allowed")]
    Forbidden,
    /// A form posted without this session's CSRF token.
    #[error("form refused: missing or wrong CSRF token")]
    Csrf,
    #[error("request body too large")]
    TooLarge,
    /// A form made on a page that no longer shows what is stored (someone
    /// changed it meanwhile): nothing done, look again.
    #[error("the page was out of date")]
    Stale,
    /// A request the pages never make; the text is shown (escaped).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    vi: Texts,
    en: Texts,
    detail: &'a str,
}

struct Texts {
    title: String,
    text: String,
    home: String,
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Stale => StatusCode::CONFLICT,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn key(&self) -> &'static str {
        match self {
            WebError::NotFound => "error-not-found",
            WebError::Forbidden => "error-forbidden",
            WebError::Csrf => "error-csrf",
            WebError::TooLarge => "error-too-large",
            WebError::Stale => "error-stale",
            WebError::BadRequest(_) => "error-bad-request",
            WebError::Internal(_) => "error-internal",
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let WebError::Internal(e) = &self {
            tracing::error!("web: {e}");
        }
        let texts = |lang| {
            let tr = Tr::new(lang);
            Texts {
                title: tr.t(self.key()),
                text: tr.t(&format!("{}-text", self.key())),
                home: tr.t("error-home"),
            }
        };
        let detail = match &self {
            WebError::BadRequest(d) => d.as_str(),
            _ => "",
        };
        let page = ErrorPage {
            status: status.as_u16(),
            vi: texts(Lang::Vi),
            en: texts(Lang::En),
            detail,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}
