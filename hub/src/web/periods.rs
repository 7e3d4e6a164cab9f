//! # Periods: closing the figures, submissions
//!
//! `/periods` lists the plan's periods (years and phases) with whether
//! each is closed and how many units have submitted. `/periods?period=P`
//! shows one: who closed it and when, with which data version; for the
//! officer's unit, each closed figure beside the current one, the units
//! below whose figures moved, and the records that make the difference
//! (id, kind, unit, date; people's names only for analysts and admins);
//! who has submitted and who has not. Forms (POST, CSRF-checked): close
//! (analyst or admin over the whole territory), reopen (admin), submit
//! (an officer for their own district or commune).
//!
//! The report page of a closed period shows the same comparison
//! ([`comparison`]).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use htx_core::plan::Plan;
use htx_core::units::Hierarchy;
use htx_web::{Posted, SignedIn, Tr, WebError, format};
use serde::Deserialize;

use super::{App, Ctx, Params};
use crate::periods::{self, Closing, Comparison, PeriodError, PeriodStore};
use crate::report::{self, Period};
use crate::views;

/// A period in the list.
pub struct ListRow {
    pub id: String,
    pub name: String,
    pub closed: String,
    pub submitted: usize,
}

/// A figure, closed and now.
pub struct FigureRow {
    pub unit: String,
    pub unit_name: String,
    pub indicator: String,
    pub name: String,
    pub closed: String,
    pub now: String,
    pub moved: bool,
}

/// A record that makes a difference.
pub struct RecordRow {
    pub id: String,
    pub change: String,
    pub change_label: String,
    pub kind: String,
    pub unit: String,
    pub date: String,
    /// Its name: a cooperative's or a title; a person's only if allowed.
    pub name: String,
}

/// The comparison of a closed period, as shown on the period's page and
/// on its report's page.
#[derive(Template)]
#[template(path = "period_diff.html")]
pub struct DiffPartial {
    pub tr: Tr,
    pub plan: String,
    pub period: String,
    /// "Closed by X on D".
    pub closed_line: String,
    pub data_version: String,
    pub data_version_now: String,
    pub moved: usize,
    pub top: Vec<FigureRow>,
    pub below: Vec<FigureRow>,
    pub records: Vec<RecordRow>,
    /// On the report page: a link to the period's page.
    pub link: bool,
}

pub struct SubmissionRow {
    pub unit: String,
    pub name: String,
    pub by: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "periods.html")]
struct Partial {
    tr: Tr,
    csrf: String,
    /// The plan's id (every link and form carries it), and the chooser's
    /// choices (none if the hub follows one plan).
    plan: String,
    plan_name: String,
    plans: Vec<(String, String)>,
    list: Vec<ListRow>,
    /// The period shown, if one is asked for.
    period: Option<Period>,
    period_name: String,
    period_span: String,
    unit: String,
    unit_name: String,
    closed: bool,
    history: Vec<(String, String, String)>,
    can_close: bool,
    can_reopen: bool,
    not_over: bool,
    /// The officer's own units that may submit: (code, name, when and
    /// by whom it was submitted, empty if not yet).
    mine: Vec<(String, String, String)>,
    submissions: Vec<SubmissionRow>,
    diff: String,
}

#[derive(Debug, Deserialize)]
pub struct PeriodForm {
    pub period: String,
    #[serde(default)]
    pub unit: String,
    /// The plan's id; empty: the hub's default plan.
    #[serde(default)]
    pub plan: String,
}

/// The plan a page or form asks for (`plan=ID`), or the hub's default.
fn plan_of<'a>(app: &'a App, id: Option<&str>) -> Result<&'a Plan, WebError> {
    app.hub
        .plan_by(id)
        .map_err(|_| WebError::BadRequest(super::NO_SUCH_PLAN.into()))
}

fn period_of(plan: &Plan, s: &str) -> Result<Period, WebError> {
    report::parse_period(plan, s).map_err(|e| WebError::BadRequest(e.to_string()))
}

fn web_error(e: PeriodError) -> WebError {
    if e.is_request() {
        WebError::BadRequest(e.to_string())
    } else {
        WebError::Internal(e.to_string())
    }
}

fn store(app: &App) -> PeriodStore {
    PeriodStore::new(&app.hub.home().dir)
}

/// The version `plan`'s periods are closed in ([`views::plan_version`]:
/// the hub's own, unless the plan's territory is no unit of it).
fn version(app: &App, plan: &Plan) -> String {
    views::plan_version(plan, &app.hub.config().default_unit_version)
}

