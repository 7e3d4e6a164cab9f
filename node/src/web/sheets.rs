//! # Spreadsheets on the pages: templates, import with a preview, export
//!
//! `GET /import` offers a template per kind and a file to check;
//! `POST /import` reads the file ([`crate::sheets`], the same rules as
//! `htx-node import`), checks every row as the officer (a row outside their
//! units is an error of its row) and shows every bad cell with its reason,
//! writing nothing. A file with no error is kept for this session only
//! (in memory, one per session, bounded) until the officer confirms it with
//! `POST /import/confirm`, which checks it again (what the node holds may
//! have changed meanwhile) and writes it all or nothing.
//! `GET /export/{kind}` gives a kind's records as `.xlsx` or `.csv`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use htx_core::schema;
use htx_web::{Lang, Posted, SignedIn, Tr, Uploaded, WebError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{App, officer};
use crate::sheets::{self, AsOfficer, CellError, Format, SheetError};

/// Files checked and waiting for their officer's confirmation, by session.
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<HashMap<String, Upload>>>);

/// At most this many files wait at once (the oldest is dropped).
const MAX_PENDING: usize = 8;

struct Upload {
    file_name: String,
    bytes: Vec<u8>,
    digest: String,
    at: std::time::Instant,
}

impl Pending {
    fn put(&self, session: &str, up: Upload) {
        let mut map = self.0.lock().expect("pending lock");
        map.insert(session.to_owned(), up);
        while map.len() > MAX_PENDING {
            let oldest = map
                .iter()
                .min_by_key(|(_, u)| u.at)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            map.remove(&oldest);
        }
    }

    /// The session's file, if it is the one with `digest`.
    fn take(&self, session: &str, digest: &str) -> Option<Upload> {
        let mut map = self.0.lock().expect("pending lock");
        match map.get(session) {
            Some(u) if u.digest == digest => map.remove(session),
            _ => None,
        }
    }
}

/// A kind whose template can be downloaded.
pub struct KindLink {
    pub name: &'static str,
    pub label: String,
}

/// A bad cell, in the officer's language.
pub struct ErrorRow {
    pub sheet: String,
    pub row: String,
    pub column: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPartial<'a> {
    tr: Tr,
    csrf: &'a str,
    kinds: Vec<KindLink>,
    file_name: String,
    /// Why the file could not be read at all.
    problem: Option<String>,
    errors: Vec<ErrorRow>,
    /// A file with no error: what it would write, and its digest to confirm.
    ready: Option<(String, String)>,
    /// After a confirmed import: how many records were written.
    written: Option<usize>,
}

fn kinds(tr: &Tr) -> Vec<KindLink> {
    schema::KINDS
        .iter()
        .map(|k| KindLink {
            name: k.name,
            label: capitalized(&tr.t(&format!("kind-{}", k.name))),
        })
        .collect()
}

/// "hợp tác xã" → "Hợp tác xã", for a row's heading.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn partial<'a>(me: &'a SignedIn) -> ImportPartial<'a> {
    let tr = me.tr();
    ImportPartial {
        tr,
        csrf: me.csrf(),
        kinds: kinds(&tr),
        file_name: String::new(),
        problem: None,
        errors: Vec::new(),
        ready: None,
        written: None,
    }
}

fn show(me: &SignedIn, status: StatusCode, p: ImportPartial<'_>) -> Result<Response, WebError> {
    let body = p.render()?;
    Ok((status, me.page("import-title", &body)?).into_response())
}

pub async fn page(me: SignedIn) -> Result<Response, WebError> {
    me.require_writer()?;
    show(&me, StatusCode::OK, partial(&me))
}

fn error_row(tr: &Tr, e: &CellError) -> ErrorRow {
    ErrorRow {
        sheet: e.sheet.clone(),
        row: if e.row > 0 {
            e.row.to_string()
        } else {
            String::new()
        },
        column: e.column.clone(),
        reason: match tr.lang {
            Lang::Vi => e.reason_vi.clone(),
            Lang::En => e.reason_en.clone(),
        },
    }
}

/// The message of a file that cannot be read, in the officer's language
/// (the texts are "Vietnamese / English").
fn sheet_problem(tr: &Tr, e: &SheetError) -> String {
    let text = e.to_string();
    match (tr.lang, text.split_once(" / ")) {
        (Lang::Vi, Some((vi, _))) => vi.to_owned(),
        (Lang::En, Some((_, en))) => en.to_owned(),
        _ => text,
    }
}

/// Reads and checks `bytes` as the officer: every error, or the rows it
/// would write by kind.
async fn check(
    app: &App,
    me: &SignedIn,
    file_name: String,
    bytes: Vec<u8>,
) -> Result<Result<sheets::Preview, SheetError>, WebError> {
    let who = officer(me);
    let node = app.node.clone();
    tokio::task::spawn_blocking(move || {
        let wb = sheets::read(&bytes, &file_name)?;
        sheets::preview_with(
            &AsOfficer {
                node: &node,
                officer: &who,
            },
            &wb,
        )
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))
}

