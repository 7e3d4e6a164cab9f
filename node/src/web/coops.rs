//! # Cooperatives: the list per commune, a cooperative's page, any record
//!
//! The list filters by commune, name (case and diacritics ignored), type,
//! status and scope (with the reason); a cooperative's page shows its
//! fields, managers, observations over time, trainings and activities,
//! and who recorded and changed it. A record outside the officer's units
//! is "not found".

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use htx_core::docs::Contender;
use htx_core::schema::{self, Record, Value};
use htx_web::{Posted, SignedIn, Tr, WebError, format};
use serde::Deserialize;

use super::{App, blocking};
use crate::node::NodeError;
use crate::query::{CoopFilter, CoopPage, CoopRow, ScopeReason, UnitRef, label};

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    scope: String,
}

#[derive(Template)]
#[template(path = "coops.html")]
struct ListPartial<'a> {
    tr: Tr,
    q: &'a ListQuery,
    communes: Vec<UnitRef>,
    rows: Vec<CoopRow>,
    may_write: bool,
}

impl ListPartial<'_> {
    fn scope(&self, r: &CoopRow) -> String {
        scope_text(&self.tr, &r.in_scope)
    }
    fn value(&self, r: &Record, field: &str) -> String {
        let v = shown(&self.tr, &r.kind, field, r.fields.get(field));
        if v.is_empty() && field == "status" {
            // No status recorded: active until dissolved.
            return self.tr.t("value-status-active");
        }
        v
    }
    fn date(&self, d: &Option<String>) -> String {
        d.as_deref().map(format::date_text).unwrap_or_default()
    }
}

