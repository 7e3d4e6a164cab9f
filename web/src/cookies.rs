//! # The cookies, in one place
//!
//! `htx_session` (the session id: HttpOnly, SameSite=Strict, Path=/,
//! Secure when served over HTTPS, no Max-Age: it ends with the browser or
//! the server-side session) and `htx_lang` (the language chosen before
//! signing in; a year).

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use cookie::{Cookie, SameSite};

use crate::i18n::Lang;

pub const SESSION: &str = "htx_session";
pub const LANG: &str = "htx_lang";

/// The value of the cookie `name` in a request, if any.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn base(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
}

/// `Set-Cookie` for a session id.
pub fn session(id: &str, secure: bool) -> String {
    base(SESSION, id.to_owned(), secure).to_string()
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session(secure: bool) -> String {
    let mut c = base(SESSION, String::new(), secure);
    c.make_removal();
    c.to_string()
}

/// `Set-Cookie` for the language chosen.
pub fn lang(lang: Lang, secure: bool) -> String {
    let mut c = base(LANG, lang.code().to_owned(), secure);
    c.set_max_age(cookie::time::Duration::days(365));
    c.to_string()
}

/// The language a request asks for: the cookie, else Vietnamese.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    get(headers, LANG)
        .and_then(|l| Lang::parse(&l))
        .unwrap_or_default()
}
