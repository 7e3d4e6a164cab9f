//! # The base layout
//!
//! A page is an application's partial (its own askama template, rendered
//! first) inside [`Page`]: header with the site's name, the navigation,
//! the officer's name, the language switch and sign-out; a skip link for
//! keyboard users; the stylesheet. [`crate::SignedIn::page`] fills it.

use askama::Template;

use crate::i18n::Tr;

/// One link of the navigation, ready to show.
pub struct NavLink {
    pub path: &'static str,
    pub label: String,
    /// The page shown is this link's (or below it): `aria-current`.
    pub current: bool,
}

#[derive(Template)]
#[template(path = "base.html")]
pub struct Page<'a> {
    pub tr: Tr,
    pub site: &'a str,
    pub title: &'a str,
    /// The signed-in officer's name and role (translated), if any.
    pub user: Option<(&'a str, String)>,
    pub csrf: &'a str,
    pub nav: Vec<NavLink>,
    /// Where the language switch brings the officer back to.
    pub back: &'a str,
    /// The page's own HTML, already rendered (and escaped) by its template.
    pub body: &'a str,
}