fn scope_text(tr: &Tr, reasons: &[ScopeReason]) -> String {
    if reasons.is_empty() {
        return tr.t("scope-no");
    }
    reasons
        .iter()
        .map(|r| {
            tr.t(match r {
                ScopeReason::WomenManage => "scope-women-manage",
                ScopeReason::MostlyWomenWorkers => "scope-mostly-women",
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A field's value as an officer reads it: dates dd/mm/yyyy, choices and
/// yes/no in words, numbers with separators.
pub fn shown(tr: &Tr, kind: &str, field: &str, v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    let ty = schema::kind(kind)
        .ok()
        .and_then(|k| k.field(field))
        .map(|f| f.ty);
    match (ty, v) {
        (_, Value::Date(d)) => format::date(*d),
        (Some(schema::FieldType::Date), Value::Text(t)) => format::date_text(t),
        (_, Value::Int(n)) => format::count(tr.lang, *n),
        (_, Value::Bool(b)) => tr.t(if *b { "yes" } else { "no" }),
        (Some(schema::FieldType::Enum(_)), Value::Text(t)) => {
            let key = format!("value-{field}-{t}");
            if tr.has(&key) { tr.t(&key) } else { t.clone() }
        }
        (_, other) => other.to_string(),
    }
}

pub async fn list(
    me: SignedIn,
    State(app): State<App>,
    Query(q): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let filter = CoopFilter {
        unit: q.unit.clone(),
        search: q.q.clone(),
        kind: q.kind.clone(),
        status: q.status.clone(),
        in_scope: q.scope.clone(),
        scope: me.account.units.clone(),
        include_deleted: false,
    };
    let rows = blocking(&app.node, move |n| n.cooperatives(&filter)).await?;
    let body = ListPartial {
        tr: me.tr(),
        q: &q,
        communes: app.node.communes(&me.account.units),
        rows,
        may_write: me.account.may_write(),
    }
    .render()?;
    me.page("coops-title", &body)
}

/// One field of a record, ready to show.
pub struct FieldRow {
    pub label: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "coop.html")]
struct CoopPartial<'a> {
    tr: Tr,
    page: &'a CoopPage,
    fields: Vec<FieldRow>,
    history: Vec<FieldRow>,
    conflicts: Vec<ConflictRow>,
    scope: String,
    may_write: bool,
    csrf: &'a str,
    rec_id: &'a str,
    deleted: bool,
    problem: Option<String>,
}

impl CoopPartial<'_> {
    fn value(&self, r: &Record, field: &str) -> String {
        shown(&self.tr, &r.kind, field, r.fields.get(field))
    }
    fn label(&self, r: &Record) -> String {
        label(r)
    }
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPartial<'a> {
    tr: Tr,
    rec: &'a Record,
    fields: Vec<FieldRow>,
    history: Vec<FieldRow>,
    conflicts: Vec<ConflictRow>,
    may_write: bool,
    csrf: &'a str,
    rec_id: &'a str,
    deleted: bool,
    problem: Option<String>,
}

/// A field that concurrent edits left with several values, each of which
/// the officer may keep.
pub struct ConflictRow {
    pub field: String,
    pub label: String,
    pub choices: Vec<Choice>,
}

pub struct Choice {
    /// Its place among the field's values (what the settle form posts).
    pub index: usize,
    pub value: String,
    pub who: String,
    pub when: String,
}

impl RecordPartial<'_> {
    fn kind(&self) -> String {
        self.tr.t(&format!("kind-{}", self.rec.kind))
    }
}

/// The kind's fields with their values, in the schema's order.
fn field_rows(
    tr: &Tr,
    r: &Record,
    units: impl Fn(&str) -> String,
    names: &dyn Fn(&str) -> String,
) -> Vec<FieldRow> {
    let Ok(spec) = schema::kind(&r.kind) else {
        return Vec::new();
    };
    let mut out = vec![FieldRow {
        label: tr.t("field-unit"),
        value: units(r.text("unit").unwrap_or_default()),
    }];
    for f in spec.fields {
        let value = match (f.ty, r.fields.get(f.name)) {
            (_, None) => continue,
            (schema::FieldType::Ref(_), Some(Value::Text(id))) => names(id),
            (schema::FieldType::RefList(_), Some(Value::List(ids))) => {
                ids.iter().map(|i| names(i)).collect::<Vec<_>>().join("; ")
            }
            (_, v) => shown(tr, &r.kind, f.name, v),
        };
        out.push(FieldRow {
            label: super::forms::field_label(tr, &r.kind, f.name),
            value,
        });
    }
    out
}

/// Who recorded, changed, deleted or restored it, when, and why.
fn history_rows(tr: &Tr, r: &Record) -> Vec<FieldRow> {
    [
        ("recorded_at", "recorded_by", "", "history-recorded"),
        ("changed_at", "changed_by", "", "history-changed"),
        (
            "deleted_at",
            "deleted_by",
            "deleted_reason",
            "history-deleted",
        ),
        (
            "restored_at",
            "restored_by",
            "restored_reason",
            "history-restored",
        ),
    ]
    .iter()
    .filter_map(|(at, by, why, key)| {
        let at = r.text(at)?;
        let mut value = format!(
            "{} — {}",
            format::date_text(at),
            r.text(by).unwrap_or_default()
        );
        if let Some(why) = r.text(why) {
            value.push_str(&format!(" — {}: {why}", tr.t("history-reason")));
        }
        Some(FieldRow {
            label: tr.t(key),
            value,
        })
    })
    .collect()
}

fn conflict_rows(
    tr: &Tr,
    r: &Record,
    contenders: &[(String, Vec<Contender>)],
    names: &dyn Fn(&str) -> String,
) -> Vec<ConflictRow> {
    contenders
        .iter()
        .map(|(field, values)| ConflictRow {
            field: field.clone(),
            label: super::forms::field_label(tr, &r.kind, field),
            choices: values
                .iter()
                .enumerate()
                .map(|(index, c)| Choice {
                    index,
                    value: value_text(tr, r, field, &c.value, names),
                    who: c.by.clone().unwrap_or_else(|| "?".into()),
                    when: c.at.as_deref().map(format::date_text).unwrap_or_default(),
                })
                .collect(),
        })
        .collect()
}

/// A value as the record's page shows it (references by name).
fn value_text(
    tr: &Tr,
    r: &Record,
    field: &str,
    v: &Value,
    names: &dyn Fn(&str) -> String,
) -> String {
    let ty = schema::kind(&r.kind)
        .ok()
        .and_then(|k| k.field(field))
        .map(|f| f.ty);
    match (ty, v) {
        (Some(schema::FieldType::Ref(_)), Value::Text(id)) => names(id),
        (Some(schema::FieldType::RefList(_)), Value::List(ids)) => {
            ids.iter().map(|i| names(i)).collect::<Vec<_>>().join("; ")
        }
        _ => shown(tr, &r.kind, field, Some(v)),
    }
}

pub async fn record(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    record_page(&me, &app, id, None).await
}

/// A record's page; `problem` is shown beside the delete/restore form.
async fn record_page(
    me: &SignedIn,
    app: &App,
    id: String,
    problem: Option<String>,
) -> Result<Html<String>, WebError> {
    let i = id.clone();
    let (record, coop, all, contenders) = blocking(&app.node, move |n| {
        let names = n.export(true)?;
        let record = names.iter().find(|r| r.id == i).cloned();
        let coop = n.cooperative(&i)?;
        let mut contenders = Vec::new();
        for field in record.iter().flat_map(|r| r.conflicts.keys()) {
            contenders.push((field.clone(), n.contenders(&i, field)?));
        }
        Ok((record, coop, names, contenders))
    })
    .await?;
    let record = record.ok_or(WebError::NotFound)?;
    if !app
        .node
        .covers(&me.account.units, record.text("unit").unwrap_or_default())
    {
        return Err(WebError::NotFound);
    }
    let tr = me.tr();
    let names = |id: &str| {
        all.iter()
            .find(|r| r.id == id)
            .map(label)
            .unwrap_or_else(|| id.to_owned())
    };
    let fields = field_rows(&tr, &record, |c| app.node.unit_name(c), &names);
    let history = history_rows(&tr, &record);
    let conflicts = conflict_rows(&tr, &record, &contenders, &names);
    let may_write = me.account.may_write();
    let title = label(&record);
    let deleted = record.is_deleted();
    let body = match &coop {
        Some(page) => CoopPartial {
            tr,
            scope: scope_text(&tr, &page.row.in_scope),
            page,
            fields,
            history,
            conflicts,
            may_write,
            csrf: me.csrf(),
            rec_id: &record.id,
            deleted,
            problem,
        }
        .render()?,
        None => RecordPartial {
            tr,
            rec: &record,
            fields,
            history,
            conflicts,
            may_write,
            csrf: me.csrf(),
            rec_id: &record.id,
            deleted,
            problem,
        }
        .render()?,
    };
    me.page(&title, &body)
}

#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    reason: String,
}

