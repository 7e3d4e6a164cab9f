//! # htx-web: the officers' web layer, shared by the node and the hub
//!
//! Server-rendered HTML (askama templates checked at compile time), one
//! stylesheet built into the binary, no JavaScript needed, translations in
//! one place (fluent; Vietnamese first, English on request). This crate knows
//! nothing of records or sync: the node's pages (`node/src/web/`) and the
//! hub's build on it, and their handlers call their own domain operations.
//!
//! # Layout
//! - [`Web`] — the shared state an application puts in its router state
//!   (implement `FromRef<YourState> for Web`): accounts, sessions, audit,
//!   cookie settings, the navigation;
//! - [`routes`] — the routes every application mounts: sign in and out,
//!   language, the stylesheet; plus [`routes::layers`] (body limit, security
//!   headers) to wrap the whole router;
//! - [`accounts`] — officers' accounts in `DIR/users.json`: argon2 hashes,
//!   roles (admin, editor, viewer), optional unit restrictions, lock-out
//!   after repeated failed sign-ins;
//! - [`sessions`] — server-side sessions behind a random cookie (HttpOnly,
//!   SameSite=Strict, Secure on HTTPS), idle and absolute expiry;
//! - [`cookies`] — the cookies, built and read in one place;
//! - [`extract`] — [`extract::SignedIn`] (the signed-in officer: a handler
//!   cannot get the user any other way, so it cannot forget the check) and
//!   [`extract::Posted`] (a form body whose CSRF token was checked);
//! - [`csrf`] — the per-session token and its constant-time check;
//! - [`audit`] — who did what, in `DIR/web-audit.log` (JSON lines);
//! - [`i18n`] — [`i18n::Lang`], [`i18n::Tr`]: every word on a page comes
//!   from `web/locales/{vi,en}/*.ftl` (one file per area: `web.ftl` here,
//!   `node.ftl`, `hub.ftl` for the applications);
//! - [`format`] — Vietnamese numbers (1.350.000), percents (57,1%), dates
//!   (dd/mm/yyyy) and ages ("5 phút trước");
//! - [`layout`] — [`layout::Page`]: the base layout around a page's partial
//!   (an application renders its own askama partial, then wraps it);
//! - [`error`] — [`error::WebError`], rendered as a page in Vietnamese and
//!   English with the right status.
//!
//! ## Building pages on it
//! ```ignore
//! async fn home(me: SignedIn, State(app): State<App>) -> Result<Html<String>, WebError> {
//!     let data = app.domain.something()?;            // a domain operation
//!     let partial = HomePartial { tr: me.tr(), data }.render()?;  // askama, in your crate
//!     me.page("home-title", &partial)                // the base layout
//! }
//! ```
//! Forms post with `<input type="hidden" name="csrf" value="{{ csrf }}">`
//! (the token is `me.csrf()`), and the handler takes `Posted<YourForm>`:
//! a post without the session's token never reaches it.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod format;
pub mod i18n;
pub mod layout;
pub mod routes;
pub mod sessions;

use std::path::Path;
use std::sync::Arc;

pub use accounts::{Account, Accounts, Role};
pub use error::WebError;
pub use extract::{Posted, SignedIn, Uploaded};
pub use i18n::{Lang, Tr};

/// One link of the navigation bar: a path and the translation key of its label.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub path: &'static str,
    pub label: &'static str,
}

/// What the web layer needs, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Web(Arc<Inner>);

struct Inner {
    accounts: Accounts,
    sessions: sessions::Sessions,
    audit: audit::Audit,
    settings: Settings,
}

/// How an application configures the web layer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shown in the header, e.g. the node's name.
    pub site_name: String,
    /// Cookies get the `Secure` attribute (the app is served over HTTPS).
    pub secure_cookies: bool,
    /// The navigation bar for signed-in officers.
    pub nav: Vec<NavItem>,
    /// Where a successful sign-in lands.
    pub home: &'static str,
    pub session: sessions::Expiry,
    pub lockout: accounts::Lockout,
    /// The roles an admin may give on the account pages.
    pub roles: Vec<Role>,
    /// The units an account may be restricted to, as (code, name).
    pub units: Vec<(String, String)>,
}

impl Settings {
    pub fn new(site_name: impl Into<String>, nav: Vec<NavItem>) -> Settings {
        Settings {
            site_name: site_name.into(),
            secure_cookies: false,
            nav,
            home: "/",
            session: sessions::Expiry::default(),
            lockout: accounts::Lockout::default(),
            roles: vec![Role::Admin, Role::Editor, Role::Viewer],
            units: Vec::new(),
        }
    }
}

impl Web {
    /// The web layer of the application kept in `dir`: its accounts
    /// (`dir/users.json`) and audit (`dir/web-audit.log`).
    pub fn open(dir: &Path, settings: Settings) -> Web {
        Web(Arc::new(Inner {
            accounts: Accounts::new(dir, settings.lockout),
            sessions: sessions::Sessions::new(settings.session),
            audit: audit::Audit::new(dir),
            settings,
        }))
    }
    pub fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.0.sessions
    }
    pub fn audit(&self) -> &audit::Audit {
        &self.0.audit
    }
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
}
