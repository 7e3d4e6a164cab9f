//! # Sessions, kept on the server
//!
//! The cookie carries only a random 256-bit id; everything else (who, the
//! CSRF token, when) stays here, so a tampered or guessed cookie is simply
//! unknown. Sessions end after [`Expiry::idle`] without a request and
//! [`Expiry::absolute`] after sign-in, on sign-out, and when the process
//! stops (officers sign in again after a restart). Signing in replaces the
//! anonymous session with a new id (no session fixation). Anonymous
//! sessions (the sign-in form's) are bounded in number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::csrf;

/// When sessions end.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(10 * 3600),
        }
    }
}

/// At most this many sessions at once; past it the oldest anonymous ones go.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The account name, once signed in.
    pub user: Option<String>,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

#[derive(Debug)]
pub struct Sessions {
    expiry: Expiry,
    map: Mutex<HashMap<String, Session>>,
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(expiry: Expiry) -> Sessions {
        Sessions {
            expiry,
            map: Mutex::default(),
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.expiry.idle
            && now.duration_since(s.created) < self.expiry.absolute
    }

    /// The session of this id if it is live; marks it used.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions lock");
        let live = map.get(id).is_some_and(|s| self.live(s, now));
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id).expect("checked");
        s.last_seen = now;
        Some(s.clone())
    }

    /// A new session, anonymous or for `user`.
    pub fn create(&self, user: Option<String>) -> Session {
        let now = Instant::now();
        let s = Session {
            id: random_id(),
            user,
            csrf: csrf::new_token(),
            created: now,
            last_seen: now,
        };
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.live(s, now));
        }
        if map.len() >= MAX_SESSIONS {
            // Still full of live ones: the oldest anonymous go first.
            let mut anon: Vec<(Instant, String)> = map
                .values()
                .filter(|s| s.user.is_none())
                .map(|s| (s.last_seen, s.id.clone()))
                .collect();
            anon.sort();
            for (_, id) in anon.into_iter().take(MAX_SESSIONS / 10) {
                map.remove(&id);
            }
        }
        map.insert(s.id.clone(), s.clone());
        s
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }

    /// Ends every session of `user` (disabled, or a new password).
    pub fn remove_user(&self, user: &str) {
        self.map
            .lock()
            .expect("sessions lock")
            .retain(|_, s| s.user.as_deref() != Some(user));
    }
}
