//! Counterfactual data augmentation by word swaps: every sentence of a corpus and its
//! gender-swapped copy ("He thanked his aunt." → "She thanked her uncle.").
//!
//! # Swap lists
//! One pair per line, two words separated by a tab (or, without a tab, by spaces):
//! `actor<TAB>actress`. Blank lines and lines starting with `#` are skipped; anything else
//! (one word, three words, a word without a letter) is an error naming the file and line.
//! A line `a b` swaps `a → b`, and `b → a` unless `b` has a line of its own: every
//! left-hand word keeps the first line that names it (across the lists in order), and the
//! reverse direction only fills words no line starts with. Words are matched
//! case-insensitively.
//!
//! The default is WinoBias's two lists (Zhao et al. 2018, MIT; vendored in
//! `engine/data/benchmarks/winobias/`): `generalized_swaps.txt`, then
//! `extra_gendered_words.txt`, as published (typos such as `godess` included).
//!
//! # Words
//! A word is a maximal run of letters and digits, so words inside other words never match
//! ("there", "shell", "manager" stay). A list word with an apostrophe or a final period
//! (`ma'am`, `mr.`) matches that spelling (`’` counts as `'`). A possessive `'s` is not
//! part of the word: "man's" → "woman's".
//!
//! # Capitals
//! The replacement follows the source word: all capitals (two letters or more) → all
//! capitals (`HE` → `SHE`); a capital first letter → a capital first letter (`He` → `She`,
//! `Mr.` → `Mrs.`); otherwise lower case.
//!
//! # his / her / hers
//! "her" is "his" (possessive) or "him" (object), and "his" is "her" or "hers". These three
//! are always swapped by this rule, whatever a list says: a possessive determiner is
//! followed by the noun phrase it determines, an object or a standalone pronoun is not. So
//! - `her` → `his` when the next word follows after spaces only and is not a function word
//!   (an article, preposition, conjunction, pronoun or adverb of time/place such as `the`,
//!   `to`, `and`, `him`, `yesterday`; see `FUNCTION_WORDS`), otherwise `him`:
//!   "her car" → "his car", "her own" → "his own", "gave her the key" → "gave him the
//!   key", "saw her." → "saw him.";
//! - `his` → `her` under the same condition, otherwise `hers`: "his car" → "her car",
//!   "it is his." → "it is hers.";
//! - `hers` → `his`.
//!
//! The rule cannot see verbs: "made her laugh" becomes "made his laugh". That is the cost
//! of a rule without a part-of-speech tagger; such sentences are rare in the corpora used.

use std::collections::HashMap;

use super::error::{DebiasError, Result};

/// WinoBias's directed swap list (`generalized_swaps.txt`).
pub const WINOBIAS_GENERALIZED_SWAPS: &str =
    include_str!("../../data/benchmarks/winobias/generalized_swaps.txt");
/// WinoBias's male→female list (`extra_gendered_words.txt`).
pub const WINOBIAS_EXTRA_GENDERED_WORDS: &str =
    include_str!("../../data/benchmarks/winobias/extra_gendered_words.txt");

/// Words after which `her` is an object and `his` a standalone pronoun.
const FUNCTION_WORDS: &[&str] = &[
    // articles, determiners, possessives
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "my",
    "your",
    "his",
    "her",
    "its",
    "our",
    "their",
    "some",
    "any",
    "every",
    "each",
    "no",
    "all",
    "both",
    "either",
    "neither",
    // prepositions and particles
    "to",
    "at",
    "in",
    "on",
    "of",
    "for",
    "from",
    "with",
    "by",
    "about",
    "as",
    "into",
    "onto",
    "over",
    "under",
    "after",
    "before",
    "through",
    "up",
    "down",
    "out",
    "off",
    "away",
    "back",
    "around",
    "behind",
    "across",
    "against",
    "along",
    "toward",
    "towards",
    "upon",
    "within",
    "without",
    "near",
    // conjunctions
    "and",
    "or",
    "but",
    "nor",
    "so",
    "because",
    "if",
    "when",
    "while",
    "than",
    "though",
    "although",
    "until",
    "unless",
    "whether",
    "where",
    "why",
    "how",
    "what",
    "who",
    "whom",
    "which",
    // pronouns
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "him",
    "us",
    "them",
    "himself",
    "herself",
    "itself",
    "myself",
    "yourself",
    // verbs that follow a subject, and adverbs of time and place
    "is",
    "was",
    "are",
    "were",
    "be",
    "been",
    "has",
    "had",
    "have",
    "do",
    "does",
    "did",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "yesterday",
    "today",
    "tomorrow",
    "tonight",
    "now",
    "then",
    "again",
    "too",
    "also",
    "here",
    "there",
    "home",
    "once",
    "twice",
    "later",
    "soon",
    "first",
    "last",
    "well",
    "not",
    "never",
    "always",
];

/// A swap list: lower-case word → its counterpart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapList {
    map: HashMap<String, String>,
}

