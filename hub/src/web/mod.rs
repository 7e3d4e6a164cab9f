//! # The province's dashboard: pages on the hub's HTTP port
//!
//! Built on `htx-web` (accounts in `DIR/users.json`, sessions, CSRF-checked
//! forms, translations, the base layout). One module per area:
//! [`overview`] (a unit's indicators, its sources), [`units`] (the
//! drill-down table), [`nodes`], [`trends`] (SVG charts), [`reports`] (the
//! yearly and phase reports), [`periods`] (closing a period, submissions).
//! Every page shows one of the plans the hub follows (`?plan=ID`, its
//! default plan otherwise; a chooser when there are several) and reads
//! the hub's progress API
//! through [`crate::views`], checks that the officer may see the unit
//! asked for (a viewer restricted to a district sees that district and its
//! communes, whatever the URL says), and offers its table as `.csv` and
//! `.xlsx` (`&format=csv|xlsx`, from the same [`crate::table::Table`]).

pub mod figure;
pub mod nodes;
pub mod overview;
pub mod periods;
pub mod public;
pub mod reports;
pub mod trends;
pub mod units;

use axum::Router;
use axum::extract::FromRef;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use htx_core::plan::{Phase, Plan};
use htx_core::units::Hierarchy;
use htx_web::{NavItem, Role, SignedIn, Web, WebError};
use serde::Deserialize;
use time::Date;

use crate::hub::Hub;
use crate::table::Table;
use crate::views;

/// The router state: the hub and the web layer.
#[derive(Clone)]
pub struct App {
    pub hub: Hub,
    pub web: Web,
}

impl FromRef<App> for Web {
    fn from_ref(app: &App) -> Web {
        app.web.clone()
    }
}

/// Largest form body accepted (sign-in, language switch).
const BODY_LIMIT: usize = 16 * 1024;

impl App {
    /// The hub with its web layer (accounts in `DIR/users.json`, sessions,
    /// the dashboard's navigation).
    pub fn new(hub: Hub) -> App {
        let nav = vec![
            NavItem {
                path: "/",
                label: "hub-nav-overview",
            },
            NavItem {
                path: "/units",
                label: "hub-nav-units",
            },
            NavItem {
                path: "/trends",
                label: "hub-nav-trends",
            },
            NavItem {
                path: "/nodes",
                label: "hub-nav-nodes",
            },
            NavItem {
                path: "/report",
                label: "hub-nav-report",
            },
            NavItem {
                path: "/periods",
                label: "hub-nav-periods",
            },
        ];
        let mut settings = htx_web::Settings::new(site_name(&hub), nav);
        settings.roles = vec![Role::Admin, Role::Analyst, Role::Viewer];
        settings.units = account_units(&hub);
        let web = Web::open(&hub.home().dir, settings);
        App { hub, web }
    }
}

/// The dashboard's routes, with the shared ones (sign-in, language,
/// stylesheet), wrapped in the web layer's body limit and security headers.
pub fn router(app: App) -> Router {
    let router = Router::new()
        .route("/", get(overview::page))
        .route("/units", get(units::page))
        .route("/figure", get(figure::page))
        .route("/public", get(public::page))
        .route("/nodes", get(nodes::page))
        .route("/trends", get(trends::page))
        .route("/report", get(reports::page))
        .route("/periods", get(periods::page))
        .route("/periods/close", post(periods::close))
        .route("/periods/reopen", post(periods::reopen))
        .route("/periods/submit", post(periods::submit))
        .route("/periods/withdraw", post(periods::withdraw))
        .merge(htx_web::routes::routes())
        .fallback(htx_web::routes::not_found)
        .with_state(app);
    htx_web::routes::layers(router, BODY_LIMIT)
}

/// The units an account can be restricted to: those of the hub's default
/// hierarchy version that hold part of the plan's territory, the largest
/// first.
fn account_units(hub: &Hub) -> Vec<(String, String)> {
    let h = Hierarchy::current();
    let version = &hub.config().default_unit_version;
    let (Ok(t), Ok(v)) = (
        htx_core::territory::Territory::new(h, &hub.plan().hierarchy, &hub.plan().unit),
        h.version(version),
    ) else {
        return Vec::new();
    };
    let mut units: Vec<_> = v
        .units()
        .filter(|u| {
            t.part(version, &u.code)
                .is_some_and(|p| p != htx_core::territory::Part::Outside)
        })
        .collect();
    units.sort_by_key(|u| (v.ancestors(&u.code).len(), u.name.clone()));
    units
        .into_iter()
        .map(|u| (u.code.clone(), u.name.clone()))
        .collect()
}

