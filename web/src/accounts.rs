//! # Officers' accounts
//!
//! Kept in `DIR/users.json` (mode 0600), beside the application's store and
//! never synced: an account belongs to the office whose machine it is on.
//! Why a small JSON file and not the node's redb store: `htx-node user add`
//! must work while `htx-node run` holds the store's lock, accounts are a
//! few dozen, and the file is read again on every request, so `disable` or
//! a new password takes effect at once in the running app. Every change is
//! a read-modify-write under an exclusive file lock (`users.json.lock`),
//! written to a temporary file, synced and renamed: a crash leaves the old
//! file or the new one, never half of one.
//!
//! Passwords are argon2id hashes (PHC strings); a name that does not exist
//! costs the same time as a wrong password. After
//! [`Lockout::max_failures`] failed sign-ins in a row an account is locked
//! for [`Lockout::minutes`], whatever password comes next; the counter is
//! on disk, so restarting the app does not reset it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::i18n::Lang;

/// What an officer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read, and work on figures (at the hub: close periods); changes no
    /// records.
    Analyst,
    /// Read, and change records of the units allowed.
    Editor,
    /// Everything, accounts included.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = AccountError;
    fn from_str(s: &str) -> Result<Role, AccountError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(AccountError::BadRole(other.to_owned())),
        }
    }
}

/// One officer's account, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// Unit codes this officer is restricted to (and the units below
    /// them); empty: every unit of the application.
    #[serde(default)]
    pub units: Vec<String>,
    /// argon2id, PHC string format.
    pub password: String,
    #[serde(default)]
    pub disabled: bool,
    /// The language chosen on the pages; Vietnamese if none.
    #[serde(default)]
    pub lang: Option<Lang>,
    #[serde(default)]
    pub failed_logins: u32,
    /// RFC 3339; set when the account is locked after failed sign-ins.
    #[serde(default)]
    pub locked_until: Option<String>,
    pub created_at: String,
}

impl Account {
    /// No one: a viewer of every unit with no name, for what a page shows
    /// a visitor who has not signed in (its defaults, never its rights).
    pub fn nobody() -> Account {
        Account {
            name: String::new(),
            role: Role::Viewer,
            units: Vec::new(),
            password: String::new(),
            disabled: true,
            lang: None,
            failed_logins: 0,
            locked_until: None,
            created_at: String::new(),
        }
    }

    /// Whether this officer may change records (their unit is checked
    /// separately with [`Account::covers`]).
    pub fn may_write(&self) -> bool {
        self.role >= Role::Editor
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    /// Whether `unit` is within the officer's units; `within(a, b)` says
    /// whether unit `a` is `b` or below it (the application's hierarchy).
    pub fn covers(&self, unit: &str, within: impl Fn(&str, &str) -> bool) -> bool {
        self.units.is_empty() || self.units.iter().any(|u| within(unit, u))
    }
}

/// Lock-out after failed sign-ins.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub max_failures: u32,
    pub minutes: i64,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            max_failures: 5,
            minutes: 15,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot read or write {path}: {error} / không đọc, ghi được tệp tài khoản")]
    Io { path: String, error: String },
    #[error("{path} is damaged ({error}); fix or restore it from a backup / tệp tài khoản bị hỏng")]
    Damaged { path: String, error: String },
    #[error("an account named {0:?} already exists / tài khoản đã tồn tại")]
    Exists(String),
    #[error("no account named {0:?} / không có tài khoản này")]
    NotFound(String),
    #[error(
        "{0:?} is not a valid account name: 1 to 64 letters, digits, '.', '_' or '-' / tên tài khoản không hợp lệ"
    )]
    BadName(String),
    #[error("{0:?} is not a role: admin, editor, analyst or viewer / vai trò không hợp lệ")]
    BadRole(String),
    #[error(
        "the password must have at least {MIN_PASSWORD} characters / mật khẩu phải có ít nhất {MIN_PASSWORD} ký tự"
    )]
    WeakPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SignInError {
    /// Unknown name, wrong password or disabled account: the same answer
    /// for each, so the form does not tell which names exist.
    Refused,
    /// Too many failed sign-ins: locked until this time (RFC 3339).
    Locked { until: String },
    /// The accounts file could not be read or written.
    Unavailable(String),
}

pub const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, Account>,
}

/// The accounts of one application directory.
#[derive(Debug, Clone)]
pub struct Accounts {
    path: PathBuf,
    lock_path: PathBuf,
    lockout: Lockout,
}

pub const FILE: &str = "users.json";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formats")
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to check unknown names against, so they cost as much as known ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").expect("hashes"))
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_owned()))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AccountError::WeakPassword);
    }
    Ok(())
}

impl Accounts {
    pub fn new(dir: &Path, lockout: Lockout) -> Accounts {
        Accounts {
            path: dir.join(FILE),
            lock_path: dir.join(format!("{FILE}.lock")),
            lockout,
        }
    }

    fn io(&self, e: std::io::Error) -> AccountError {
        AccountError::Io {
            path: self.path.display().to_string(),
            error: e.to_string(),
        }
    }

