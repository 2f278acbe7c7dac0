//! The corpus view's data: a JSON Lines file of texts read at start,
//! each explained once (prediction, score, top words), then paged,
//! sorted and filtered on request.

use std::path::Path;

use lrp_app::{ExplainInput, MethodName, ReportOptions, RuleOptions};
use lrp_io::{LimitKind, Limits};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, CorpusQuery};
use crate::{Error, Loaded, Served};

/// The most rows a corpus file may hold.
pub const MAX_CORPUS_ROWS: usize = 100_000;

/// The most rows one page answers.
const MAX_PAGE_ROWS: usize = 500;

/// The words a row shows as its most relevant.
const TOP_WORDS: usize = 3;

/// One line of the corpus file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    text: String,
    #[serde(default)]
    label: Option<serde_json::Value>,
}

/// One row, as the corpus endpoint answers it and exports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// The row's line in the file (1-based).
    line: usize,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<serde_json::Value>,
    predicted: usize,
    /// The predicted class's score.
    score: f64,
    /// The most relevant words (LRP, the default rules), most first.
    top: Vec<String>,
}

/// The corpus: its rows, explained with the first model.
pub(crate) struct Corpus {
    rows: Vec<Row>,
    /// The model the rows were explained with.
    model: String,
}

impl Corpus {
    /// Its rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Reads `path` (within the limit on data files and
    /// [`MAX_CORPUS_ROWS`]) and explains every row with `served`, a text
    /// classifier, on the current worker pool.
    pub(crate) fn load(path: &Path, served: &Served, limits: &Limits) -> Result<Self, Error> {
        let Loaded::Classifier(dir) = &served.loaded else {
            return Err(Error::Usage(format!(
                "--corpus needs a text classifier as the first model, and {} is an encoder-decoder",
                served.name
            )));
        };
        let dir = &dir.f64;
        let vocab = dir.vocab().map_err(lrp_app::Error::from)?;
        let bytes = lrp_io::read_file_capped(path, limits.max_data_bytes, LimitKind::DataBytes)
            .map_err(lrp_app::Error::from)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Usage(format!("{}: the corpus is not UTF-8", path.display())))?;
        let mut inputs = Vec::new();
        let mut lines = Vec::new();
        for (k, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            if lines.len() == MAX_CORPUS_ROWS {
                return Err(Error::Usage(format!(
                    "{}: more than {MAX_CORPUS_ROWS} rows",
                    path.display()
                )));
            }
            let line: Line = serde_json::from_str(raw).map_err(|e| {
                Error::Usage(format!(
                    "{} line {}: not a corpus row ({{\"text\": ..., \"label\": ...}}): {e}",
                    path.display(),
                    k + 1
                ))
            })?;
            let what = format!("{} line {}", path.display(), k + 1);
            inputs.push(ExplainInput::text(vocab, &what, &line.text, limits)?.with_line(k + 1));
            lines.push(line);
        }
        let rules = RuleOptions::default().composite::<f64>()?;
        let method = MethodName::Lrp.method(&rules, 50);
        let reports = lrp_app::explain_batch(&dir.model, &inputs, method, ReportOptions::default())?;
        let rows = lines
            .into_iter()
            .zip(&reports)
            .map(|(line, report)| {
                let tokens = report.tokens.unwrap_or_default();
                let mut order: Vec<usize> = (0..tokens.len()).collect();
                order.sort_by(|&a, &b| report.token_relevance[b].total_cmp(&report.token_relevance[a]));
                Row {
                    line: report.line.unwrap_or(0),
                    text: line.text,
                    label: line.label,
                    predicted: report.predicted,
                    score: report.scores[report.predicted],
                    top: order.iter().take(TOP_WORDS).map(|&t| tokens[t].clone()).collect(),
                }
            })
            .collect();
        Ok(Self {
            rows,
            model: served.name.clone(),
        })
    }
}

/// A page of rows, or (`format=jsonl`) every matched row as JSON Lines.
#[derive(Serialize)]
struct Page<'a> {
    /// The model the rows were explained with.
    model: &'a str,
    /// Rows in the corpus.
    total: usize,
    /// Rows that pass the filters.
    matched: usize,
    offset: usize,
    rows: Vec<&'a Row>,
}

/// Answers a corpus query: filter, sort, then a page (or the export).
pub(crate) fn answer(corpus: &Corpus, query: &CorpusQuery) -> Result<String, ApiError> {
    let filter = query.filter.as_deref().unwrap_or("").to_lowercase();
    let mut rows: Vec<&Row> = corpus
        .rows
        .iter()
        .filter(|r| query.predicted.is_none_or(|k| r.predicted == k))
        .filter(|r| filter.is_empty() || r.text.to_lowercase().contains(&filter))
        .collect();
    match query.sort.as_deref().unwrap_or("line") {
        "line" => {}
        "score" => rows.sort_by(|a, b| a.score.total_cmp(&b.score)),
        "predicted" => rows.sort_by_key(|r| r.predicted),
        "label" => rows.sort_by_key(|r| r.label.as_ref().map(ToString::to_string)),
        "text" => rows.sort_by(|a, b| a.text.cmp(&b.text)),
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!(
                    "cannot sort by {:?}: sort takes line, score, predicted, label or text",
                    lrp_io::printable(other, 100)
                ),
            ))
        }
    }
    if query.descending == Some(true) {
        rows.reverse();
    }
    if query.format.as_deref() == Some("jsonl") {
        let mut out = String::new();
        for row in rows {
            out.push_str(&serde_json::to_string(row).unwrap_or_default());
            out.push('\n');
        }
        return Ok(out);
    }
    if let Some(format) = query.format.as_deref().filter(|f| *f != "json") {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("unknown format {:?}: json or jsonl", lrp_io::printable(format, 100)),
        ));
    }
    let matched = rows.len();
    let offset = query.offset.unwrap_or(0).min(matched);
    let limit = query.limit.unwrap_or(50).min(MAX_PAGE_ROWS);
    let page = Page {
        model: &corpus.model,
        total: corpus.rows.len(),
        matched,
        offset,
        rows: rows.into_iter().skip(offset).take(limit).collect(),
    };
    Ok(serde_json::to_string(&page).unwrap_or_default())
}
