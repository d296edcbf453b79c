//! Users in the `kv` store, and the checks on what a client may register.
//!
//! Keys: `user:<id>` → the user as JSON; `username:<lower-case name>` and
//! `email:<lower-case address>` → the id, each claimed with `kv::insert_durable` so
//! that two registrations racing for one name cannot both win; `users:count` counts
//! registrations, and the first of them claims `users:first` (its id) to become admin.
//!
//! Every write that a client is told about (an account, its role) is durable: on
//! disk before the 201 goes out, so an acknowledged account survives `kill -9`.
//! `users:count` cannot be (`kv::incr` has no durable form), which is why the admin
//! seat is the durable `users:first` claim: a count lost in a crash restarts at 1,
//! and the claim, still on disk, keeps a later registrant from becoming admin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmgate_plugin_sdk::kv;

/// A registered user as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// A UUID.
    pub id: String,
    /// As registered (case kept; unique without case).
    pub username: String,
    /// As registered (unique without case).
    pub email: String,
    /// The Argon2id hash, PHC string.
    pub password_hash: String,
    /// The role.
    pub role: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// What clients see of a user: never the hash.
#[derive(Debug, Serialize)]
pub struct PublicUser<'u> {
    /// The id.
    pub id: &'u str,
    /// The name.
    pub username: &'u str,
    /// The address.
    pub email: &'u str,
    /// The role.
    pub role: &'u str,
    /// When the user registered.
    pub created_at: &'u str,
}

impl User {
    /// The user as clients see it.
    pub fn public(&self) -> PublicUser<'_> {
        PublicUser {
            id: &self.id,
            username: &self.username,
            email: &self.email,
            role: &self.role,
            created_at: &self.created_at,
        }
    }
}

/// Why a registration cannot go ahead.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The username is taken.
    Username,
    /// The email address is taken.
    Email,
}

fn user_key(id: &str) -> String {
    format!("user:{id}")
}

fn username_key(username: &str) -> String {
    format!("username:{}", username.to_lowercase())
}

fn email_key(email: &str) -> String {
    format!("email:{}", email.to_lowercase())
}

/// `kv`'s error as this module's.
fn store_error(error: kv::Error) -> String {
    error.to_string()
}

/// Claims the user's name and address, then stores the user, all durably. On a taken
/// name or address nothing is left behind.
pub fn create(user: &User) -> Result<Result<(), Taken>, String> {
    let username = username_key(&user.username);
    if !kv::insert_durable(&username, user.id.as_bytes(), None).map_err(store_error)? {
        return Ok(Err(Taken::Username));
    }
    if !kv::insert_durable(&email_key(&user.email), user.id.as_bytes(), None)
        .map_err(store_error)?
    {
        // Durable too: a claim that came back after a crash would hold the name for
        // a user who does not exist.
        kv::delete_durable(&username).map_err(store_error)?;
        return Ok(Err(Taken::Email));
    }
    save(user)?;
    Ok(Ok(()))
}

/// Writes the user record, durably.
pub fn save(user: &User) -> Result<(), String> {
    let json = serde_json::to_vec(user).map_err(|e| e.to_string())?;
    kv::set_durable(&user_key(&user.id), &json, None).map_err(store_error)
}

/// The user with `id`.
pub fn by_id(id: &str) -> Result<Option<User>, String> {
    match kv::get(&user_key(id)).map_err(store_error)? {
        Some(json) => serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| format!("user {id}: corrupt record: {e}")),
        None => Ok(None),
    }
}

/// The user whose username or email address is `login` (without case).
pub fn by_login(login: &str) -> Result<Option<User>, String> {
    let key = if login.contains('@') {
        email_key(login)
    } else {
        username_key(login)
    };
    match kv::get(&key).map_err(store_error)? {
        Some(id) => by_id(&String::from_utf8_lossy(&id)),
        None => Ok(None),
    }
}

/// Counts the registration of `id`; whether it is the first ever (the count says 1
/// and `id` wins the durable `users:first` claim, which no crash gives back).
pub fn first_registration(id: &str) -> Result<bool, String> {
    if kv::incr("users:count", 1, None).map_err(store_error)? != 1 {
        return Ok(false);
    }
    kv::insert_durable("users:first", id.as_bytes(), None).map_err(store_error)
}

/// Field → what is wrong with it, for the 400 envelope's `data.fields`.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Checks a username: 3 to 32 characters, ASCII letters, digits, `_`, `-`, `.`,
/// starting with a letter or digit.
pub fn check_username(username: &str, errors: &mut FieldErrors) {
    let valid_chars = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    let message = if !(3..=32).contains(&username.len()) {
        "must be 3 to 32 characters"
    } else if !valid_chars {
        "may hold only letters, digits, '_', '-' and '.'"
    } else if !username.as_bytes()[0].is_ascii_alphanumeric() {
        "must start with a letter or a digit"
    } else {
        return;
    };
    errors.insert("username", message.into());
}

/// Checks an email address: one `@`, a local part of 1 to 64 characters, a domain
/// with a dot and no empty label, no spaces or control characters, 254 at most.
pub fn check_email(email: &str, errors: &mut FieldErrors) {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                (1..=64).contains(&local.len())
                    && !domain.contains('@')
                    && domain.contains('.')
                    && domain.split('.').all(|label| !label.is_empty())
            }
            None => false,
        };
    if !ok {
        errors.insert("email", "is not an email address".into());
    }
}

/// Checks a password: `min` to 128 characters, with a letter and a digit.
pub fn check_password(password: &str, min: usize, errors: &mut FieldErrors) {
    let length = password.chars().count();
    let message = if length < min {
        format!("must be at least {min} characters")
    } else if length > 128 {
        "must be at most 128 characters".into()
    } else if !password.chars().any(char::is_alphabetic)
        || !password.chars().any(|c| c.is_ascii_digit())
    {
        "must contain a letter and a digit".into()
    } else {
        return;
    };
    errors.insert("password", message);
}
