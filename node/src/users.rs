//! # `htx-node user`: officers' accounts for the web app
//!
//! Accounts are the web layer's (`htx_web::accounts`, in `DIR/users.json`),
//! never synced. These commands work whether or not `run` is running (the
//! running app reads the file on every request, so a disabled account is
//! signed out at its next click). Passwords are asked for without echo on
//! a terminal, or read from the first line of stdin when it is not one;
//! never taken from the command line, where `ps` and shell history would
//! keep them.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, bail};
use htx_core::pki::Bundle;
use htx_core::units::Hierarchy;
use htx_web::accounts::{Accounts, Lockout, Role};

use crate::cli::UserCommand;
use crate::node::Node;

fn accounts(dir: &Path) -> anyhow::Result<(Accounts, Bundle)> {
    let text = std::fs::read_to_string(dir.join(Node::BUNDLE_FILE)).with_context(|| {
        format!(
            "{} is not a node directory; run `htx-node init` first / thư mục chưa được khởi tạo",
            dir.display()
        )
    })?;
    let bundle = Bundle::parse(&text)?;
    Ok((Accounts::new(dir, Lockout::default()), bundle))
}

/// A new password: asked twice on a terminal, else one line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Mật khẩu / Password: ")?;
        let b = rpassword::prompt_password("Nhập lại / Again: ")?;
        if a != b {
            bail!("the two passwords differ / hai mật khẩu không khớp");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

pub fn main(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            dir,
            name,
            role,
            units,
        } => {
            let (accounts, bundle) = accounts(&dir)?;
            let role: Role = role.parse()?;
            let version = Hierarchy::current().version(&bundle.unit_version)?;
            for u in &units {
                if version.unit(u).is_none() || !version.within(u, &bundle.unit) {
                    bail!(
                        "--unit {u}: not a unit of this node ({} and below) / đơn vị không thuộc phạm vi của nút",
                        bundle.unit
                    );
                }
            }
            let password = read_password()?;
            let a = accounts.add(&name, role, units, &password)?;
            println!(
                "account {} ({}) created / đã tạo tài khoản",
                a.name,
                a.role.as_str()
            );
        }
        UserCommand::Passwd { dir, name } => {
            let (accounts, _) = accounts(&dir)?;
            if accounts.get(&name)?.is_none() {
                bail!("no account named {name:?} / không có tài khoản này");
            }
            accounts.set_password(&name, &read_password()?)?;
            println!("password of {name} changed / đã đổi mật khẩu");
        }
        UserCommand::Disable { dir, name, enable } => {
            let (accounts, _) = accounts(&dir)?;
            accounts.set_disabled(&name, !enable)?;
            if enable {
                println!("{name} enabled / đã mở lại tài khoản");
            } else {
                println!("{name} disabled / đã khóa tài khoản");
            }
        }
        UserCommand::List { dir } => {
            let (accounts, _) = accounts(&dir)?;
            println!("{:<20} {:<8} {:<10} units", "name", "role", "state");
            for a in accounts.list()? {
                let state = if a.disabled {
                    "disabled"
                } else if a.locked_until.as_deref().is_some_and(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|t| t > time::OffsetDateTime::now_utc())
                }) {
                    "locked"
                } else {
                    "active"
                };
                let units = if a.units.is_empty() {
                    "(all)".to_owned()
                } else {
                    a.units.join(",")
                };
                println!(
                    "{:<20} {:<8} {:<10} {units}",
                    a.name,
                    a.role.as_str(),
                    state
                );
            }
        }
    }
    Ok(())
}