/// A list word: letters and digits with inner apostrophes, periods or hyphens, at least one
/// letter.
fn is_list_word(w: &str) -> bool {
    w.chars().any(char::is_alphabetic)
        && w.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '\'' | '’' | '.' | '-'))
}

fn normalise(w: &str) -> String {
    w.to_lowercase().replace('’', "'")
}

impl SwapList {
    /// Parses lists given as `(name, text)`, in order (see the module doc); errors name
    /// `name:line`.
    pub fn parse(lists: &[(&str, &str)]) -> Result<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, text) in lists {
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let fields: Vec<&str> = if line.contains('\t') {
                    line.split('\t').map(str::trim).collect()
                } else {
                    line.split_whitespace().collect()
                };
                let bad = |reason: String| DebiasError::Corpus {
                    file: name.to_string(),
                    line: Some(i + 1),
                    reason,
                };
                match fields.as_slice() {
                    [a, b] if is_list_word(a) && is_list_word(b) => {
                        pairs.push((normalise(a), normalise(b)));
                    }
                    [_, _] => {
                        return Err(bad(format!(
                            "{line:?}: a swap list word is letters (with an inner ' . or -), \
                             one word per side"
                        )))
                    }
                    _ => {
                        return Err(bad(format!(
                            "{line:?}: expected two words separated by a tab, found {}",
                            fields.len()
                        )))
                    }
                }
            }
        }
        let mut map = HashMap::new();
        for (a, b) in &pairs {
            if a != b {
                map.entry(a.clone()).or_insert_with(|| b.clone());
            }
        }
        for (a, b) in &pairs {
            if a != b {
                map.entry(b.clone()).or_insert_with(|| a.clone());
            }
        }
        if map.is_empty() {
            return Err(DebiasError::Corpus {
                file: lists.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                line: None,
                reason: "the swap list has no pair".into(),
            });
        }
        Ok(Self { map })
    }

    /// WinoBias's lists (the default).
    pub fn winobias() -> Self {
        Self::parse(&[
            ("winobias/generalized_swaps.txt", WINOBIAS_GENERALIZED_SWAPS),
            (
                "winobias/extra_gendered_words.txt",
                WINOBIAS_EXTRA_GENDERED_WORDS,
            ),
        ])
        .expect("the vendored WinoBias swap lists parse")
    }

    /// The counterpart of a lower-case word (`None`: not in the list). `her`, `his` and
    /// `hers` are swapped by [`SwapList::swap`]'s rule, not by this.
    pub fn get(&self, word: &str) -> Option<&str> {
        self.map.get(word).map(String::as_str)
    }

    /// Number of words with a counterpart.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The gender-swapped copy of `text` (see the module doc).
    pub fn swap(&self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len() + 8);
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_alphanumeric() {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let end = run_end(&chars, i);
            let word: String = chars[i..end].iter().collect();
            match self.replacement(&chars, i, end, &word) {
                (source_end, Some(r)) => {
                    let source: String = chars[i..source_end].iter().collect();
                    out.push_str(&with_case_of(&source, &r));
                    i = source_end;
                }
                (_, None) => {
                    out.push_str(&word);
                    i = end;
                }
            }
        }
        out
    }

    /// The end of the source matched and its replacement for the word `chars[start..end]`.
    fn replacement(
        &self,
        chars: &[char],
        start: usize,
        end: usize,
        word: &str,
    ) -> (usize, Option<String>) {
        let lower = word.to_lowercase();
        // `ma'am`: an apostrophe and more letters.
        if matches!(chars.get(end), Some('\'' | '’'))
            && chars.get(end + 1).is_some_and(|c| c.is_alphanumeric())
        {
            let after = run_end(chars, end + 1);
            let joined: String = chars[start..after].iter().collect();
            if let Some(r) = self.get(&normalise(&joined)) {
                return (after, Some(r.to_string()));
            }
        }
        // `mr.`: a final period.
        if chars.get(end) == Some(&'.') {
            if let Some(r) = self.get(&format!("{lower}.")) {
                return (end + 1, Some(r.to_string()));
            }
        }
        let next = next_word(chars, end);
        let determines = next
            .as_deref()
            .is_some_and(|n| !FUNCTION_WORDS.contains(&n));
        let r = match lower.as_str() {
            "her" => Some(if determines { "his" } else { "him" }.to_string()),
            "his" => Some(if determines { "her" } else { "hers" }.to_string()),
            "hers" => Some("his".to_string()),
            _ => self.get(&lower).map(str::to_string),
        };
        (end, r)
    }
}

/// The end of the run of letters and digits starting at `i`.
fn run_end(chars: &[char], i: usize) -> usize {
    let mut j = i;
    while j < chars.len() && chars[j].is_alphanumeric() {
        j += 1;
    }
    j
}

/// The next word, lower case, when only spaces separate it from position `end`.
fn next_word(chars: &[char], end: usize) -> Option<String> {
    let mut j = end;
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    if j == end || j == chars.len() || !chars[j].is_alphanumeric() {
        return None;
    }
    Some(
        chars[j..run_end(chars, j)]
            .iter()
            .collect::<String>()
            .to_lowercase(),
    )
}

