//! # CSRF tokens
//!
//! One random token per session (synchronizer token pattern): every form
//! carries it in a hidden `csrf` field and [`crate::extract::Posted`]
//! refuses a POST whose token is missing or not the session's. The
//! session cookie is also `SameSite=Strict`; the token is what holds if a
//! browser ignores that.

pub const FIELD: &str = "csrf";

pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Compares in time independent of where the texts differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
