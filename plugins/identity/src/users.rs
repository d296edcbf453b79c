//! Users in the `kv` store, and the checks on what a client may register.
//!
//! Keys: `user:<id>` → the user as JSON; `username:<canonical name>` and
//! `email:<canonical address>` → the id (canonical: `canonical::key`, NFKC + case
//! folding + NFKC), each claimed with `kv::insert_durable` so that two registrations
//! racing for one name, in any spelling, cannot both win; `users:count` counts
//! registrations, and the first of them claims `users:first` (its id) to become admin.
//!
//! Every write that a client is told about (an account, its role) is durable: on
//! disk before the 201 goes out, so an acknowledged account survives `kill -9`.
//! `users:count` cannot be (`kv::incr` has no durable form), which is why the admin
//! seat is the durable `users:first` claim: a count lost in a crash restarts at 1,
//! and the claim, still on disk, keeps a later registrant from becoming admin.
//!
//! **Accounts from before canonical keys** were claimed under `str::to_lowercase` of
//! the name as typed. For the names allowed then and now (ASCII usernames, ASCII
//! addresses) that is the canonical key already; a non-ASCII address may differ
//! (`STRAẞE@…` was `straße@…`, is `strasse@…`). Such an account stays reachable:
//! a login with its old spelling finds it as before ([`by_login`]); and before
//! the first registration after the change, [`claim_legacy_names`] gives each old
//! claim its canonical twin (once, marked by `users:canonical-keys`), so that a new
//! registration cannot take an old account's name in another spelling.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmgate_plugin_sdk::kv;
use wasmgate_plugin_sdk::log::{self, Level};

use crate::canonical;

/// A registered user as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// A UUID.
    pub id: String,
    /// As registered, in NFKC (case kept; unique by its canonical form).
    pub username: String,
    /// As registered, in NFKC (unique by its canonical form).
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

const USERNAME: &str = "username:";
const EMAIL: &str = "email:";
/// Set once every claim from before canonical keys has its canonical twin.
const LEGACY_CLAIMED: &str = "users:canonical-keys";

fn username_key(username: &str) -> String {
    format!("{USERNAME}{}", canonical::key(username))
}

fn email_key(email: &str) -> String {
    format!("{EMAIL}{}", canonical::key(email))
}

/// Whether `login` names an email address rather than a username.
fn is_email(login: &str) -> bool {
    canonical::display(login).contains('@')
}

/// The canonical forms of a user's names: what the user can log in as.
pub fn login_names(user: &User) -> [String; 2] {
    [canonical::key(&user.username), canonical::key(&user.email)]
}

/// `kv`'s error as this module's.
fn store_error(error: kv::Error) -> String {
    error.to_string()
}

/// Claims the user's name and address, then stores the user, all durably. On a taken
/// name or address nothing is left behind.
pub fn create(user: &User) -> Result<Result<(), Taken>, String> {
    claim_legacy_names()?;
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

/// The user whose username or email address is `login`, in any spelling with the
/// same canonical form. An account from before canonical keys claimed under exactly
/// `login`'s lower case comes first: only such accounts hold keys that are not
/// canonical (nothing writes them any more), and where two of them now share a
/// canonical form, the spelling each registered with tells them apart.
pub fn by_login(login: &str) -> Result<Option<User>, String> {
    let prefix = if is_email(login) { EMAIL } else { USERNAME };
    let key = format!("{prefix}{}", canonical::key(login));
    let legacy = format!("{prefix}{}", login.to_lowercase());
    let mut id = None;
    if legacy != key {
        id = kv::get(&legacy).map_err(store_error)?;
    }
    if id.is_none() {
        id = kv::get(&key).map_err(store_error)?;
    }
    match id {
        Some(id) => by_id(&String::from_utf8_lossy(&id)),
        None => Ok(None),
    }
}

/// Gives every name claimed before canonical keys (under its lower case) its
/// canonical claim too, once: then a registration in another spelling of an old
/// account's name finds it taken. Old claims that are already canonical (every ASCII
/// one) are left as they are. Two old accounts whose names are now one keep their
/// claims; the canonical one goes to the account that holds it (or the first found),
/// and the other stays reachable by its old spelling and its username (logged).
pub fn claim_legacy_names() -> Result<(), String> {
    if kv::get(LEGACY_CLAIMED).map_err(store_error)?.is_some() {
        return Ok(());
    }
    for prefix in [USERNAME, EMAIL] {
        let mut after: Option<String> = None;
        loop {
            let page = kv::scan(prefix, after.as_deref(), 1000).map_err(store_error)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, id) in page {
                let name = &key[prefix.len()..];
                let canonical = canonical::key(name);
                if canonical == name {
                    continue;
                }
                let twin = format!("{prefix}{canonical}");
                if !kv::insert_durable(&twin, &id, None).map_err(store_error)?
                    && kv::get(&twin).map_err(store_error)?.as_deref() != Some(&id[..])
                {
                    log::event(
                        Level::Warn,
                        "old claim shares its canonical name with another account",
                        &[
                            ("key", key.as_str().into()),
                            ("user", String::from_utf8_lossy(&id).into_owned().into()),
                        ],
                    );
                }
            }
        }
    }
    kv::set_durable(LEGACY_CLAIMED, b"1", None).map_err(store_error)
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

/// Checks a username as typed (trimmed) and returns the form to store: its NFKC,
/// which must be 3 to 32 ASCII letters, digits, `_`, `-`, `.`, starting with a letter
/// or digit. Compatibility spellings (`Ｋelvin`, `K` U+212A) are accepted as the
/// plain letters; letters of other scripts are not, so that no username looks like
/// another (`аlice` with a Cyrillic `а`). Control, format, private-use and unassigned
/// code points are refused by name.
pub fn check_username(typed: &str, errors: &mut FieldErrors) -> String {
    if let Err(why) = canonical::check(typed) {
        errors.insert("username", why.message());
        return typed.to_string();
    }
    let username = canonical::display(typed);
    let valid_chars = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    let message = if !valid_chars {
        "may hold only the letters a-z and A-Z, digits, '_', '-' and '.'"
    } else if !(3..=32).contains(&username.len()) {
        "must be 3 to 32 characters"
    } else if !username.as_bytes()[0].is_ascii_alphanumeric() {
        "must start with a letter or a digit"
    } else {
        return username;
    };
    errors.insert("username", message.into());
    username
}

/// Checks an email address as typed (trimmed) and returns the form to store: its
/// NFKC, with one `@`, a local part of 1 to 64 bytes, a domain with a dot and no
/// empty label, no spaces, 254 bytes at most; no control, format, private-use or
/// unassigned code point.
pub fn check_email(typed: &str, errors: &mut FieldErrors) -> String {
    if let Err(why) = canonical::check(typed) {
        errors.insert("email", why.message());
        return typed.to_string();
    }
    let email = canonical::display(typed);
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
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
    email
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
