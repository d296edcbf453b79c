//! The one form in which usernames and email addresses are compared and stored as
//! keys, so that every spelling of a name reaches the same account and no spelling
//! reaches another one (the "Kelvin sign" family: `K` U+212A, `Ｋ` U+FF2B, `ᴷ` and
//! `K` are one letter here).
//!
//! The canonical form is NFKC, then Unicode full case folding, then NFKC again: the
//! "compatibility caseless match" of Unicode §3.13 (D146), in the spirit of RFC
//! 8265's `UsernameCaseMapped` (width mapping, case folding, normalisation). It is a
//! fixed point (canonicalising a canonical form changes nothing), so the relation
//! "same canonical form" is an equivalence: no name can be equal to two names that
//! are not equal to each other, and a key stored today is the key found tomorrow.
//! [`check`] refuses what would make that promise depend on the Unicode version of
//! the day: unassigned code points (a later Unicode may give them a case or a
//! decomposition), private-use ones, and control and format characters (invisible,
//! or changing how text reads). All tables (normalisation, folding, general category)
//! come from ICU4X, one Unicode version for the three.
//!
//! What clients see of a name (the `username` and `email` fields) is the NFKC form
//! of what they typed, case kept ([`display`]).
//!
//! This module must not decide what a valid username or address looks like beyond
//! that; `users.rs` does.

use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// Why a name has no safe canonical form.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Nothing is left once surrounding whitespace is trimmed and the name normalised.
    Empty,
    /// A control character (U+0000–U+001F, U+007F–U+009F).
    Control(char),
    /// A code point with no stable meaning: unassigned, private use, or a format
    /// character (zero-width joiners, bidi controls, soft hyphen …).
    NotAllowed(char),
    /// Canonicalising the canonical form would change it again (not known to happen
    /// with these steps; refused rather than stored under a key a later lookup would
    /// not find).
    Unstable,
}

impl Refused {
    /// What the client is told, after the field's name.
    pub fn message(&self) -> String {
        match self {
            Self::Empty => "is required".into(),
            Self::Control(c) => {
                format!("must not contain control characters (U+{:04X})", *c as u32)
            }
            Self::NotAllowed(c) => format!(
                "must not contain U+{:04X} (unassigned, private-use and invisible formatting characters are refused)",
                *c as u32
            ),
            Self::Unstable => "cannot be compared safely with other names".into(),
        }
    }
}

/// NFKC of `text`: compatibility characters (full-width letters, ligatures, the
/// Kelvin sign, superscripts) become the plain ones; case is kept.
pub fn display(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .into_owned()
}

/// NFKC, full case folding, NFKC: the form in which names are compared.
/// Total (any text has one); [`check`] says whether it can be relied on.
pub fn key(text: &str) -> String {
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    let folded = CaseMapper::new()
        .fold_string(&nfkc.normalize(text))
        .into_owned();
    nfkc.normalize(&folded).into_owned()
}

/// Whether `text` may be registered: not empty after normalisation, no control,
/// format, private-use or unassigned code point, and a canonical form that is a
/// fixed point (checked, not assumed: the whole promise of this module rests on it).
pub fn check(text: &str) -> Result<(), Refused> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    for c in text.chars() {
        match categories.get(c) {
            GeneralCategory::Control => return Err(Refused::Control(c)),
            GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate => return Err(Refused::NotAllowed(c)),
            _ => {}
        }
    }
    let canonical = key(text);
    if canonical.is_empty() {
        return Err(Refused::Empty);
    }
    if key(&canonical) != canonical {
        return Err(Refused::Unstable);
    }
    Ok(())
}