/// The page after a check: the errors (422), or what would be written.
fn checked<'a>(
    me: &'a SignedIn,
    file_name: String,
    preview: Result<sheets::Preview, SheetError>,
    digest: String,
) -> (StatusCode, ImportPartial<'a>, Option<sheets::Preview>) {
    let tr = me.tr();
    let mut p = partial(me);
    p.file_name = file_name;
    match preview {
        Err(SheetError::Node(e)) => {
            p.problem = Some(e.to_string());
            (StatusCode::INTERNAL_SERVER_ERROR, p, None)
        }
        Err(e) => {
            let status = match e {
                SheetError::TooLarge { .. } | SheetError::Unpacked { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            p.problem = Some(sheet_problem(&tr, &e));
            (status, p, None)
        }
        Ok(preview) if !preview.errors.is_empty() => {
            p.errors = preview.errors.iter().map(|e| error_row(&tr, e)).collect();
            (StatusCode::UNPROCESSABLE_ENTITY, p, None)
        }
        Ok(preview) => {
            let what = preview
                .kinds
                .iter()
                .map(|(k, n)| format!("{}: {n}", tr.t(&format!("kind-{k}"))))
                .collect::<Vec<_>>()
                .join(", ");
            p.ready = Some((what, digest));
            (StatusCode::OK, p, Some(preview))
        }
    }
}

pub async fn upload(
    me: SignedIn,
    State(app): State<App>,
    up: Uploaded,
) -> Result<Response, WebError> {
    me.require_writer()?;
    if up.file_name.is_empty() || up.bytes.is_empty() {
        let mut p = partial(&me);
        p.problem = Some(me.tr().t("import-no-file"));
        return show(&me, StatusCode::UNPROCESSABLE_ENTITY, p);
    }
    let digest = hex::encode(Sha256::digest(&up.bytes));
    let preview = check(&app, &me, up.file_name.clone(), up.bytes.clone()).await?;
    let (status, p, ok) = checked(&me, up.file_name.clone(), preview, digest.clone());
    if ok.is_some() {
        app.pending.put(
            &me.session.id,
            Upload {
                file_name: up.file_name.clone(),
                bytes: up.bytes,
                digest,
                at: std::time::Instant::now(),
            },
        );
    }
    me.audit(
        "import_checked",
        &up.file_name,
        &format!("{} error(s)", p.errors.len()),
    );
    show(&me, status, p)
}

#[derive(Deserialize)]
pub struct Confirm {
    digest: String,
}

pub async fn confirm(
    me: SignedIn,
    State(app): State<App>,
    Posted(form): Posted<Confirm>,
) -> Result<Response, WebError> {
    me.require_writer()?;
    // Only a file this session checked, and the very one it showed.
    let up = app
        .pending
        .take(&me.session.id, &form.digest)
        .ok_or(WebError::Stale)?;
    let preview = check(&app, &me, up.file_name.clone(), up.bytes).await?;
    let (status, mut p, ok) = checked(&me, up.file_name.clone(), preview, String::new());
    let Some(preview) = ok else {
        // What the node holds changed since the check: the errors now.
        return show(&me, status, p);
    };
    let who = officer(&me);
    let node = app.node.clone();
    let written = tokio::task::spawn_blocking(move || sheets::commit_as(&node, preview, &who))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    match written {
        Ok(n) => {
            me.audit("import_written", &up.file_name, &n.to_string());
            app.node.wake().notify_one();
            p.ready = None;
            p.written = Some(n);
            show(&me, StatusCode::OK, p)
        }
        Err(e) => {
            p.ready = None;
            p.problem = Some(sheet_problem(&me.tr(), &e));
            show(&me, StatusCode::UNPROCESSABLE_ENTITY, p)
        }
    }
}

pub async fn template(
    _me: SignedIn,
    State(app): State<App>,
    Path(kind): Path<String>,
) -> Result<Response, WebError> {
    let spec = schema::kind(&kind).map_err(|_| WebError::NotFound)?;
    let node = app.node.clone();
    let bytes = tokio::task::spawn_blocking(move || sheets::template(&node, spec.name))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(download(
        bytes,
        &format!("mau-{}.xlsx", file_stem(spec.name)),
        XLSX,
    ))
}

#[derive(Deserialize, Default)]
pub struct ExportQuery {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    format: String,
}

pub async fn export(
    me: SignedIn,
    State(app): State<App>,
    Path(kind): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, WebError> {
    let spec = schema::kind(&kind).map_err(|_| WebError::NotFound)?;
    let format = match q.format.as_str() {
        "" | "xlsx" => Format::Xlsx,
        "csv" => Format::Csv,
        other => return Err(WebError::BadRequest(format!("format {other:?}"))),
    };
    // An officer restricted to some units exports one of them at a time.
    let unit = match (q.unit.trim(), me.account.units.first()) {
        ("", None) => None,
        ("", Some(first)) => Some(first.clone()),
        (u, _) => Some(u.to_owned()),
    };
    if let Some(u) = &unit
        && !app.node.covers(&me.account.units, u)
    {
        return Err(WebError::NotFound);
    }
    let node = app.node.clone();
    let u = unit.clone();
    let bytes =
        tokio::task::spawn_blocking(move || sheets::export(&node, spec.name, u.as_deref(), format))
            .await
            .map_err(|e| WebError::Internal(e.to_string()))?
            .map_err(|e| WebError::Internal(e.to_string()))?;
    let base = file_stem(spec.name);
    let file = match &unit {
        Some(u) => format!("{base}-{u}"),
        None => base,
    };
    me.audit("exported", spec.name, unit.as_deref().unwrap_or("*"));
    Ok(match format {
        Format::Xlsx => download(bytes, &format!("{file}.xlsx"), XLSX),
        Format::Csv => download(bytes, &format!("{file}.csv"), "text/csv; charset=utf-8"),
    })
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn download(bytes: Vec<u8>, file: &str, mime: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// A kind's file name, that names its kind again when imported:
/// "Hợp tác xã" → `hop-tac-xa`.
fn file_stem(kind: &str) -> String {
    sheets::names::kind_names(kind)
        .0
        .split_whitespace()
        .map(sheets::names::fold)
        .collect::<Vec<_>>()
        .join("-")
}