/// The header's name: the territory of the plans the hub follows (each
/// named once; a hub of many plans names the Union alone), not only the
/// default plan's.
fn site_name(hub: &Hub) -> String {
    let h = Hierarchy::current();
    let mut names: Vec<String> = Vec::new();
    for plan in hub.plans() {
        let name = h
            .unit(&plan.hierarchy, &plan.unit)
            .map(|u| u.name.clone())
            .unwrap_or_else(|_| plan.id.clone());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match names.len() {
        1..=3 => format!("{} · Hội LHPN", names.join(", ")),
        _ => "Hội LHPN".to_owned(),
    }
}

/// What a page may be asked for in its query string; empty means default.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub hierarchy: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    /// Drill-down: the column to sort by (`name`, `code` or an indicator).
    #[serde(default)]
    pub sort: Option<String>,
    /// Drill-down: `1` sorts from largest to smallest.
    #[serde(default)]
    pub desc: Option<String>,
    /// `csv` or `xlsx`: the page's table as a file.
    #[serde(default)]
    pub format: Option<String>,
    /// Reports: a year (`2025`) or a phase (`phase-1`).
    #[serde(default)]
    pub period: Option<String>,
    /// The records behind a figure: its indicator.
    #[serde(default)]
    pub indicator: Option<String>,
    /// The plan's id (`plan=ID`): one of those the hub follows; empty
    /// means its default plan.
    #[serde(default)]
    pub plan: Option<String>,
}

/// The refusal of a plan the hub does not follow. It repeats nothing of
/// what was asked (the value may be anything) and lists nothing.
pub const NO_SUCH_PLAN: &str =
    "máy chủ tỉnh không theo dõi kế hoạch này / this hub follows no such plan";

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The view a page shows, checked: a plan the hub follows, a known
/// hierarchy version, a date, a phase of the plan, and a unit the officer
/// may see.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The plan whose figures the page shows.
    pub plan: Plan,
    pub version: String,
    pub as_of: Date,
    pub phase: Phase,
    pub unit: String,
    /// The hub's default hierarchy version (accounts' units are in it).
    pub default_version: String,
}

impl Ctx {
    pub fn resolve(app: &App, me: &SignedIn, p: &Params) -> Result<Ctx, WebError> {
        let default_version = app.hub.config().default_unit_version.clone();
        let plan = app
            .hub
            .plan_by(given(&p.plan))
            .map_err(|_| WebError::BadRequest(NO_SUCH_PLAN.into()))?
            .clone();
        let version = match given(&p.hierarchy) {
            Some(v) => v.to_owned(),
            None => views::plan_version(&plan, &default_version),
        };
        let h = Hierarchy::current();
        let v = h.version(&version).map_err(|_| {
            WebError::BadRequest(format!(
                "phiên bản danh mục không tồn tại: {version:?} (2023, 2024, 2025) / unknown hierarchy version"
            ))
        })?;
        let as_of = match given(&p.as_of) {
            None => crate::progress::today(),
            Some(d) => htx_web::format::parse_date(d).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "ngày không hợp lệ: {d:?} (dd/mm/yyyy) / not a date"
                ))
            })?,
        };
        let phase = views::phase(&plan, given(&p.phase), as_of)
            .map_err(|e| WebError::BadRequest(e.to_string()))?
            .clone();
        let unit = match given(&p.unit) {
            Some(u) => {
                if v.unit(u).is_none() {
                    return Err(WebError::NotFound);
                }
                u.to_owned()
            }
            None => views::home_unit(&me.account, &default_version, &version, &plan)
                .ok_or(WebError::Forbidden)?,
        };
        if !views::may_see(&me.account, &default_version, &version, &unit) {
            me.audit("unit_refused", &unit, &me.path);
            return Err(WebError::Forbidden);
        }
        Ok(Ctx {
            plan,
            version,
            as_of,
            phase,
            unit,
            default_version,
        })
    }

    /// The plan's name in the page's language.
    pub fn plan_name(&self, tr: &htx_web::Tr) -> String {
        plan_name(&self.plan, tr.lang)
    }

    /// The query string that shows this view again (links, downloads).
    pub fn query(&self) -> String {
        serde_urlencoded::to_string([
            ("plan", self.plan.id.as_str()),
            ("unit", &self.unit),
            ("as_of", &htx_core::schema::format_date(self.as_of)),
            ("hierarchy", &self.version),
            ("phase", &self.phase.id),
        ])
        .expect("encodes")
    }
}

/// Runs `f` off the async threads (progress reads the store).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, views::ViewError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(view_error)
}