pub async fn delete(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
    Posted(form): Posted<ReasonForm>,
) -> Result<Response, WebError> {
    delete_or_restore(me, app, id, false, form.reason).await
}

pub async fn restore(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
    Posted(form): Posted<ReasonForm>,
) -> Result<Response, WebError> {
    delete_or_restore(me, app, id, true, form.reason).await
}

/// Deletes or restores a record with the officer's reason; without one,
/// the page again with the error beside the reason (422), nothing changed.
async fn delete_or_restore(
    me: SignedIn,
    app: App,
    id: String,
    restore: bool,
    reason: String,
) -> Result<Response, WebError> {
    me.require_writer()?;
    let who = super::officer(&me);
    let (i, why) = (id.clone(), reason.clone());
    let node = app.node.clone();
    let done = tokio::task::spawn_blocking(move || node.delete_as(&i, restore, &why, &who))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match done {
        Ok(()) => {
            me.audit(
                if restore {
                    "record_restored"
                } else {
                    "record_deleted"
                },
                &id,
                &reason,
            );
            app.node.wake().notify_one();
            Ok(Redirect::to(&format!("/records/{id}")).into_response())
        }
        Err(NodeError::Reason) => {
            let page = record_page(&me, &app, id, Some(me.tr().t("err-reason"))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        // Another unit's record, or none: the same answer, so an id tells nothing.
        Err(NodeError::NotFound(_) | NodeError::Invalid(_)) => Err(WebError::NotFound),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

#[derive(Deserialize)]
pub struct SettleForm {
    field: String,
    choice: usize,
    /// The value as the page showed it: a choice made on a stale page is
    /// refused rather than applied to whatever is now at that place.
    value: String,
}

/// Settles a conflict with the value the officer chose.
pub async fn settle(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
    Posted(form): Posted<SettleForm>,
) -> Result<Response, WebError> {
    me.require_writer()?;
    let tr = me.tr();
    let who = super::officer(&me);
    let i = id.clone();
    let field = form.field.clone();
    let units = me.account.units.clone();
    let outcome = blocking(&app.node, move |n| {
        let Some(rec) = n.record(&i)? else {
            return Ok(Err(WebError::NotFound));
        };
        if !n.covers(&units, rec.text("unit").unwrap_or_default()) {
            return Ok(Err(WebError::NotFound));
        }
        let names = n.export(true)?;
        let name = |id: &str| {
            names
                .iter()
                .find(|r| r.id == id)
                .map(label)
                .unwrap_or_else(|| id.to_owned())
        };
        let now = n.contenders(&i, &field)?;
        let Some(c) = now.get(form.choice) else {
            return Ok(Ok(false));
        };
        if value_text(&tr, &rec, &field, &c.value, &name) != form.value {
            return Ok(Ok(false));
        }
        match n.settle_as(&i, &field, &c.value, &who) {
            Ok(()) => Ok(Ok(true)),
            Err(NodeError::Settled) => Ok(Ok(false)),
            Err(NodeError::Invalid(_)) => Ok(Err(WebError::NotFound)),
            Err(e) => Err(e),
        }
    })
    .await??;
    if outcome {
        me.audit("conflict_settled", &id, &form.field);
        app.node.wake().notify_one();
        Ok(Redirect::to(&format!("/records/{id}")).into_response())
    } else {
        Err(WebError::Stale)
    }
}
