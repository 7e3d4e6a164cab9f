//! # Extractors: who is asking, and whether a form is genuine
//!
//! [`SignedIn`]: the officer of a live session whose account is still
//! enabled (the account is read again on every request, so `htx-node user
//! disable` takes effect at once). Without one, the visitor is sent to the
//! sign-in page. A handler that takes `SignedIn` cannot forget the check.
//!
//! [`Posted<T>`]: a form body (`application/x-www-form-urlencoded`, within
//! the router's body limit) whose `csrf` field is this session's token;
//! anything else is refused with a 403 page before the handler runs, and
//! audited.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use crate::accounts::{Account, Role};
use crate::error::WebError;
use crate::i18n::{Lang, Tr};
use crate::layout::{NavLink, Page};
use crate::sessions::Session;
use crate::{Web, cookies, csrf};

/// The signed-in officer, with the session and the web layer.
pub struct SignedIn {
    pub web: Web,
    pub account: Account,
    pub session: Session,
    /// The path asked for (to mark the navigation, and to come back to).
    pub path: String,
    lang: Lang,
}

impl<S> FromRequestParts<S> for SignedIn
where
    Web: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let web = Web::from_ref(state);
        let to_login = || Redirect::to("/login").into_response();
        let session = cookies::get(&parts.headers, cookies::SESSION)
            .and_then(|id| web.sessions().get(&id))
            .ok_or_else(to_login)?;
        let Some(user) = session.user.clone() else {
            return Err(to_login());
        };
        let account = match web.accounts().get(&user) {
            Ok(Some(a)) if !a.disabled => a,
            Ok(_) => {
                web.sessions().remove(&session.id);
                return Err(to_login());
            }
            Err(e) => return Err(WebError::Internal(e.to_string()).into_response()),
        };
        let lang = account
            .lang
            .unwrap_or_else(|| cookies::lang_of(&parts.headers));
        Ok(SignedIn {
            web,
            account,
            session,
            path: parts.uri.path().to_owned(),
            lang,
        })
    }
}

impl SignedIn {
    pub fn name(&self) -> &str {
        &self.account.name
    }
    pub fn tr(&self) -> Tr {
        Tr::new(self.lang)
    }
    pub fn lang(&self) -> Lang {
        self.lang
    }
    /// The token every form of this session must post back.
    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }

    /// Refuses unless the officer may change records.
    pub fn require_writer(&self) -> Result<(), WebError> {
        if self.account.may_write() {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    pub fn require_admin(&self) -> Result<(), WebError> {
        if self.account.role == Role::Admin {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    /// Records what this officer did.
    pub fn audit(&self, action: &str, target: &str, detail: &str) {
        self.web
            .audit()
            .record(&self.account.name, action, target, detail);
    }

    /// `body` (a rendered partial) in the base layout, titled by the
    /// translation of `title_key` (or the text itself if it is no key).
    pub fn page(&self, title: &str, body: &str) -> Result<Html<String>, WebError> {
        let tr = self.tr();
        let title = if tr.has(title) {
            tr.t(title)
        } else {
            title.to_owned()
        };
        let settings = self.web.settings();
        let nav = settings
            .nav
            .iter()
            .map(|n| NavLink {
                path: n.path,
                label: tr.t(n.label),
                current: if n.path == "/" {
                    self.path == "/"
                } else {
                    self.path.starts_with(n.path)
                },
            })
            .collect::<Vec<_>>();
        let mut nav = nav;
        if self.account.is_admin() {
            nav.push(NavLink {
                path: "/admin/users",
                label: tr.t("nav-users"),
                current: self.path.starts_with("/admin/users"),
            });
        }
        let role = tr.t(&format!("role-{}", self.account.role.as_str()));
        let page = Page {
            tr,
            site: &settings.site_name,
            title: &title,
            user: Some((&self.account.name, role)),
            csrf: &self.session.csrf,
            nav,
            back: &self.path,
            body,
        };
        Ok(Html(page.render()?))
    }
}

/// A form whose CSRF token was checked.
pub struct Posted<T>(pub T);

impl<S, T> FromRequest<S> for Posted<T>
where
    Web: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let web = Web::from_ref(state);
        let session =
            cookies::get(req.headers(), cookies::SESSION).and_then(|id| web.sessions().get(&id));
        let path = req.uri().path().to_owned();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                WebError::TooLarge
            } else {
                WebError::BadRequest(e.body_text())
            }
        })?;
        let refuse = |why: &str| {
            let user = session
                .as_ref()
                .and_then(|s| s.user.clone())
                .unwrap_or_default();
            web.audit().record(&user, "csrf_refused", &path, why);
            tracing::warn!("refused a form posted to {path}: {why}");
            WebError::Csrf
        };
        let Some(session) = &session else {
            return Err(refuse("no session"));
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(e.to_string()))?;
        let token = pairs
            .iter()
            .find(|(k, _)| k == csrf::FIELD)
            .map(|(_, v)| v.as_str());
        match token {
            Some(t) if csrf::same(t, &session.csrf) => {}
            Some(_) => return Err(refuse("wrong token")),
            None => return Err(refuse("no token")),
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(Posted)
            .map_err(|e| WebError::BadRequest(e.to_string()))
    }
}

/// A file sent with a form (`multipart/form-data`), whose CSRF token was
/// checked as [`Posted`]'s is: the file's name and bytes, and the form's
/// other fields. The router's body limit bounds it; set a larger one on the
/// route that takes files.
pub struct Uploaded {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub fields: Vec<(String, String)>,
}

impl<S> FromRequest<S> for Uploaded
where
    Web: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let web = Web::from_ref(state);
        let session =
            cookies::get(req.headers(), cookies::SESSION).and_then(|id| web.sessions().get(&id));
        let path = req.uri().path().to_owned();
        let too_large_or_bad = |status: StatusCode, text: String| {
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                WebError::TooLarge
            } else {
                WebError::BadRequest(text)
            }
        };
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
        let mut up = Uploaded {
            file_name: String::new(),
            bytes: Vec::new(),
            fields: Vec::new(),
        };
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            match field.file_name() {
                Some(file) => {
                    up.file_name = file.to_owned();
                    up.bytes = field
                        .bytes()
                        .await
                        .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?
                        .to_vec();
                }
                None => {
                    let text = field
                        .text()
                        .await
                        .map_err(|e| too_large_or_bad(e.status(), e.body_text()))?;
                    up.fields.push((name, text));
                }
            }
        }
        let refuse = |why: &str| {
            let user = session
                .as_ref()
                .and_then(|s| s.user.clone())
                .unwrap_or_default();
            web.audit().record(&user, "csrf_refused", &path, why);
            tracing::warn!("refused a file posted to {path}: {why}");
            WebError::Csrf
        };
        let Some(session) = &session else {
            return Err(refuse("no session"));
        };
        match up.fields.iter().find(|(k, _)| k == csrf::FIELD) {
            Some((_, t)) if csrf::same(t, &session.csrf) => Ok(up),
            Some(_) => Err(refuse("wrong token")),
            None => Err(refuse("no token")),
        }
    }
}