/// A view's error as a page: a unit outside the plan's territory (a
/// district's officer asking another plan, say) is the request's fault.
pub fn view_error(e: views::ViewError) -> WebError {
    if e.is_request() {
        WebError::BadRequest(e.to_string())
    } else {
        WebError::Internal(e.to_string())
    }
}

/// A plan's name in `lang` (Vietnamese first).
pub fn plan_name(plan: &Plan, lang: htx_web::Lang) -> String {
    if lang == htx_web::Lang::Vi && !plan.name_vi.is_empty() {
        plan.name_vi.clone()
    } else {
        plan.name.clone()
    }
}

/// The plan chooser's choices, (id, name): none when the hub follows one
/// plan only (there is nothing to choose).
pub fn plan_choices(app: &App, lang: htx_web::Lang) -> Vec<(String, String)> {
    let plans = app.hub.plans();
    if plans.len() < 2 {
        return Vec::new();
    }
    plans
        .iter()
        .map(|p| (p.id.clone(), plan_name(p, lang)))
        .collect()
}

/// The page's table as a file, if `format` asks for one.
pub fn download(table: &Table, name: &str, format: Option<&str>) -> Option<Response> {
    let (bytes, mime, ext) = match format? {
        "csv" => (table.to_csv(), "text/csv; charset=utf-8", "csv"),
        "xlsx" => match table.to_xlsx() {
            Ok(b) => (
                b,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
            ),
            Err(e) => return Some(WebError::Internal(e.to_string()).into_response()),
        },
        other => {
            return Some(
                WebError::BadRequest(format!(
                    "định dạng không hỗ trợ: {other:?} (csv, xlsx) / unsupported format"
                ))
                .into_response(),
            );
        }
    };
    Some(file(bytes, mime, &format!("{name}.{ext}")))
}

/// A file to download.
pub fn file(bytes: Vec<u8>, mime: &'static str, filename: &str) -> Response {
    let safe: String = filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    (
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The name of indicator `id` of `plan`, in `lang` (its id if unknown).
pub fn plan_indicator_name(plan: &htx_core::plan::Plan, lang: htx_web::Lang, id: &str) -> String {
    plan.indicator(id)
        .map(|i| {
            if lang == htx_web::Lang::Vi && !i.name_vi.is_empty() {
                i.name_vi.clone()
            } else {
                i.name.clone()
            }
        })
        .unwrap_or_else(|| id.to_owned())
}

/// A phase's name in the officer's language.
pub fn phase_name(lang: htx_web::Lang, p: &Phase) -> String {
    if lang == htx_web::Lang::Vi && !p.name_vi.is_empty() {
        p.name_vi.clone()
    } else {
        p.name.clone()
    }
}

/// The first number in a target's text ("≥ 10" → 10, "5–7" → 5): the
/// scale of a progress bar. `None` for a milestone.
pub fn target_number(target: &str) -> Option<f64> {
    let start = target.find(|c: char| c.is_ascii_digit())?;
    let rest = &target[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok().filter(|x: &f64| *x > 0.0)
}

/// A figure's value as people read it: a count with thousands separators,
/// or a percent with its numerator and denominator.
pub fn value_text(lang: htx_web::Lang, f: &htx_proto::v1::Figure) -> String {
    figure_text(
        lang,
        &f.compute,
        &f.measure,
        f.numerator,
        f.denominator,
        f.value,
    )
}

/// As [`value_text`], from a figure's parts (a closed period's figures
/// are kept without the wire type): an amount in đồng (`measure` "vnd")
/// says so.
pub fn figure_text(
    lang: htx_web::Lang,
    compute: &str,
    measure: &str,
    numerator: i64,
    denominator: i64,
    value: Option<f64>,
) -> String {
    use htx_web::format;
    match (compute, value) {
        ("ratio", Some(v)) => format!(
            "{}% ({}/{})",
            format::decimal(lang, v),
            format::count(lang, numerator),
            format::count(lang, denominator)
        ),
        ("ratio", None) => format!("– (0/{})", format::count(lang, denominator)),
        _ if measure == "vnd" => format!("{} đ", format::count(lang, numerator)),
        _ => format::count(lang, numerator),
    }
}

/// A figure's value as a number (a percent for a ratio).
pub fn value_number(f: &htx_proto::v1::Figure) -> Option<f64> {
    if f.compute == "ratio" {
        f.value
    } else {
        Some(f.numerator as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_numbers() {
        assert_eq!(target_number("≥ 10"), Some(10.0));
        assert_eq!(target_number("> 400"), Some(400.0));
        assert_eq!(target_number("5–7"), Some(5.0));
        assert_eq!(target_number("≥ 100%"), Some(100.0));
        assert_eq!(target_number("milestone"), None);
    }
}