/// The plan's territory in its periods' version (what a period closes).
fn territory(app: &App, plan: &Plan) -> String {
    let h = Hierarchy::current();
    h.resolve(&plan.hierarchy, &plan.unit, &version(app, plan))
        .unwrap_or_else(|_| plan.unit.clone())
}

/// Whether the officer may close `plan`'s periods: analyst or admin, over
/// the whole territory.
fn may_close(app: &App, me: &SignedIn, plan: &Plan) -> bool {
    let d = &app.hub.config().default_unit_version;
    me.account.role >= htx_web::Role::Analyst
        && views::may_see(&me.account, d, &version(app, plan), &territory(app, plan))
}

fn unit_name(version: &str, code: &str) -> String {
    Hierarchy::current()
        .unit(version, code)
        .map(|u| u.name.clone())
        .unwrap_or_else(|_| code.to_owned())
}

/// A closed (or current) figure as people read it; what it counts in
/// comes from the plan.
fn figure_text(plan: &Plan, lang: htx_web::Lang, f: &periods::ClosedFigure) -> String {
    let measure = plan.indicator(&f.indicator).map_or("", |i| i.measure());
    super::figure_text(
        lang,
        &f.compute,
        measure,
        f.numerator,
        f.denominator,
        f.value,
    )
}

/// The comparison of `closing` of `plan` for `unit`, rendered (reads the
/// store).
pub async fn comparison(
    app: &App,
    me: &SignedIn,
    plan: &Plan,
    period: &Period,
    closing: &Closing,
    unit: &str,
    link: bool,
) -> Result<String, WebError> {
    let (hub, c, u, pl) = (
        app.hub.clone(),
        closing.clone(),
        unit.to_owned(),
        plan.clone(),
    );
    let (cmp, records): (Comparison, Vec<htx_core::schema::Record>) =
        tokio::task::spawn_blocking(move || {
            let all = hub
                .export(true)
                .map_err(|e| PeriodError::View(Box::new(e.into())))?;
            let cmp = periods::compare_with(&hub, &pl, &c, &u, &all)?;
            let ids: std::collections::BTreeSet<&str> =
                cmp.records.iter().map(|r| r.id.as_str()).collect();
            let records = all
                .into_iter()
                .filter(|r| ids.contains(r.id.as_str()))
                .collect();
            Ok::<_, PeriodError>((cmp, records))
        })
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(web_error)?;
    let tr = me.tr();
    let lang = tr.lang;
    let people = views::may_see_people(&me.account);
    let rows: Vec<FigureRow> = cmp
        .figures
        .iter()
        .map(|f| FigureRow {
            unit: f.unit.clone(),
            unit_name: f.unit_name.clone(),
            indicator: f.closed.indicator.clone(),
            name: super::plan_indicator_name(plan, lang, &f.closed.indicator),
            closed: figure_text(plan, lang, &f.closed),
            now: f
                .now
                .as_ref()
                .map(|n| figure_text(plan, lang, n))
                .unwrap_or_else(|| "–".into()),
            moved: f.differs(),
        })
        .collect();
    let (top, below): (Vec<FigureRow>, Vec<FigureRow>) =
        rows.into_iter().partition(|r| r.unit == unit);
    let records = cmp
        .records
        .iter()
        .map(|d| {
            let rec = records.iter().find(|r| r.id == d.id);
            let person = matches!(d.mark.kind.as_str(), "manager" | "cadre");
            let name = rec
                .and_then(|r| r.text("name").or(r.text("title")))
                .filter(|_| people || !person)
                .unwrap_or("")
                .to_owned();
            RecordRow {
                id: d.id.clone(),
                change: d.change.as_str().to_owned(),
                change_label: tr.t(&format!("hub-period-change-{}", d.change.as_str())),
                kind: tr.t(&format!("kind-{}", d.mark.kind)),
                unit: format!(
                    "{} ({})",
                    unit_name(&closing.hierarchy, &d.mark.unit),
                    d.mark.unit
                ),
                date: d
                    .mark
                    .date
                    .as_deref()
                    .and_then(|s| htx_core::progress::parse_date(s).ok())
                    .map(format::date)
                    .unwrap_or_else(|| tr.t("hub-period-undated")),
                name,
            }
        })
        .collect();
    Ok(DiffPartial {
        tr,
        plan: plan.id.clone(),
        period: period.id.clone(),
        closed_line: tr.ta(
            "hub-period-closed-by",
            &[
                ("by", closing.by.clone()),
                (
                    "at",
                    format::date_text(&closing.at) + " " + closing.at.get(11..16).unwrap_or(""),
                ),
            ],
        ),
        data_version: closing.data_version.clone(),
        data_version_now: cmp.data_version_now.clone(),
        moved: cmp.moved(),
        below: below.into_iter().filter(|r| r.moved).collect(),
        top,
        records,
        link,
    }
    .render()?)
}

