//! # Translations: Vietnamese first, English on request
//!
//! Every word on a page comes from `web/locales/<lang>/*.ftl` (Fluent),
//! compiled into the binary. One file per area, so the node's and the hub's
//! pages add their own without touching the shared one: `web.ftl` (sign-in,
//! layout, errors), `node.ftl`, `hub.ftl`. A key missing in English falls
//! back to Vietnamese, and a test checks that both languages have the same
//! keys.

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, langid, static_loader};
use serde::{Deserialize, Serialize};

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "vi",
        // No Unicode isolation marks around arguments: the pages are
        // left-to-right, and the marks would show up in copied text.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static VI: LanguageIdentifier = langid!("vi");
static EN: LanguageIdentifier = langid!("en");

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
    /// The other language (for the switch in the header).
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::Vi => &VI,
            Lang::En => &EN,
        }
    }
}

/// The translator handed to templates: `{{ tr.t("home-title") }}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    /// The text of `key`; the key itself if no language has it (visible,
    /// so a missing translation is noticed, never a blank).
    pub fn t(&self, key: &str) -> String {
        LOCALES
            .try_lookup(self.lang.id(), key)
            .unwrap_or_else(|| key.to_owned())
    }

    /// The label of a figure's `status` under `prefix` (`status-` on the
    /// node's pages, `hub-status-` on the hub's); empty for a figure with
    /// no status (a unit without an allocation of the plan's targets).
    pub fn status(&self, prefix: &str, status: &str) -> String {
        if status.is_empty() {
            String::new()
        } else {
            self.t(&format!("{prefix}{status}"))
        }
    }

    /// The text of `key` with one argument, e.g. `{ $n } bản ghi`.
    pub fn t1(&self, key: &str, name: &str, value: impl ToString) -> String {
        self.ta(key, &[(name, value.to_string())])
    }

    /// The text of `key` with arguments (given as text: numbers are
    /// formatted by [`crate::format`] first, the Vietnamese way).
    pub fn ta(&self, key: &str, args: &[(&str, String)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(k, v)| (Cow::Owned((*k).to_owned()), FluentValue::from(v.clone())))
            .collect();
        LOCALES
            .try_lookup_with_args(self.lang.id(), key, &args)
            .unwrap_or_else(|| key.to_owned())
    }

    /// Whether `key` has a text in this language (or the fallback).
    pub fn has(&self, key: &str) -> bool {
        LOCALES.try_lookup(self.lang.id(), key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(lang: &str) -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("locales")
            .join(lang);
        let mut keys = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some((k, _)) = line.split_once(" =")
                    && !k.starts_with([' ', '#', '.'])
                    && !k.is_empty()
                {
                    keys.insert(k.trim().to_owned());
                }
            }
        }
        keys
    }

    #[test]
    fn both_languages_have_the_same_keys() {
        let (vi, en) = (keys("vi"), keys("en"));
        assert!(vi.len() > 10);
        let only_vi: Vec<_> = vi.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&vi).collect();
        assert!(only_vi.is_empty(), "missing in English: {only_vi:?}");
        assert!(only_en.is_empty(), "missing in Vietnamese: {only_en:?}");
    }

    #[test]
    fn vietnamese_is_the_default_and_english_is_there() {
        assert_eq!(Tr::default().t("sign-in"), "Đăng nhập");
        assert_eq!(Tr::new(Lang::En).t("sign-in"), "Sign in");
        assert_eq!(Tr::default().t("no-such-key"), "no-such-key");
    }
}
