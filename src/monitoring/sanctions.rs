//! Fuzzy screening of names against a sanctions list.
//!
//! Sanctioned parties rarely appear under exactly the listed spelling: names are reordered
//! ("Sanctionov, Ivan"), punctuated differently, transliterated or mistyped. Screening
//! therefore compares a *normalised* form of both names (lower case, punctuation dropped,
//! words sorted, see [`SanctionsList::normalize`]) with the Jaro-Winkler similarity, and the
//! caller decides which similarity is close enough (transaction monitoring and customer
//! rating use different thresholds).
//!
//! The list is plain text, one name per line, so an operator can review it and a deployment
//! can replace it. [`SanctionsList::sandbox`] is a small, made-up list for the sandbox and
//! tests; it is not a real sanctions list.

/// One listed party: the name as listed (shown to compliance officers) and its normalised
/// form (used for matching).
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    normalized: String,
}

/// A list of sanctioned names prepared for fuzzy matching, so screening a name costs one
/// similarity computation per entry and no re-normalisation of the list.
#[derive(Clone, Debug)]
pub struct SanctionsList {
    entries: Vec<Entry>,
}

impl SanctionsList {
    /// Reads a list from text, one name per line, so the list can live in a reviewable file.
    ///
    /// Lines are trimmed; blank lines and lines starting with `#` are comments. A line with
    /// no letters or digits (e.g. `---`) can never match anything and is skipped.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let normalized = Self::normalize(line);
                (!normalized.is_empty()).then(|| Entry {
                    name: line.to_string(),
                    normalized,
                })
            })
            .collect();
        Self { entries }
    }

    /// The built-in, fictitious list used in sandbox mode and tests, so screening can be
    /// demonstrated without shipping (or pretending to be) a real sanctions list.
    pub fn sandbox() -> Self {
        Self::parse(include_str!("sandbox_sanctions.txt"))
    }

    /// How many names the list holds, so start-up can log and a health check can show that a
    /// list was actually loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list holds no names, in which case screening can never match and the
    /// operator should be told.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The form names are compared in, so word order, case and punctuation do not hide a match.
    ///
    /// Lower-cases, treats every character that is not a letter or digit as a separator, then
    /// sorts the words and joins them with one space: `"Sanctionov, Ivan"` and
    /// `"IVAN  sanctionov"` both become `"ivan sanctionov"`.
    pub fn normalize(name: &str) -> String {
        let lower = name.to_lowercase();
        let mut tokens: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        tokens.sort_unstable();
        tokens.join(" ")
    }

    /// The listed name most similar to `name`, with its Jaro-Winkler similarity (0.0 to 1.0,
    /// 1.0 for identical normalised forms), so the caller can apply its own threshold and show
    /// which entry matched.
    ///
    /// Ties go to the entry listed first. `None` when the list is empty or `name` has no
    /// letters or digits.
    pub fn best_match(&self, name: &str) -> Option<(&str, f64)> {
        let query = Self::normalize(name);
        if query.is_empty() {
            return None;
        }
        let mut best: Option<(&str, f64)> = None;
        for entry in &self.entries {
            let score = strsim::jaro_winkler(&query, &entry.normalized).clamp(0.0, 1.0);
            if best.is_none_or(|(_, top)| score > top) {
                best = Some((entry.name.as_str(), score));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_list_loads_its_names_and_skips_the_header() {
        let list = SanctionsList::sandbox();
        assert_eq!(list.len(), 12);
        assert!(!list.is_empty());
        assert!(list.entries.iter().all(|e| !e.name.starts_with('#')));
        assert_eq!(list.entries[0].name, "Ivan Sanctionov");
    }

    #[test]
    fn comments_and_blank_lines_are_ignored() {
        let list = SanctionsList::parse(
            "# a comment\n\n   \n  Ivan Sanctionov  \n# Viktor Embargo\n---\r\nMila Restricta\r\n",
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list.entries[0].name, "Ivan Sanctionov");
        assert_eq!(list.entries[1].name, "Mila Restricta");
        let (_, commented_out) = list.best_match("Viktor Embargo").unwrap();
        assert!(commented_out < 0.9, "{commented_out}");
    }

    #[test]
    fn normalisation_ignores_order_case_and_punctuation() {
        assert_eq!(
            SanctionsList::normalize("Sanctionov, Ivan"),
            "ivan sanctionov"
        );
        assert_eq!(
            SanctionsList::normalize("  IVAN--sanctionov. "),
            "ivan sanctionov"
        );
        assert_eq!(
            SanctionsList::normalize("Red Flag Imports S.A."),
            "a flag imports red s"
        );
        assert_eq!(SanctionsList::normalize("MÜLLER, Jürgen"), "jürgen müller");
        assert_eq!(SanctionsList::normalize(" ,.- "), "");
    }

    #[test]
    fn exact_name_scores_one() {
        let list = SanctionsList::sandbox();
        assert_eq!(
            list.best_match("Ivan Sanctionov"),
            Some(("Ivan Sanctionov", 1.0))
        );
        assert_eq!(
            list.best_match("karl watchlister"),
            Some(("Karl Watchlister", 1.0))
        );
    }

    #[test]
    fn reordered_name_scores_one() {
        let list = SanctionsList::sandbox();
        assert_eq!(
            list.best_match("Sanctionov Ivan"),
            Some(("Ivan Sanctionov", 1.0))
        );
        assert_eq!(
            list.best_match("SANCTIONOV, Ivan"),
            Some(("Ivan Sanctionov", 1.0))
        );
    }

    #[test]
    fn one_letter_typo_still_matches_closely() {
        let list = SanctionsList::sandbox();
        let (name, score) = list.best_match("Ivan Sanctionof").unwrap();
        assert_eq!(name, "Ivan Sanctionov");
        assert!(score >= 0.9, "score {score}");
        assert!(score < 1.0, "score {score}");
    }

    #[test]
    fn ordinary_names_do_not_come_close() {
        let list = SanctionsList::sandbox();
        for ordinary in ["Jane Doe", "John Smith", "Alice Demo", "Tesco Stores Ltd"] {
            let (_, score) = list.best_match(ordinary).unwrap();
            assert!(score < 0.9, "{ordinary} scored {score}");
        }
        // And not against any single entry either.
        let query = SanctionsList::normalize("Jane Doe");
        for entry in &list.entries {
            assert!(
                strsim::jaro_winkler(&query, &entry.normalized) < 0.9,
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn scores_stay_within_zero_and_one() {
        let list = SanctionsList::sandbox();
        for name in [
            "x",
            "Ivan",
            "Ivan Sanctionov",
            "Offshore Phantom Trading LLC Ltd SA",
        ] {
            let (_, score) = list.best_match(name).unwrap();
            assert!((0.0..=1.0).contains(&score), "{name}: {score}");
        }
    }

    #[test]
    fn nothing_to_compare_gives_none() {
        assert!(SanctionsList::parse("").is_empty());
        assert_eq!(
            SanctionsList::parse("# only a comment\n\n").best_match("Ivan"),
            None
        );
        assert_eq!(SanctionsList::sandbox().best_match(""), None);
        assert_eq!(SanctionsList::sandbox().best_match(" - , "), None);
    }

    #[test]
    fn ties_go_to_the_first_entry() {
        let list = SanctionsList::parse("Ivan Sanctionov\nSanctionov, Ivan\n");
        assert_eq!(
            list.best_match("ivan sanctionov"),
            Some(("Ivan Sanctionov", 1.0))
        );
    }
}