pub async fn page(
    me: SignedIn,
    State(app): State<App>,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let tr = me.tr();
    let plan = plan_of(&app, super::given(&p.plan))?;
    let st = store(&app);
    let files = st.list(&plan.id).map_err(web_error)?;
    let list: Vec<ListRow> = super::reports::periods(plan)
        .into_iter()
        .map(|(id, name)| {
            let f = files.iter().find(|f| f.period == id);
            ListRow {
                closed: f
                    .and_then(|f| f.closing.as_ref())
                    .map(|c| format!("{} · {}", format::date_text(&c.at), c.by))
                    .unwrap_or_default(),
                submitted: f.map(|f| f.submissions.len()).unwrap_or(0),
                id,
                name,
            }
        })
        .collect();
    let Some(asked) = super::given(&p.period) else {
        let partial = Partial {
            tr,
            csrf: me.csrf().to_owned(),
            plan: plan.id.clone(),
            plan_name: super::plan_name(plan, tr.lang),
            plans: super::plan_choices(&app, tr.lang),
            list,
            period: None,
            period_name: String::new(),
            period_span: String::new(),
            unit: String::new(),
            unit_name: String::new(),
            closed: false,
            history: Vec::new(),
            can_close: false,
            can_reopen: false,
            not_over: false,
            mine: Vec::new(),
            submissions: Vec::new(),
            diff: String::new(),
        }
        .render()?;
        return Ok(me.page("hub-periods-title", &partial)?.into_response());
    };
    let period = period_of(plan, asked)?;
    // Periods are closed in the plan's version: the unit asked is checked
    // in it, whatever else the query says.
    let ctx = Ctx::resolve(
        &app,
        &me,
        &Params {
            unit: p.unit.clone(),
            plan: Some(plan.id.clone()),
            ..Default::default()
        },
    )?;
    let file = st.load(&plan.id, &period.id).map_err(web_error)?;
    let version = ctx.version.clone();
    let diff = match &file.closing {
        Some(c) => comparison(&app, &me, plan, &period, c, &ctx.unit, false).await?,
        None => String::new(),
    };
    let h = Hierarchy::current();
    let v = h
        .version(&version)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let terr = territory(&app, plan);
    let submissions = v
        .children(&ctx.unit)
        .map(|u| {
            let s = file.submissions.get(&u.code);
            SubmissionRow {
                unit: u.code.clone(),
                name: u.name.clone(),
                by: s.map(|s| s.by.clone()).unwrap_or_default(),
                at: s
                    .map(|s| format::date_text(&s.at) + " " + s.at.get(11..16).unwrap_or(""))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let mine = me
        .account
        .units
        .iter()
        .filter(|u| **u != terr && v.within(u, &terr))
        .map(|u| {
            let done = file.submissions.get(u).map(|s| {
                tr.ta(
                    "hub-period-submitted-by",
                    &[
                        ("by", s.by.clone()),
                        (
                            "at",
                            format::date_text(&s.at) + " " + s.at.get(11..16).unwrap_or(""),
                        ),
                    ],
                )
            });
            (u.clone(), unit_name(&version, u), done.unwrap_or_default())
        })
        .collect();
    let period_name = super::reports::periods(plan)
        .into_iter()
        .find(|(id, _)| *id == period.id)
        .map(|(_, n)| n)
        .unwrap_or_else(|| period.id.clone());
    let history = file
        .history
        .iter()
        .rev()
        // Another district's submissions are not a district's business.
        .filter(|e| {
            e.unit.is_empty()
                || views::may_see(&me.account, &ctx.default_version, &version, &e.unit)
        })
        .map(|e| {
            let what = tr.t(&format!("hub-period-event-{}", e.action));
            let what = if e.unit.is_empty() {
                what
            } else {
                format!("{what} ({})", unit_name(&version, &e.unit))
            };
            (
                format::date_text(&e.at) + " " + e.at.get(11..16).unwrap_or(""),
                what,
                e.by.clone(),
            )
        })
        .collect();
    let closed = file.closing.is_some();
    let partial = Partial {
        tr,
        csrf: me.csrf().to_owned(),
        plan: plan.id.clone(),
        plan_name: super::plan_name(plan, tr.lang),
        plans: super::plan_choices(&app, tr.lang),
        list,
        period_name,
        period_span: format!(
            "{} – {}",
            format::date(period.from),
            format::date(period.to)
        ),
        unit_name: unit_name(&version, &ctx.unit),
        unit: ctx.unit.clone(),
        closed,
        history,
        can_close: !closed && may_close(&app, &me, plan),
        can_reopen: closed && me.account.is_admin() && may_close(&app, &me, plan),
        not_over: period.to >= crate::progress::today(),
        period: Some(period),
        mine,
        submissions,
        diff,
    }
    .render()?;
    Ok(me.page("hub-periods-title", &partial)?.into_response())
}

fn back(plan: &Plan, period: &str) -> Response {
    let q = serde_urlencoded::to_string([("plan", plan.id.as_str()), ("period", period)])
        .expect("encodes");
    Redirect::to(&format!("/periods?{q}")).into_response()
}

/// `POST /periods/close`: analyst or admin over the whole territory.
pub async fn close(
    me: SignedIn,
    State(app): State<App>,
    Posted(form): Posted<PeriodForm>,
) -> Result<Response, WebError> {
    let plan = plan_of(&app, Some(&form.plan))?.clone();
    let period = period_of(&plan, &form.period)?;
    if !may_close(&app, &me, &plan) {
        me.audit("period_close_refused", &period.id, "role or unit");
        return Err(WebError::Forbidden);
    }
    let hub = app.hub.clone();
    let (p, by, pl) = (period.clone(), me.name().to_owned(), plan.clone());
    let closing = tokio::task::spawn_blocking(move || {
        let p = periods::ended_period(&pl, &p.id)?;
        periods::close(&hub, &pl, &p, &by)
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(web_error)?;
    me.audit("period_closed", &period.id, &closing.data_version);
    Ok(back(&plan, &period.id))
}

/// `POST /periods/reopen`: admins only.
pub async fn reopen(
    me: SignedIn,
    State(app): State<App>,
    Posted(form): Posted<PeriodForm>,
) -> Result<Response, WebError> {
    let plan = plan_of(&app, Some(&form.plan))?;
    let period = period_of(plan, &form.period)?;
    if !(me.account.is_admin() && may_close(&app, &me, plan)) {
        me.audit("period_reopen_refused", &period.id, "role or unit");
        return Err(WebError::Forbidden);
    }
    store(&app)
        .reopen(&plan.id, &period, me.name())
        .map_err(web_error)?;
    me.audit("period_reopened", &period.id, "");
    Ok(back(plan, &period.id))
}

/// `POST /periods/submit`: an officer marks their own unit's part (a
/// district or commune within the territory) as submitted.
pub async fn submit(
    me: SignedIn,
    State(app): State<App>,
    Posted(form): Posted<PeriodForm>,
) -> Result<Response, WebError> {
    let (plan, period, unit) = own_part(&app, &me, &form, "period_submit_refused")?;
    let unit = unit.as_str();
    let hub = app.hub.clone();
    let data_version = tokio::task::spawn_blocking(move || views::data_version(&hub))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    store(&app)
        .submit(&plan.id, &period, unit, me.name(), &data_version)
        .map_err(web_error)?;
    me.audit("period_submitted", &period.id, unit);
    Ok(back(plan, &period.id))
}

/// `POST /periods/withdraw`: an officer takes back their own unit's
/// submission (the history keeps it).
pub async fn withdraw(
    me: SignedIn,
    State(app): State<App>,
    Posted(form): Posted<PeriodForm>,
) -> Result<Response, WebError> {
    let (plan, period, unit) = own_part(&app, &me, &form, "period_withdraw_refused")?;
    store(&app)
        .withdraw(&plan.id, &period, &unit, me.name())
        .map_err(web_error)?;
    me.audit("period_withdrawn", &period.id, &unit);
    Ok(back(plan, &period.id))
}

/// The plan, period and unit of a submit or withdraw form, checked: a
/// period of a plan the hub follows, a unit below the plan's territory,
/// and one of the officer's own (refused and audited as `refused`
/// otherwise).
fn own_part<'a>(
    app: &'a App,
    me: &SignedIn,
    form: &PeriodForm,
    refused: &str,
) -> Result<(&'a Plan, Period, String), WebError> {
    let plan = plan_of(app, Some(&form.plan))?;
    let period = period_of(plan, &form.period)?;
    let d = &app.hub.config().default_unit_version;
    let v = version(app, plan);
    let terr = territory(app, plan);
    let unit = form.unit.trim();
    let h = Hierarchy::current();
    let below = h
        .version(&v)
        .is_ok_and(|hv| hv.unit(unit).is_some() && unit != terr && hv.within(unit, &terr));
    if !below {
        return Err(web_error(PeriodError::NotBelow(unit.to_owned())));
    }
    if !views::may_see(&me.account, d, &v, unit) {
        me.audit(refused, &period.id, unit);
        return Err(WebError::Forbidden);
    }
    Ok((plan, period, unit.to_owned()))
}