    fn read(&self) -> Result<UsersFile, AccountError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AccountError::Damaged {
                path: self.path.display().to_string(),
                error: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Read, change, write back, all under the file lock.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut UsersFile) -> Result<R, AccountError>,
    ) -> Result<R, AccountError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        let mut file = self.read()?;
        let out = change(&mut file)?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&file).expect("serializes");
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| self.io(e))?;
        Ok(out)
    }

    /// Creates an account.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        units: Vec<String>,
        password: &str,
    ) -> Result<Account, AccountError> {
        check_name(name)?;
        check_password(password)?;
        let account = Account {
            name: name.to_owned(),
            role,
            units,
            password: hash_password(password)?,
            disabled: false,
            lang: None,
            failed_logins: 0,
            locked_until: None,
            created_at: rfc3339(now()),
        };
        self.update(|f| {
            if f.users.contains_key(name) {
                return Err(AccountError::Exists(name.to_owned()));
            }
            f.users.insert(name.to_owned(), account.clone());
            Ok(account)
        })
    }

    fn change(&self, name: &str, edit: impl FnOnce(&mut Account)) -> Result<(), AccountError> {
        self.update(|f| {
            let a = f
                .users
                .get_mut(name)
                .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
            edit(a);
            Ok(())
        })
    }

    /// Sets a new password; also lifts a lock-out.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.change(name, |a| {
            a.password = hash;
            a.failed_logins = 0;
            a.locked_until = None;
        })
    }

    /// Sets what an officer may do and where.
    pub fn set_access(
        &self,
        name: &str,
        role: Role,
        units: Vec<String>,
    ) -> Result<(), AccountError> {
        self.change(name, |a| {
            a.role = role;
            a.units = units;
        })
    }

    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), AccountError> {
        self.change(name, |a| a.disabled = disabled)
    }

    pub fn set_lang(&self, name: &str, lang: Lang) -> Result<(), AccountError> {
        self.change(name, |a| a.lang = Some(lang))
    }

    pub fn list(&self) -> Result<Vec<Account>, AccountError> {
        Ok(self.read()?.users.into_values().collect())
    }

    pub fn get(&self, name: &str) -> Result<Option<Account>, AccountError> {
        Ok(self.read()?.users.remove(name))
    }

    /// Checks a name and password (slow on purpose: argon2). Counts
    /// failures and locks the account after too many.
    pub fn sign_in(&self, name: &str, password: &str) -> Result<Account, SignInError> {
        let unavailable = |e: AccountError| SignInError::Unavailable(e.to_string());
        let account = self.get(name).map_err(unavailable)?;
        let Some(account) = account else {
            verify_password(password, decoy_hash());
            return Err(SignInError::Refused);
        };
        if let Some(until) = account.locked_until.as_deref()
            && OffsetDateTime::parse(until, &Rfc3339).is_ok_and(|t| t > now())
        {
            return Err(SignInError::Locked {
                until: until.to_owned(),
            });
        }
        let good = password.len() <= MAX_PASSWORD && verify_password(password, &account.password);
        let lockout = self.lockout;
        self.update(|f| {
            let Some(a) = f.users.get_mut(name) else {
                return Ok(Err(SignInError::Refused));
            };
            if good {
                a.failed_logins = 0;
                a.locked_until = None;
                if a.disabled {
                    return Ok(Err(SignInError::Refused));
                }
                return Ok(Ok(a.clone()));
            }
            a.failed_logins += 1;
            if a.failed_logins >= lockout.max_failures {
                let until = rfc3339(now() + time::Duration::minutes(lockout.minutes));
                a.locked_until = Some(until.clone());
                a.failed_logins = 0;
                return Ok(Err(SignInError::Locked { until }));
            }
            Ok(Err(SignInError::Refused))
        })
        .map_err(unavailable)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_account_refuses_even_the_right_password() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::new(dir.path(), Lockout::default());
        accounts
            .add("lan", Role::Editor, vec![], "mật khẩu đủ dài")
            .unwrap();
        assert_eq!(
            accounts.sign_in("lan", "mật khẩu đủ dài").unwrap().name,
            "lan"
        );
        for _ in 0..4 {
            assert_eq!(accounts.sign_in("lan", "sai"), Err(SignInError::Refused));
        }
        assert!(matches!(
            accounts.sign_in("lan", "sai"),
            Err(SignInError::Locked { .. })
        ));
        assert!(matches!(
            accounts.sign_in("lan", "mật khẩu đủ dài"),
            Err(SignInError::Locked { .. })
        ));
        // A new password from the administrator lifts the lock.
        accounts.set_password("lan", "một mật khẩu mới").unwrap();
        assert!(accounts.sign_in("lan", "một mật khẩu mới").is_ok());
    }

    #[test]
    fn disabled_and_unknown_accounts_get_the_same_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::new(dir.path(), Lockout::default());
        accounts
            .add("hoa", Role::Viewer, vec![], "mật khẩu đủ dài")
            .unwrap();
        accounts.set_disabled("hoa", true).unwrap();
        assert_eq!(
            accounts.sign_in("hoa", "mật khẩu đủ dài"),
            Err(SignInError::Refused)
        );
        assert_eq!(
            accounts.sign_in("nobody", "mật khẩu đủ dài"),
            Err(SignInError::Refused)
        );
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("mật khẩu"), "no password in clear");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
