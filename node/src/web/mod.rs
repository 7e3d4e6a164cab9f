//! # The officers' web app, served by `htx-node run`
//!
//! Pages on the shared layer (`htx-web`): one module per area, each a few
//! thin handlers that call one operation of [`Node`] (or [`crate::query`])
//! and fill an askama partial from `node/templates/`.
//! - [`home`] — progress of the node's units, the sync banner, what needs
//!   attention;
//! - [`coops`] — cooperatives per commune (search, filters), a
//!   cooperative's page;
//! - [`sheets`] — import a spreadsheet (check, every error, confirm),
//!   templates, exports;
//! - [`forms`] — add and edit forms for every kind of record, built from
//!   the schema (`core/src/schema.rs`): references picked by name, dates
//!   dd/mm/yyyy, the schema's errors beside each field, in Vietnamese.
//!
//! On the office LAN the app serves HTTPS ([`tls`]).
//!
//! Every page requires a signed-in officer ([`htx_web::SignedIn`]); every
//! form is CSRF-checked ([`htx_web::Posted`]); an officer restricted to
//! some units sees and changes only their records (a record of another
//! unit is "not found", so its id tells nothing).

pub mod coops;
pub mod forms;
pub mod home;
pub mod sheets;
pub mod tls;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use htx_web::{NavItem, Settings, Web, WebError};
use tokio::net::TcpListener;

use crate::node::{Node, NodeError, Officer};

/// Largest form body accepted (a record's form is a few KiB).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Largest spreadsheet upload: the largest file read, and the form around it.
pub const UPLOAD_LIMIT: usize = crate::sheets::MAX_FILE_BYTES as usize + BODY_LIMIT;

/// The router's state: the node and the web layer.
#[derive(Clone)]
pub struct App {
    pub node: Node,
    pub web: Web,
    /// Spreadsheets checked and waiting for their officer's confirmation.
    pub pending: sheets::Pending,
}

impl FromRef<App> for Web {
    fn from_ref(app: &App) -> Web {
        app.web.clone()
    }
}

impl App {
    /// The web app of `node`: accounts and audit in the node's directory.
    /// `https`: served over TLS, so cookies are marked `Secure`.
    pub fn new(node: Node, https: bool) -> App {
        let nav = vec![
            NavItem {
                path: "/",
                label: "nav-home",
            },
            NavItem {
                path: "/cooperatives",
                label: "nav-cooperatives",
            },
            NavItem {
                path: "/import",
                label: "nav-import",
            },
        ];
        let name = format!(
            "{} · {}",
            node.bundle().node,
            node.unit_name(&node.bundle().unit)
        );
        let mut settings = Settings::new(name, nav);
        settings.secure_cookies = https;
        settings.units = node
            .progress_units(&[])
            .into_iter()
            .map(|u| (u.code, u.name))
            .collect();
        let web = Web::open(node.dir(), settings);
        App {
            node,
            web,
            pending: sheets::Pending::default(),
        }
    }
}

pub fn router(app: App) -> Router {
    let pages = Router::new()
        .route("/", get(home::home))
        .route("/cooperatives", get(coops::list))
        .route("/records/{id}", get(coops::record))
        .route("/records/{id}/delete", post(coops::delete))
        .route("/records/{id}/restore", post(coops::restore))
        .route("/records/{id}/settle", post(coops::settle))
        .route("/new/{kind}", get(forms::new_form).post(forms::create))
        .route(
            "/records/{id}/edit",
            get(forms::edit_form).post(forms::update),
        )
        .route("/import/confirm", post(sheets::confirm))
        .route("/import/template/{kind}", get(sheets::template))
        .route("/export/{kind}", get(sheets::export))
        .route(
            "/import",
            get(sheets::page)
                .post(sheets::upload)
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .merge(htx_web::routes::routes::<App>())
        .fallback(htx_web::routes::not_found);
    htx_web::routes::layers(pages, BODY_LIMIT).with_state(app)
}

/// Serves the app on `listener` until `shutdown` resolves: over TLS with
/// `tls`, else plain HTTP.
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            axum::serve(tls::Listener::new(listener, config)?, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// The officer behind a request, as the domain knows them.
pub fn officer(me: &htx_web::SignedIn) -> Officer {
    Officer {
        name: me.account.name.clone(),
        units: me.account.units.clone(),
    }
}

/// Runs a node operation off the async threads (they take the replica lock
/// and read the store).
pub async fn blocking<T: Send + 'static>(
    node: &Node,
    f: impl FnOnce(Node) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, WebError> {
    let node = node.clone();
    tokio::task::spawn_blocking(move || f(node))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))
}
