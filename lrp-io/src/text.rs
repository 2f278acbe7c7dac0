use std::collections::HashMap;

use crate::Error;

/// A model's vocabulary: line `k` of `vocab.txt` is row `k` of the
/// embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, usize>,
    unk: Option<usize>,
    lowercase: bool,
}

impl Vocab {
    /// Parses `vocab.txt` (one token a line; a final newline is optional).
    /// `unk_token`, when given, must be in it; `lowercase` says whether words
    /// are lowercased before lookup.
    pub fn parse(text: &str, unk_token: Option<&str>, lowercase: bool) -> Result<Self, Error> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let tokens: Vec<String> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                .collect()
        };
        let mut index = HashMap::with_capacity(tokens.len());
        for (k, token) in tokens.iter().enumerate() {
            // The first occurrence wins, as in a lookup table built in order.
            index.entry(token.clone()).or_insert(k);
        }
        let unk = match unk_token {
            Some(token) => Some(*index.get(token).ok_or_else(|| Error::UnkNotInVocab {
                token: token.to_string(),
            })?),
            None => None,
        };
        Ok(Self {
            tokens,
            index,
            unk,
            lowercase,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token of row `id`.
    pub fn token(&self, id: usize) -> Option<&str> {
        self.tokens.get(id).map(String::as_str)
    }

    /// The embedding row of each word; unknown words map to the unknown
    /// token, or fail naming the word when the model has none.
    pub fn ids<S: AsRef<str>>(&self, words: &[S]) -> Result<Vec<usize>, Error> {
        Ok(self.lookup(words)?.0)
    }

    /// [`Vocab::ids`], and the positions (0-based, ascending) of the words
    /// that are not in the vocabulary and were read as the unknown token.
    ///
    /// ```
    /// let vocab = lrp_io::Vocab::parse("<unk>\nfine\nfilm\n", Some("<unk>"), true)?;
    /// let (ids, unknown) = vocab.lookup(&["A", "fine", "film"])?;
    /// assert_eq!((ids, unknown), (vec![0, 1, 2], vec![0]));
    /// # Ok::<(), lrp_io::Error>(())
    /// ```
    pub fn lookup<S: AsRef<str>>(&self, words: &[S]) -> Result<(Vec<usize>, Vec<usize>), Error> {
        let mut ids = Vec::with_capacity(words.len());
        let mut unknown = Vec::new();
        for (position, word) in words.iter().enumerate() {
            let word = word.as_ref();
            let key = if self.lowercase {
                word.to_lowercase()
            } else {
                word.to_string()
            };
            match (self.index.get(&key), self.unk) {
                (Some(&id), _) => ids.push(id),
                (None, Some(unk)) => {
                    ids.push(unk);
                    unknown.push(position);
                }
                (None, None) => {
                    return Err(Error::UnknownWord {
                        word: word.to_string(),
                        position,
                    })
                }
            }
        }
        Ok((ids, unknown))
    }
}

/// Splits raw text into Penn-Treebank-style tokens, the tokenisation of the
/// Stanford Sentiment Treebank: punctuation is its own token (`,` `.` `...`
/// `--` `;` `:` `?` `!` brackets), double quotes become `` `` `` and `''`,
/// clitics are split off (`does n't`, `ca n't`, `it 's`, `they 're`,
/// `I 'm`, `we 'll`, `you 've`, `he 'd`), `cannot` is `can not`, and
/// hyphenated words, numbers like `1,000` and abbreviations like `u.s.`
/// stay whole. Text that is already tokenised this way passes unchanged.
/// Case is kept; the vocabulary lowercases when its model asks for it.
pub fn tokenize(text: &str) -> Vec<String> {
    let text = text
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace('\u{201c}', " `` ")
        .replace('\u{201d}', " '' ");
    let chunks: Vec<&str> = text.split_whitespace().collect();
    let mut tokens = Vec::new();
    for (k, chunk) in chunks.iter().enumerate() {
        split_chunk(chunk, k + 1 == chunks.len(), &mut tokens);
    }
    tokens
}

/// Tokens that are never split further.
const WHOLE: [&str; 7] = ["...", "--", "``", "''", "n't", "-", "'"];

/// One white-space separated chunk: leading punctuation, the word (with
/// `--` and clitics split), trailing punctuation.
fn split_chunk(chunk: &str, last: bool, out: &mut Vec<String>) {
    let mut rest = chunk;
    loop {
        if WHOLE.contains(&rest) || rest.chars().count() <= 1 {
            break;
        }
        if let Some(r) = rest.strip_prefix('"') {
            out.push("``".into());
            rest = r;
        } else if let Some(r) = rest.strip_prefix("``") {
            out.push("``".into());
            rest = r;
        } else if let Some(c) = rest.chars().next().filter(|c| "([{<".contains(*c)) {
            out.push(c.to_string());
            rest = &rest[c.len_utf8()..];
        } else {
            break;
        }
    }
    let mut tail: Vec<String> = Vec::new();
    loop {
        if rest.is_empty() || WHOLE.contains(&rest) || rest.chars().count() <= 1 {
            break;
        }
        let (token, cut): (&str, usize) = if rest.ends_with("...") {
            ("...", 3)
        } else if rest.ends_with("''") {
            ("''", 2)
        } else if rest.ends_with('"') {
            ("''", 1)
        } else if let Some(c) = rest.chars().last().filter(|c| ")]}>,;:?!".contains(*c)) {
            tail.push(c.to_string());
            rest = &rest[..rest.len() - c.len_utf8()];
            continue;
        } else if rest.ends_with('.') && (last || !is_abbreviation(&rest[..rest.len() - 1])) {
            (".", 1)
        } else if rest.ends_with("s'") {
            // The plural possessive ("the series' end"); "ol'" stays whole.
            ("'", 1)
        } else {
            break;
        };
        tail.push(token.into());
        rest = &rest[..rest.len() - cut];
    }
    let mut pieces = rest.split("--").peekable();
    while let Some(piece) = pieces.next() {
        split_clitics(piece, out);
        if pieces.peek().is_some() {
            out.push("--".into());
        }
    }
    out.extend(tail.into_iter().rev());
}

/// Whether a word before a period mid-sentence is an abbreviation whose
/// period belongs to it (the treebank splits only the sentence's final
/// period): single letters, dotted words (`U.S`), and common titles.
fn is_abbreviation(stem: &str) -> bool {
    const TITLES: [&str; 16] = [
        "mr", "mrs", "ms", "dr", "st", "jr", "sr", "no", "vs", "etc", "inc", "co", "corp", "ltd", "prof", "gen",
    ];
    stem.chars().count() == 1 || stem.contains('.') || TITLES.contains(&stem.to_lowercase().as_str())
}

/// Splits `n't`, `'s`, `'re`, `'ve`, `'ll`, `'d`, `'m` off a word, and
/// `cannot` into `can not`.
fn split_clitics(word: &str, out: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    let lower = word.to_lowercase();
    if lower == "cannot" {
        out.extend([word[..3].to_string(), word[3..].to_string()]);
        return;
    }
    for clitic in ["n't", "'s", "'re", "'ve", "'ll", "'d", "'m"] {
        if lower.len() > clitic.len() && lower.ends_with(clitic) && word.is_char_boundary(word.len() - clitic.len()) {
            let (stem, suffix) = word.split_at(word.len() - clitic.len());
            out.extend([stem.to_string(), suffix.to_string()]);
            return;
        }
    }
    out.push(word.to_string());
}

#[cfg(test)]
mod tests {
    use super::tokenize;

    #[test]
    fn treebank_style() {
        let cases = [
            (
                "neither funny nor suspenseful nor particularly well-drawn .",
                "neither funny nor suspenseful nor particularly well-drawn .",
            ),
            (
                "Neither funny nor suspenseful, nor particularly well-drawn.",
                "Neither funny nor suspenseful , nor particularly well-drawn .",
            ),
            (
                "It doesn't work, and I can't say I cannot.",
                "It does n't work , and I ca n't say I can not .",
            ),
            (
                "The film's ending (really!) is \"great\"...",
                "The film 's ending ( really ! ) is `` great '' ...",
            ),
            (
                "They're 1,000 miles from the U.S. -- and we'll see",
                "They 're 1,000 miles from the U.S. -- and we 'll see",
            ),
            (
                "a--b the series' end I'm sure, ol' Mr. Smith and W. Bush. No. 1",
                "a -- b the series ' end I 'm sure , ol' Mr. Smith and W. Bush . No. 1",
            ),
            ("it 's not a bad journey at all .", "it 's not a bad journey at all ."),
            ("Wait... what?!", "Wait ... what ? !"),
            ("\u{201c}Smart\u{201d} isn\u{2019}t it", "`` Smart '' is n't it"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(tokenize(text).join(" "), want, "{text:?}");
        }
    }
}
