//! # Cooperatives: the list per commune, a cooperative's page, any record
//!
//! The list filters by commune, name (case and diacritics ignored), type,
//! status and scope (with the reason); a cooperative's page shows its
//! fields, managers, observations over time, trainings and activities,
//! and who recorded and changed it. A record outside the officer's units
//! is "not found".

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use htx_core::schema::{self, Record, Value};
use htx_web::{SignedIn, Tr, WebError, format};
use serde::Deserialize;

use super::{App, blocking};
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
    conflicts: Vec<FieldRow>,
    scope: String,
    may_write: bool,
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
    conflicts: Vec<FieldRow>,
    may_write: bool,
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

/// Who recorded, changed, deleted or restored it, and when.
fn history_rows(tr: &Tr, r: &Record) -> Vec<FieldRow> {
    [
        ("recorded_at", "recorded_by", "history-recorded"),
        ("changed_at", "changed_by", "history-changed"),
        ("deleted_at", "deleted_by", "history-deleted"),
        ("restored_at", "restored_by", "history-restored"),
    ]
    .iter()
    .filter_map(|(at, by, key)| {
        let at = r.text(at)?;
        Some(FieldRow {
            label: tr.t(key),
            value: format!(
                "{} — {}",
                format::date_text(at),
                r.text(by).unwrap_or_default()
            ),
        })
    })
    .collect()
}

fn conflict_rows(tr: &Tr, r: &Record) -> Vec<FieldRow> {
    r.conflicts
        .iter()
        .map(|(field, values)| FieldRow {
            label: super::forms::field_label(tr, &r.kind, field),
            value: values
                .iter()
                .map(|v| shown(tr, &r.kind, field, Some(v)))
                .collect::<Vec<_>>()
                .join(" | "),
        })
        .collect()
}

pub async fn record(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    let i = id.clone();
    let (record, coop, all) = blocking(&app.node, move |n| {
        let record = n.record(&i)?;
        let coop = n.cooperative(&i)?;
        let names = n.export(true)?;
        Ok((record, coop, names))
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
    let conflicts = conflict_rows(&tr, &record);
    let may_write = me.account.may_write();
    let title = label(&record);
    let body = match &coop {
        Some(page) => CoopPartial {
            tr,
            scope: scope_text(&tr, &page.row.in_scope),
            page,
            fields,
            history,
            conflicts,
            may_write,
        }
        .render()?,
        None => RecordPartial {
            tr,
            rec: &record,
            fields,
            history,
            conflicts,
            may_write,
        }
        .render()?,
    };
    me.page(&title, &body)
}
