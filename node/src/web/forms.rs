//! # Add and edit forms, for every kind of record
//!
//! Built from the schema (`core/src/schema.rs`), so a field added there
//! appears here. References are picked by name (cooperatives, people),
//! never typed as ids; choices and yes/no are lists in words; dates are
//! typed dd/mm/yyyy. Each value is checked by the schema's own parser and
//! then by the node's write (the same rules as the CLI and the hub); every
//! error is shown beside its field, in the officer's language, and nothing
//! is written until the form has none.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use htx_core::schema::{self, FieldError, FieldType, KindSpec, Record, Value};
use htx_web::{Posted, SignedIn, Tr, WebError, format};
use serde::Deserialize;

use super::{App, blocking, officer};
use crate::node::NodeError;

/// How a field is typed in.
pub enum Input {
    Text,
    Date,
    Number,
    /// One of a list (with an empty choice when the field is optional).
    Choice(Vec<Opt>),
    /// Any of a list (people who attended).
    Many(Vec<Opt>),
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct FormField {
    pub name: String,
    pub label: String,
    pub input: Input,
    pub value: String,
    pub error: Option<String>,
    pub required: bool,
    pub hint: String,
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPartial<'a> {
    tr: Tr,
    csrf: &'a str,
    action: String,
    cancel: String,
    fields: Vec<FormField>,
    error: Option<String>,
}

/// A field's label: the kind's own word for it, else the common one.
pub fn field_label(tr: &Tr, kind: &str, field: &str) -> String {
    let own = format!("field-{kind}-{field}");
    if tr.has(&own) {
        tr.t(&own)
    } else {
        tr.t(&format!("field-{field}"))
    }
}

/// The error of a field, in the officer's language.
fn field_error(tr: &Tr, e: &FieldError) -> String {
    match e {
        FieldError::Missing { .. } => tr.t("err-required"),
        FieldError::BadDate { .. } => tr.t("err-date"),
        FieldError::BadNumber { .. } => tr.t("err-number"),
        FieldError::Negative { .. } => tr.t("err-negative"),
        FieldError::TooLarge { max, .. } => {
            tr.t1("err-too-large", "max", format::count(tr.lang, *max))
        }
        FieldError::BadBool { .. } => tr.t("err-bool"),
        FieldError::BadChoice { .. } => tr.t("err-choice"),
        FieldError::BadRef { .. } => tr.t("err-ref"),
        other => other.to_string(),
    }
}

/// Raw values as typed, by field name (several for a multiple choice).
type Typed = BTreeMap<String, Vec<String>>;

/// Kinds whose unit is picked on the form (the others take their
/// cooperative's).
fn picks_unit(spec: &KindSpec) -> bool {
    !spec
        .fields
        .iter()
        .any(|f| f.name == "cooperative" && f.required)
}

struct Choices {
    units: Vec<(String, String)>,
    coops: Vec<(String, String)>,
    people: Vec<(String, String)>,
}

async fn choices(app: &App, me: &SignedIn) -> Result<Choices, WebError> {
    let scope = me.account.units.clone();
    let units = app
        .node
        .progress_units(&scope)
        .into_iter()
        .map(|u| (u.code, u.name))
        .collect();
    let (coops, people) = blocking(&app.node, move |n| {
        Ok((
            n.choices(&["cooperative"], &scope)?,
            n.choices(&["manager", "cadre"], &scope)?,
        ))
    })
    .await?;
    Ok(Choices {
        units,
        coops,
        people,
    })
}

fn opts(list: &[(String, String)], chosen: &[String], blank: bool, tr: &Tr) -> Vec<Opt> {
    let mut out = Vec::new();
    if blank {
        out.push(Opt {
            value: String::new(),
            label: tr.t("choose"),
            selected: chosen.iter().all(String::is_empty),
        });
    }
    out.extend(list.iter().map(|(v, l)| Opt {
        value: v.clone(),
        label: l.clone(),
        selected: chosen.contains(v),
    }));
    out
}

/// The form's fields with the values typed (or stored) and their errors.
fn fields(
    tr: &Tr,
    spec: &KindSpec,
    typed: &Typed,
    errors: &BTreeMap<String, String>,
    c: &Choices,
    editing: bool,
) -> Vec<FormField> {
    let get = |n: &str| typed.get(n).cloned().unwrap_or_default();
    let first = |n: &str| get(n).first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    if picks_unit(spec) && !editing {
        let required = !spec.fields.iter().any(|f| f.name == "cooperative");
        out.push(FormField {
            name: "unit".into(),
            label: tr.t("field-unit"),
            input: Input::Choice(opts(&c.units, &get("unit"), true, tr)),
            value: first("unit"),
            error: errors.get("unit").cloned(),
            required,
            hint: if required {
                String::new()
            } else {
                tr.t("hint-unit-from-coop")
            },
        });
    }
    for f in spec.fields {
        let required = f.required && !editing;
        let (input, hint) = match f.ty {
            FieldType::Text => (Input::Text, String::new()),
            FieldType::Date => (Input::Date, tr.t("hint-date")),
            FieldType::Count | FieldType::Amount => (Input::Number, String::new()),
            FieldType::Bool => (
                Input::Choice(opts(
                    &[("true".into(), tr.t("yes")), ("false".into(), tr.t("no"))],
                    &get(f.name),
                    true,
                    tr,
                )),
                String::new(),
            ),
            FieldType::Enum(values) => {
                let list: Vec<(String, String)> = values
                    .iter()
                    .map(|v| {
                        let key = format!("value-{}-{v}", f.name);
                        (
                            (*v).to_owned(),
                            if tr.has(&key) {
                                tr.t(&key)
                            } else {
                                (*v).to_owned()
                            },
                        )
                    })
                    .collect();
                (
                    Input::Choice(opts(&list, &get(f.name), !required, tr)),
                    String::new(),
                )
            }
            FieldType::Ref(_) => (
                Input::Choice(opts(&c.coops, &get(f.name), true, tr)),
                String::new(),
            ),
            FieldType::RefList(_) => (
                Input::Many(opts(&c.people, &get(f.name), false, tr)),
                tr.t("hint-many"),
            ),
        };
        out.push(FormField {
            name: f.name.into(),
            label: field_label(tr, spec.name, f.name),
            input,
            value: first(f.name),
            error: errors.get(f.name).cloned(),
            required,
            hint,
        });
    }
    out
}

/// Reads a posted form into a record; the errors found on the way, by field.
fn read_form(
    tr: &Tr,
    spec: &KindSpec,
    typed: &Typed,
    units: &[(String, String)],
    editing: bool,
) -> (Record, BTreeMap<String, String>) {
    let mut rec = Record {
        kind: spec.name.to_owned(),
        ..Default::default()
    };
    let mut errors = BTreeMap::new();
    let first = |n: &str| {
        typed
            .get(n)
            .and_then(|v| v.first())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    if picks_unit(spec) && !editing {
        let unit = first("unit");
        if !unit.is_empty() {
            if units.iter().any(|(c, _)| *c == unit) {
                rec.fields.insert("unit".into(), Value::Text(unit));
            } else {
                errors.insert("unit".into(), tr.t("err-choice"));
            }
        }
    }
    for f in spec.fields {
        let raw = match f.ty {
            FieldType::RefList(_) => typed
                .get(f.name)
                .map(|v| {
                    v.iter()
                        .filter(|s| !s.trim().is_empty())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .unwrap_or_default(),
            _ => first(f.name),
        };
        if raw.is_empty() {
            if f.required && !editing {
                errors.insert(f.name.into(), tr.t("err-required"));
            }
            continue;
        }
        let raw = match f.ty {
            FieldType::Date => match format::parse_date(&raw) {
                Some(d) => schema::format_date(d),
                None => {
                    errors.insert(f.name.into(), tr.t("err-date"));
                    continue;
                }
            },
            // Officers type 1.350.000 the Vietnamese way.
            FieldType::Count | FieldType::Amount => raw.replace(['.', ' ', ','], ""),
            _ => raw,
        };
        match f.parse(spec.name, &raw) {
            Ok(v) => {
                rec.fields.insert(f.name.into(), v);
            }
            Err(e) => {
                errors.insert(f.name.into(), field_error(tr, &e));
            }
        }
    }
    (rec, errors)
}

/// A record's stored values as a form shows them.
fn typed_of(rec: &Record) -> Typed {
    rec.fields
        .iter()
        .map(|(k, v)| {
            let shown = match v {
                Value::Date(d) => vec![format::date(*d)],
                Value::List(items) => items.clone(),
                other => {
                    let s = other.to_string();
                    if schema::kind(&rec.kind)
                        .ok()
                        .and_then(|s| s.field(k))
                        .is_some_and(|f| f.ty == FieldType::Date)
                    {
                        vec![format::date_text(&s)]
                    } else {
                        vec![s]
                    }
                }
            };
            (k.clone(), shown)
        })
        .collect()
}

fn typed_from(pairs: Vec<(String, String)>) -> Typed {
    let mut typed = Typed::new();
    for (k, v) in pairs {
        if k != htx_web::csrf::FIELD {
            typed.entry(k).or_default().push(v);
        }
    }
    typed
}

fn kind_spec(kind: &str) -> Result<&'static KindSpec, WebError> {
    schema::kind(kind).map_err(|_| WebError::NotFound)
}

#[allow(clippy::too_many_arguments)]
fn render(
    me: &SignedIn,
    spec: &KindSpec,
    typed: &Typed,
    errors: &BTreeMap<String, String>,
    c: &Choices,
    action: String,
    cancel: String,
    error: Option<String>,
    editing: bool,
) -> Result<String, WebError> {
    let tr = me.tr();
    Ok(FormPartial {
        tr,
        csrf: me.csrf(),
        action,
        cancel,
        fields: fields(&tr, spec, typed, errors, c, editing),
        error,
    }
    .render()?)
}

fn title(tr: &Tr, spec: &KindSpec, editing: bool) -> String {
    let kind = tr.t(&format!("kind-{}", spec.name));
    tr.t1(if editing { "form-edit" } else { "form-new" }, "kind", kind)
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    #[serde(default)]
    cooperative: String,
}

pub async fn new_form(
    me: SignedIn,
    State(app): State<App>,
    Path(kind): Path<String>,
    Query(q): Query<NewQuery>,
) -> Result<Response, WebError> {
    me.require_writer()?;
    let spec = kind_spec(&kind)?;
    let c = choices(&app, &me).await?;
    let mut typed = Typed::new();
    if !q.cooperative.is_empty() {
        typed.insert("cooperative".into(), vec![q.cooperative.clone()]);
    }
    let cancel = if q.cooperative.is_empty() {
        "/cooperatives".to_owned()
    } else {
        format!("/records/{}", q.cooperative)
    };
    let body = render(
        &me,
        spec,
        &typed,
        &BTreeMap::new(),
        &c,
        format!("/new/{kind}"),
        cancel,
        None,
        false,
    )?;
    Ok(me
        .page(&title(&me.tr(), spec, false), &body)?
        .into_response())
}

/// Writes the record of a posted form, or shows the form again with its
/// errors (422).
async fn save(
    me: SignedIn,
    app: App,
    spec: &'static KindSpec,
    pairs: Vec<(String, String)>,
    existing: Option<Record>,
) -> Result<Response, WebError> {
    me.require_writer()?;
    let tr = me.tr();
    let editing = existing.is_some();
    let c = choices(&app, &me).await?;
    let typed = typed_from(pairs);
    let (mut rec, mut errors) = read_form(&tr, spec, &typed, &c.units, editing);
    let (action, cancel) = match &existing {
        Some(r) => (
            format!("/records/{}/edit", r.id),
            format!("/records/{}", r.id),
        ),
        None => (format!("/new/{}", spec.name), "/cooperatives".to_owned()),
    };
    let mut general = None;
    if errors.is_empty() {
        if let Some(r) = &existing {
            rec.id = r.id.clone();
        }
        let who = officer(&me);
        let r = rec.clone();
        let node = app.node.clone();
        let written = tokio::task::spawn_blocking(move || node.write_as(vec![r], &who))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?;
        match written {
            Ok(ids) => {
                let id = ids.into_iter().next().unwrap_or_default();
                me.audit(
                    if editing {
                        "record_changed"
                    } else {
                        "record_added"
                    },
                    &id,
                    spec.name,
                );
                app.node.wake().notify_one();
                let to = match rec.text("cooperative") {
                    Some(coop) if spec.name != "cooperative" => format!("/records/{coop}"),
                    _ => format!("/records/{id}"),
                };
                return Ok(Redirect::to(&to).into_response());
            }
            Err(NodeError::Invalid(errs)) => {
                for (_, e) in errs {
                    match e.field() {
                        Some(f) if spec.field(f).is_some() || f == "unit" => {
                            errors.insert(f.to_owned(), field_error(&tr, &e));
                        }
                        _ => general = Some(field_error(&tr, &e)),
                    }
                }
            }
            Err(e) => return Err(WebError::Internal(e.to_string())),
        }
    }
    let general = general.or_else(|| (!errors.is_empty()).then(|| tr.t("form-has-errors")));
    let body = render(
        &me, spec, &typed, &errors, &c, action, cancel, general, editing,
    )?;
    let page = me.page(&title(&tr, spec, editing), &body)?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

pub async fn create(
    me: SignedIn,
    State(app): State<App>,
    Path(kind): Path<String>,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let spec = kind_spec(&kind)?;
    save(me, app, spec, pairs, None).await
}

/// The record to edit, if the officer's units cover it.
async fn editable(app: &App, me: &SignedIn, id: String) -> Result<Record, WebError> {
    me.require_writer()?;
    let rec = blocking(&app.node, move |n| n.record(&id))
        .await?
        .ok_or(WebError::NotFound)?;
    if !app
        .node
        .covers(&me.account.units, rec.text("unit").unwrap_or_default())
    {
        return Err(WebError::NotFound);
    }
    Ok(rec)
}

pub async fn edit_form(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let rec = editable(&app, &me, id).await?;
    let spec = kind_spec(&rec.kind)?;
    let c = choices(&app, &me).await?;
    let body = render(
        &me,
        spec,
        &typed_of(&rec),
        &BTreeMap::new(),
        &c,
        format!("/records/{}/edit", rec.id),
        format!("/records/{}", rec.id),
        None,
        true,
    )?;
    Ok(me
        .page(&title(&me.tr(), spec, true), &body)?
        .into_response())
}

pub async fn update(
    me: SignedIn,
    State(app): State<App>,
    Path(id): Path<String>,
    Posted(pairs): Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let rec = editable(&app, &me, id).await?;
    let spec = kind_spec(&rec.kind)?;
    save(me, app, spec, pairs, Some(rec)).await
}
