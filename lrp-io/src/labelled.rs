//! Labelled sentences for evaluation: Stanford Sentiment Treebank trees or
//! `label<TAB>text` lines.

use std::path::Path;

use crate::message::thousands;
use crate::text_input::LineLimits;
use crate::{read_file_capped, tokenize, Error, LimitKind, Limits};

/// A sentence with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledSentence {
    /// The class index.
    pub label: usize,
    /// The tokens.
    pub tokens: Vec<String>,
}

/// Reads labelled sentences, one a line (blank lines skipped), in either
/// format, decided line by line:
/// - an SST tree `(3 (2 It) (4 works))`: the root's label, the leaves as
///   tokens, with the treebank's escapes undone (`-LRB-` is `(`, `\/` is
///   `/`, `\*` is `*`), as the default model was trained;
/// - `label<TAB>text`: the text is tokenised by [`tokenize`].
///
/// Within the default [`Limits`].
pub fn read_labelled(path: impl AsRef<Path>) -> Result<Vec<LabelledSentence>, Error> {
    read_labelled_with(path, &Limits::default())
}

/// [`read_labelled`] within `limits` (file size, line length, tokens per
/// sentence and in all, number of sentences).
pub fn read_labelled_with(path: impl AsRef<Path>, limits: &Limits) -> Result<Vec<LabelledSentence>, Error> {
    let path = path.as_ref();
    let bytes = read_file_capped(path, limits.max_data_bytes, LimitKind::DataBytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text: {e}"),
    })?;
    let mut sentences = Vec::new();
    let mut counter = LineLimits::new(path, limits);
    for (k, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| Error::Format {
            path: path.to_path_buf(),
            message: format!("line {}: {what}", thousands(k + 1)),
        };
        counter.line(k + 1, line)?;
        let sentence = if line.starts_with('(') {
            parse_tree(line).ok_or_else(|| bad("not a well-formed SST tree"))?
        } else {
            let (label, text) = line
                .split_once('\t')
                .ok_or_else(|| bad("expected an SST tree or label<TAB>text"))?;
            let label = label
                .trim()
                .parse()
                .map_err(|_| bad("the label is not a class number"))?;
            LabelledSentence {
                label,
                tokens: tokenize(text),
            }
        };
        counter.tokens(k + 1, sentence.tokens.len())?;
        sentences.push(sentence);
    }
    Ok(sentences)
}

/// The root label and the normalised leaves of one tree.
fn parse_tree(line: &str) -> Option<LabelledSentence> {
    let label = line.strip_prefix('(')?.split(' ').next()?.parse().ok()?;
    let mut tokens = Vec::new();
    let mut depth = 0i64;
    // A leaf is "(label token)": an opening bracket, a label, one token
    // without brackets, a closing bracket.
    let bytes = line.as_bytes();
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b'(' => {
                depth += 1;
                let inner = &line[k + 1..];
                let end = inner.find(['(', ')'])?;
                if inner.as_bytes()[end] == b')' {
                    let (_, token) = inner[..end].split_once(' ')?;
                    tokens.push(normalise_leaf(token));
                    depth -= 1;
                    k += end + 2;
                    continue;
                }
            }
            b')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
        k += 1;
    }
    (depth == 0 && !tokens.is_empty()).then_some(LabelledSentence { label, tokens })
}

/// Undoes the treebank's escapes in a leaf.
fn normalise_leaf(token: &str) -> String {
    let token = match token {
        "-LRB-" => "(",
        "-RRB-" => ")",
        "-LSB-" => "[",
        "-RSB-" => "]",
        "-LCB-" => "{",
        "-RCB-" => "}",
        other => other,
    };
    token.replace("\\/", "/").replace("\\*", "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_and_tab_lines() {
        let tree = parse_tree("(3 (2 (2 The) (2 Rock)) (4 (2 -LRB-) (3 co-writer\\/director) (2 's)))").unwrap();
        assert_eq!(tree.label, 3);
        assert_eq!(tree.tokens, ["The", "Rock", "(", "co-writer/director", "'s"]);
        assert!(parse_tree("(3 (2 The) (2 Rock)").is_none());
        assert!(parse_tree("(x (2 The))").is_none());
    }
}