/// `replacement` in the capitalisation of `source`.
fn with_case_of(source: &str, replacement: &str) -> String {
    let letters: Vec<char> = source.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase()) {
        return replacement.to_uppercase();
    }
    if letters.first().is_some_and(|c| c.is_uppercase()) {
        let mut cs = replacement.chars();
        return match cs.next() {
            Some(f) => f.to_uppercase().chain(cs).collect(),
            None => String::new(),
        };
    }
    replacement.to_string()
}

/// Each non-blank line of `text` (one training sentence or passage per line, trimmed) and,
/// when it differs, its swapped copy, in order; an error when there is none.
pub fn augment(name: &str, text: &str, swaps: &SwapList) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let swapped = swaps.swap(line);
        out.push(line.to_string());
        if swapped != line {
            out.push(swapped);
        }
    }
    if out.is_empty() {
        return Err(DebiasError::Corpus {
            file: name.to_string(),
            line: None,
            reason: "the corpus is empty (no non-blank line)".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wb(s: &str) -> String {
        SwapList::winobias().swap(s)
    }

    #[test]
    fn pronouns_nouns_and_capitals_swap() {
        assert_eq!(wb("He thanked his aunt."), "She thanked her uncle.");
        assert_eq!(wb("HE SAID SHE WAS LATE"), "SHE SAID HE WAS LATE");
        assert_eq!(
            wb("The King and the queen met Mr. Smith."),
            "The Queen and the king met Mrs. Smith."
        );
        assert_eq!(wb("Ms. Lee, ma'am, is here"), "Mr. Lee, sir, is here");
        assert_eq!(wb("He prides himself"), "She prides herself");
    }

    #[test]
    fn words_inside_words_and_punctuation() {
        assert_eq!(
            wb("There, the shell manager's theme: he!"),
            "There, the shell manager's theme: she!"
        );
        assert_eq!(wb("(he)\"she\"--men's"), "(she)\"he\"--women's");
        assert_eq!(wb("the man's hat"), "the woman's hat");
        assert_eq!(wb("he2 she_ he"), "he2 he_ she");
        assert_eq!(wb(""), "");
        assert_eq!(wb("  \t"), "  \t");
    }

    #[test]
    fn her_his_and_hers_follow_the_documented_rule() {
        assert_eq!(wb("She drove her car."), "He drove his car.");
        assert_eq!(wb("I gave her the key."), "I gave him the key.");
        assert_eq!(wb("I saw her."), "I saw him.");
        assert_eq!(wb("I saw her yesterday"), "I saw him yesterday");
        assert_eq!(wb("with her own hands"), "with his own hands");
        assert_eq!(wb("Her mother called her"), "His father called him");
        assert_eq!(wb("The book is his."), "The book is hers.");
        assert_eq!(wb("His book and hers"), "Her book and his");
        assert_eq!(wb("HER CAR"), "HIS CAR");
        // Punctuation between: not a determiner.
        assert_eq!(wb("for her, work"), "for him, work");
    }

    #[test]
    fn augmenting_keeps_both_sides_and_refuses_an_empty_corpus() {
        let swaps = SwapList::winobias();
        let out = augment("c.txt", "He ran.\n\n  The river.  \nShe sang.\n", &swaps).unwrap();
        assert_eq!(
            out,
            ["He ran.", "She ran.", "The river.", "She sang.", "He sang."]
        );
        let e = augment("c.txt", " \n\n", &swaps).unwrap_err().to_string();
        assert!(e.contains("c.txt") && e.contains("empty"), "{e}");
    }

    #[test]
    fn list_parsing_directions_and_errors() {
        let l = SwapList::parse(&[(
            "s.txt",
            "# comment\nlord\tlady\n\nlady \t gentleman \nking queen\n",
        )])
        .unwrap();
        assert_eq!(l.get("lord"), Some("lady"));
        assert_eq!(l.get("lady"), Some("gentleman"));
        assert_eq!(l.get("gentleman"), Some("lady"));
        assert_eq!(l.get("queen"), Some("king"));
        assert_eq!(l.swap("The Lord"), "The Lady");
        for (text, line) in [
            ("king\tqueen\nprince\n", 2),
            ("king\tqueen\n\nprince\tprincess\tx\n", 3),
            ("a1\t2\n", 1),
        ] {
            let e = SwapList::parse(&[("swaps.txt", text)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("swaps.txt:{line}")), "{e}");
        }
        let e = SwapList::parse(&[("swaps.txt", "# nothing\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no pair"), "{e}");
        // The vendored lists: their published first-wins directions.
        let wb = SwapList::winobias();
        assert_eq!(wb.get("priest"), Some("nun"));
        assert_eq!(wb.get("lady"), Some("gentleman"));
        assert_eq!(wb.get("waitress"), Some("waiter"));
        assert!(wb.len() > 150, "{}", wb.len());
    }
}
