//! # Accounts, from the admin's pages
//!
//! What `htx-node user …` and `htx-hub user …` do, on the pages, for a
//! signed-in admin: the list of accounts (role, units, state), adding one,
//! changing its role and units, setting a new password (which also lifts a
//! lock-out and ends its sessions), disabling and enabling it. The roles
//! offered and the units that can be given are the application's
//! ([`Settings::roles`], [`Settings::units`]); a unit not in the list is
//! refused. No change may leave the application without an enabled admin.
//! Every change is audited; passwords are never shown or logged.

use askama::Template;
use axum::Router;
use axum::extract::{FromRef, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::accounts::{Account, AccountError, Role};
use crate::error::WebError;
use crate::extract::{Posted, SignedIn};
use crate::i18n::Tr;
use crate::{Settings, Web};

/// The admin's routes, mounted by [`crate::routes::routes`].
pub fn routes<S>() -> Router<S>
where
    Web: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/admin/users", get(list).post(add))
        .route("/admin/users/{name}", get(edit).post(change))
        .route("/admin/users/{name}/password", post(password))
        .route("/admin/users/{name}/state", post(set_state))
}

/// One account as the list shows it.
pub struct Row {
    pub name: String,
    pub role: String,
    pub units: String,
    pub state: &'static str,
    pub created: String,
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The add form, or the edit form of `name`, with what was typed and the
/// errors by field.
#[derive(Default)]
pub struct Form {
    pub name: String,
    pub role: String,
    pub units: Vec<String>,
    pub errors: Vec<(&'static str, String)>,
}

impl Form {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPartial<'a> {
    tr: Tr,
    csrf: &'a str,
    rows: Vec<Row>,
    form: Form,
    roles: Vec<Opt>,
    units: Vec<Opt>,
}

#[derive(Template)]
#[template(path = "user.html")]
struct EditPartial<'a> {
    tr: Tr,
    csrf: &'a str,
    account: &'a Account,
    form: Form,
    roles: Vec<Opt>,
    units: Vec<Opt>,
    state: &'static str,
    /// A message after a change ("password set").
    done: Option<String>,
    /// An error of the password form.
    password_error: Option<String>,
}

fn internal(e: AccountError) -> WebError {
    WebError::Internal(e.to_string())
}

fn state_of(a: &Account) -> &'static str {
    let locked = a.locked_until.as_deref().is_some_and(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .is_ok_and(|t| t > time::OffsetDateTime::now_utc())
    });
    if a.disabled {
        "disabled"
    } else if locked {
        "locked"
    } else {
        "active"
    }
}

fn unit_label(settings: &Settings, code: &str) -> String {
    settings
        .units
        .iter()
        .find(|(c, _)| c == code)
        .map(|(c, n)| format!("{n} ({c})"))
        .unwrap_or_else(|| code.to_owned())
}

fn role_opts(tr: &Tr, settings: &Settings, chosen: &str) -> Vec<Opt> {
    settings
        .roles
        .iter()
        .map(|r| Opt {
            value: r.as_str().to_owned(),
            label: tr.t(&format!("role-{}", r.as_str())),
            selected: r.as_str() == chosen,
        })
        .collect()
}

fn unit_opts(settings: &Settings, chosen: &[String]) -> Vec<Opt> {
    settings
        .units
        .iter()
        .map(|(c, n)| Opt {
            value: c.clone(),
            label: format!("{n} ({c})"),
            selected: chosen.contains(c),
        })
        .collect()
}

fn rows(me: &SignedIn) -> Result<Vec<Row>, WebError> {
    let tr = me.tr();
    let settings = me.web.settings();
    let mut all = me.web.accounts().list().map_err(internal)?;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all
        .iter()
        .map(|a| Row {
            name: a.name.clone(),
            role: tr.t(&format!("role-{}", a.role.as_str())),
            units: if a.units.is_empty() {
                tr.t("users-all-units")
            } else {
                a.units
                    .iter()
                    .map(|u| unit_label(settings, u))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            state: state_of(a),
            created: crate::format::date_text(&a.created_at),
        })
        .collect())
}

