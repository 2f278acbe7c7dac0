use std::collections::HashMap;
use std::path::Path;

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
    pub fn parse(path: &Path, text: &str, unk_token: Option<&str>, lowercase: bool) -> Result<Self, Error> {
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
        let _ = path;
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
        words
            .iter()
            .enumerate()
            .map(|(position, word)| {
                let word = word.as_ref();
                let key = if self.lowercase {
                    word.to_lowercase()
                } else {
                    word.to_string()
                };
                self.index
                    .get(&key)
                    .copied()
                    .or(self.unk)
                    .ok_or_else(|| Error::UnknownWord {
                        word: word.to_string(),
                        position,
                    })
            })
            .collect()
    }
}

/// Splits text into words at white space.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}
