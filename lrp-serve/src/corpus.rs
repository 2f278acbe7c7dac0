//! The corpus view's data: a file of texts, read at start (`--corpus`) or
//! opened from the page, each row explained once (prediction, score, top
//! words), then paged, sorted and filtered on request.

use std::path::Path;
use std::sync::Arc;

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

/// How a corpus file holds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CorpusFormat {
    /// One JSON object a line: `{"text": "...", "label": ...}`.
    JsonLines,
    /// One text a line, nothing else (no labels).
    Lines,
}

impl CorpusFormat {
    /// The format a file's name says: `.txt` is plain lines, anything
    /// else JSON Lines (so `--corpus` and a file opened from the page
    /// read a file the same way).
    pub(crate) fn of_name(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".txt") {
            Self::Lines
        } else {
            Self::JsonLines
        }
    }

    /// The format a request names: `jsonl` or `lines`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "jsonl" => Some(Self::JsonLines),
            "lines" => Some(Self::Lines),
            _ => None,
        }
    }
}

/// The corpus: its rows, explained with one model.
pub(crate) struct Corpus {
    rows: Vec<Row>,
    /// The model the rows were explained with.
    model: String,
    /// Where the rows came from: the file's name.
    source: String,
}

impl Corpus {
    /// Its rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The model the rows were explained with.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// The file the rows came from.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Reads `path` (within the limit on data files and
    /// [`MAX_CORPUS_ROWS`]; `.txt` is one text a line, anything else JSON
    /// Lines) and explains every row with `served`, a text classifier, on
    /// the current worker pool.
    pub(crate) fn load(path: &Path, served: &Served, limits: &Limits) -> Result<Self, Error> {
        let bytes = lrp_io::read_file_capped(path, limits.max_data_bytes, LimitKind::DataBytes)
            .map_err(lrp_app::Error::from)?;
        let name = path.display().to_string();
        let mut corpus = Self::from_bytes(&bytes, &name, CorpusFormat::of_name(&name), served, limits)?;
        // The page shows the file's name, not where it lies on the server.
        if let Some(file) = path.file_name() {
            corpus.source = file.to_string_lossy().into_owned();
        }
        Ok(corpus)
    }

    /// Reads the rows in `bytes` (a file called `source`, in `format`)
    /// and explains each with `served`, a text classifier, on the current
    /// worker pool. An error names `source` and the line.
    pub(crate) fn from_bytes(
        bytes: &[u8],
        source: &str,
        format: CorpusFormat,
        served: &Served,
        limits: &Limits,
    ) -> Result<Self, Error> {
        let Loaded::Classifier(dir) = &served.loaded else {
            return Err(Error::Usage(format!(
                "a corpus needs a text classifier, and {} is an encoder-decoder",
                served.name
            )));
        };
        let dir = &dir.f64;
        let vocab = dir.vocab().map_err(lrp_app::Error::from)?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| Error::Usage(format!("{source}: the corpus is not UTF-8")))?;
        let mut inputs = Vec::new();
        let mut lines = Vec::new();
        for (k, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            if lines.len() == MAX_CORPUS_ROWS {
                return Err(Error::Usage(format!("{source}: more than {MAX_CORPUS_ROWS} rows")));
            }
            let line: Line = match format {
                CorpusFormat::JsonLines => serde_json::from_str(raw).map_err(|e| {
                    Error::Usage(format!(
                        "{source} line {}: not a corpus row ({{\"text\": ..., \"label\": ...}}; a .txt file holds one text a line): {e}",
                        k + 1
                    ))
                })?,
                CorpusFormat::Lines => Line {
                    text: raw.to_string(),
                    label: None,
                },
            };
            let what = format!("{source} line {}", k + 1);
            inputs.push(ExplainInput::text(vocab, &what, &line.text, limits)?.with_line(k + 1));
            lines.push(line);
        }
        if lines.is_empty() {
            return Err(Error::Usage(format!("{source}: the corpus has no rows")));
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
            source: source.to_string(),
        })
    }
}

/// The corpora opened from the page, the newest last: at most
/// [`MAX_UPLOADED`] are kept, the oldest dropped first, so memory stays
/// bounded however many files are opened.
pub(crate) struct Uploads {
    /// Tells this run's identifiers from an earlier run's, so that a link
    /// to a corpus of a stopped server is refused rather than answered
    /// with another corpus.
    run: u64,
    opened: u64,
    kept: std::collections::VecDeque<(String, Arc<Corpus>)>,
}

/// Corpora opened from the page that are kept at once.
pub const MAX_UPLOADED: usize = 4;

impl Uploads {
    pub(crate) fn new() -> Self {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 & 0xffff_ffff);
        Self {
            run,
            opened: 0,
            kept: std::collections::VecDeque::new(),
        }
    }

    /// Keeps `corpus` (dropping the oldest beyond [`MAX_UPLOADED`]) and
    /// returns its identifier.
    pub(crate) fn keep(&mut self, corpus: Corpus) -> String {
        self.opened += 1;
        let id = format!("{:08x}-{}", self.run, self.opened);
        if self.kept.len() == MAX_UPLOADED {
            self.kept.pop_front();
        }
        self.kept.push_back((id.clone(), Arc::new(corpus)));
        id
    }

    /// The corpus called `id`, if it is still kept.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Corpus>> {
        self.kept.iter().find(|(k, _)| k == id).map(|(_, c)| Arc::clone(c))
    }
}

/// A page of rows, or (`format=jsonl`) every matched row as JSON Lines.
#[derive(Serialize)]
struct Page<'a> {
    /// The model the rows were explained with.
    model: &'a str,
    /// The file the rows came from.
    source: &'a str,
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
        source: &corpus.source,
        total: corpus.rows.len(),
        matched,
        offset,
        rows: rows.into_iter().skip(offset).take(limit).collect(),
    };
    Ok(serde_json::to_string(&page).unwrap_or_default())
}