fn list_page(me: &SignedIn, status: StatusCode, form: Form) -> Result<Response, WebError> {
    let tr = me.tr();
    let settings = me.web.settings();
    let role = if form.role.is_empty() {
        "viewer".to_owned()
    } else {
        form.role.clone()
    };
    let body = ListPartial {
        tr,
        csrf: me.csrf(),
        rows: rows(me)?,
        roles: role_opts(&tr, settings, &role),
        units: unit_opts(settings, &form.units),
        form,
    }
    .render()?;
    Ok((status, me.page("users-title", &body)?).into_response())
}

pub async fn list(me: SignedIn) -> Result<Response, WebError> {
    me.require_admin()?;
    list_page(&me, StatusCode::OK, Form::default())
}

/// Role and units as posted, checked against what the application offers.
fn access(
    tr: &Tr,
    settings: &Settings,
    pairs: &[(String, String)],
    form: &mut Form,
) -> Option<(Role, Vec<String>)> {
    form.role = value(pairs, "role").to_owned();
    form.units = pairs
        .iter()
        .filter(|(k, v)| k == "units" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let role = form
        .role
        .parse::<Role>()
        .ok()
        .filter(|r| settings.roles.contains(r));
    if role.is_none() {
        form.errors.push(("role", tr.t("users-err-role")));
    }
    if let Some(bad) = form
        .units
        .iter()
        .find(|u| !settings.units.iter().any(|(c, _)| c == *u))
    {
        form.errors
            .push(("units", tr.t1("users-err-unit", "unit", bad.clone())));
    }
    Some((role?, form.units.clone())).filter(|_| form.errors.is_empty())
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn password_error(tr: &Tr, e: &AccountError) -> String {
    match e {
        AccountError::WeakPassword => tr.t("users-err-password"),
        AccountError::BadName(_) => tr.t("users-err-name"),
        AccountError::Exists(_) => tr.t("users-err-exists"),
        other => other.to_string(),
    }
}

pub async fn add(
    me: SignedIn,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    me.require_admin()?;
    let tr = me.tr();
    let settings = me.web.settings();
    let mut form = Form {
        name: value(&pairs, "name").trim().to_owned(),
        ..Form::default()
    };
    let access = access(&tr, settings, &pairs, &mut form);
    let (pw, again) = (value(&pairs, "password"), value(&pairs, "password2"));
    if pw != again {
        form.errors.push(("password2", tr.t("users-err-mismatch")));
    }
    let Some((role, units)) = access.filter(|_| form.errors.is_empty()) else {
        return list_page(&me, StatusCode::UNPROCESSABLE_ENTITY, form);
    };
    let (web, name, pw) = (me.web.clone(), form.name.clone(), pw.to_owned());
    let added = tokio::task::spawn_blocking(move || web.accounts().add(&name, role, units, &pw))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match added {
        Ok(a) => {
            me.audit("user_added", &a.name, a.role.as_str());
            Ok(Redirect::to("/admin/users").into_response())
        }
        Err(
            e @ (AccountError::WeakPassword | AccountError::BadName(_) | AccountError::Exists(_)),
        ) => {
            let field = match e {
                AccountError::WeakPassword => "password",
                _ => "name",
            };
            form.errors.push((field, password_error(&tr, &e)));
            list_page(&me, StatusCode::UNPROCESSABLE_ENTITY, form)
        }
        Err(e) => Err(internal(e)),
    }
}

fn account(me: &SignedIn, name: &str) -> Result<Account, WebError> {
    me.web
        .accounts()
        .get(name)
        .map_err(internal)?
        .ok_or(WebError::NotFound)
}

fn edit_page(
    me: &SignedIn,
    status: StatusCode,
    account: &Account,
    form: Form,
    done: Option<String>,
    password_error: Option<String>,
) -> Result<Response, WebError> {
    let tr = me.tr();
    let settings = me.web.settings();
    let body = EditPartial {
        tr,
        csrf: me.csrf(),
        account,
        roles: role_opts(&tr, settings, &form.role),
        units: unit_opts(settings, &form.units),
        form,
        state: state_of(account),
        done,
        password_error,
    }
    .render()?;
    let title = format!("{}: {}", tr.t("users-edit"), account.name);
    Ok((status, me.page(&title, &body)?).into_response())
}

fn form_of(a: &Account) -> Form {
    Form {
        name: a.name.clone(),
        role: a.role.as_str().to_owned(),
        units: a.units.clone(),
        errors: Vec::new(),
    }
}

pub async fn edit(me: SignedIn, Path(name): Path<String>) -> Result<Response, WebError> {
    me.require_admin()?;
    let a = account(&me, &name)?;
    edit_page(&me, StatusCode::OK, &a, form_of(&a), None, None)
}

/// Whether another enabled admin than `name` exists.
fn another_admin(me: &SignedIn, name: &str) -> Result<bool, WebError> {
    Ok(me
        .web
        .accounts()
        .list()
        .map_err(internal)?
        .iter()
        .any(|a| a.name != name && a.role == Role::Admin && !a.disabled))
}

pub async fn change(
    me: SignedIn,
    Path(name): Path<String>,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    me.require_admin()?;
    let tr = me.tr();
    let a = account(&me, &name)?;
    let mut form = form_of(&a);
    form.role.clear();
    let Some((role, units)) = access(&tr, me.web.settings(), &pairs, &mut form) else {
        return edit_page(&me, StatusCode::UNPROCESSABLE_ENTITY, &a, form, None, None);
    };
    if a.role == Role::Admin && role != Role::Admin && !another_admin(&me, &name)? {
        form.errors.push(("role", tr.t("users-err-last-admin")));
        return edit_page(&me, StatusCode::UNPROCESSABLE_ENTITY, &a, form, None, None);
    }
    me.web
        .accounts()
        .set_access(&name, role, units.clone())
        .map_err(internal)?;
    me.audit(
        "user_changed",
        &name,
        &format!("{} [{}]", role.as_str(), units.join(",")),
    );
    let a = account(&me, &name)?;
    edit_page(
        &me,
        StatusCode::OK,
        &a,
        form_of(&a),
        Some(tr.t("users-saved")),
        None,
    )
}

pub async fn password(
    me: SignedIn,
    Path(name): Path<String>,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    me.require_admin()?;
    let tr = me.tr();
    let a = account(&me, &name)?;
    let (pw, again) = (value(&pairs, "password"), value(&pairs, "password2"));
    let problem = if pw != again {
        Some(tr.t("users-err-mismatch"))
    } else {
        let (web, n, p) = (me.web.clone(), name.clone(), pw.to_owned());
        match tokio::task::spawn_blocking(move || web.accounts().set_password(&n, &p))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?
        {
            Ok(()) => None,
            Err(e @ AccountError::WeakPassword) => Some(password_error(&tr, &e)),
            Err(e) => return Err(internal(e)),
        }
    };
    if let Some(p) = problem {
        return edit_page(
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            &a,
            form_of(&a),
            None,
            Some(p),
        );
    }
    // Whoever knew the old password is signed out (the admin too, if it is theirs).
    if name != me.account.name {
        me.web.sessions().remove_user(&name);
    }
    me.audit("password_set", &name, "");
    let a = account(&me, &name)?;
    edit_page(
        &me,
        StatusCode::OK,
        &a,
        form_of(&a),
        Some(tr.t("users-password-set")),
        None,
    )
}

pub async fn set_state(
    me: SignedIn,
    Path(name): Path<String>,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    me.require_admin()?;
    let tr = me.tr();
    let a = account(&me, &name)?;
    let disable = value(&pairs, "disable") == "1";
    if disable
        && (name == me.account.name || (a.role == Role::Admin && !another_admin(&me, &name)?))
    {
        let mut form = form_of(&a);
        form.errors.push(("state", tr.t("users-err-last-admin")));
        return edit_page(&me, StatusCode::UNPROCESSABLE_ENTITY, &a, form, None, None);
    }
    me.web
        .accounts()
        .set_disabled(&name, disable)
        .map_err(internal)?;
    if disable {
        me.web.sessions().remove_user(&name);
    }
    me.audit(
        if disable {
            "user_disabled"
        } else {
            "user_enabled"
        },
        &name,
        "",
    );
    Ok(Redirect::to(&format!("/admin/users/{name}")).into_response())
}

/// The state's word, for templates.
fn state_text(tr: &Tr, state: &str) -> String {
    tr.t(&format!("users-state-{state}"))
}

impl ListPartial<'_> {
    fn state_word(&self, state: &str) -> String {
        state_text(&self.tr, state)
    }
}

impl EditPartial<'_> {
    fn state_word(&self) -> String {
        state_text(&self.tr, self.state)
    }
}
