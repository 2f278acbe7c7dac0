//! The routes: the page's assets, and the JSON API (`docs/serve.md`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State as Shared};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lrp_app::{Choice, ExplainInput, MethodName, ReportOptions, RuleOptions};
use lrp_core::Float;
use lrp_io::{Limits, ModelDir};
use serde::{Deserialize, Serialize};

use crate::{assets, corpus, Loaded, Served, State, MAX_BODY_BYTES, MAX_UPLOAD_BYTES};

/// The content security policy of every response: scripts, styles and
/// requests only from this server, no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of the server. With `hosts`, a request whose `Host` header
/// is not one of them is refused (403): a server on loopback then answers
/// only to names of loopback, so a web page elsewhere cannot reach it by
/// pointing a name of its own at 127.0.0.1 (DNS rebinding).
pub(crate) fn router(state: Arc<State>, hosts: Option<Vec<String>>) -> Router {
    let hosts = hosts.map(Arc::new);
    Router::new()
        .route("/", get(|| async { assets::page() }))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/models", get(models))
        .route("/api/info", get(info))
        .route("/api/explain", post(explain))
        .route("/api/deletion", post(deletion))
        .route("/api/corpus", get(corpus_page).post(open_corpus))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page or endpoint") })
        .layer(axum::middleware::from_fn(move |request, next| {
            check_host(hosts.clone(), request, next)
        }))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// Passes a request on when its `Host` header is one of `hosts` (or when
/// any host is allowed).
async fn check_host(
    hosts: Option<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(hosts) = hosts {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this server answers only to {} (the request's Host is {:?})",
                    hosts.join(", "),
                    lrp_io::printable(host, 100)
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The `Host` headers a server listening on `local` answers to: for
/// loopback, the loopback names with and without the port; beyond
/// loopback (an explicit `--host`), any.
pub(crate) fn allowed_hosts(local: std::net::SocketAddr) -> Option<Vec<String>> {
    if !local.ip().is_loopback() {
        return None;
    }
    let port = local.port();
    let own = match local.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut names = vec!["127.0.0.1".to_string(), "localhost".into(), "[::1]".into()];
    if !names.contains(&own) {
        names.push(own);
    }
    Some(names.iter().flat_map(|n| [format!("{n}:{port}"), n.clone()]).collect())
}

/// Adds the content security policy and its companions to a response.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A refused or failed request: its status and one line saying why,
/// answered as `{"error": LINE}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: lrp_app::error_line(&message),
        }
    }

    fn bad(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<lrp_app::Error> for ApiError {
    fn from(e: lrp_app::Error) -> Self {
        // Everything but a failed write is about the request.
        let status = match e {
            lrp_app::Error::Output(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e)
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::App(e) => e.into(),
            crate::Error::Usage(line) => Self::bad(line),
            e => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

impl From<lrp_io::Error> for ApiError {
    fn from(e: lrp_io::Error) -> Self {
        lrp_app::Error::from(e).into()
    }
}

impl From<lrp_models::Error> for ApiError {
    fn from(e: lrp_models::Error) -> Self {
        lrp_app::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// A JSON body already written.
fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One model as `GET /api/models` lists it.
#[derive(Serialize)]
struct ModelEntry<'a> {
    name: &'a str,
    /// `text`, `vectors` (no vocabulary) or `seq2seq`.
    kind: &'static str,
    /// `lrp model-info`'s text view.
    description: &'a str,
    /// The class labels, when the config has them.
    labels: Option<&'a [String]>,
    /// Outputs of the head (classes), or the target vocabulary's size.
    classes: usize,
    /// Width of one input vector.
    input_size: usize,
    /// Whether the head scores every position (`position` applies).
    per_step: bool,
    /// Whether the head is a regression.
    regression: bool,
    /// The LRP sites, as rules by site name them.
    sites: Vec<String>,
}

async fn models(Shared(state): Shared<Arc<State>>) -> Response {
    let entries: Vec<ModelEntry<'_>> = state.models.iter().map(model_entry).collect();
    json(serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into()))
}

/// What the page needs at start: the models, and the corpus's size
/// (`null` without one).
#[derive(Serialize)]
struct Info<'a> {
    models: Vec<ModelEntry<'a>>,
    corpus_rows: Option<usize>,
}

async fn info(Shared(state): Shared<Arc<State>>) -> Response {
    let info = Info {
        models: state.models.iter().map(model_entry).collect(),
        corpus_rows: state.corpus.as_ref().map(|c| c.len()),
    };
    json(serde_json::to_string(&info).unwrap_or_else(|_| "{}".into()))
}

fn model_entry(served: &Served) -> ModelEntry<'_> {
    match &served.loaded {
        Loaded::Classifier(dir) => {
            let model = &dir.f64.model;
            ModelEntry {
                name: &served.name,
                kind: if dir.f64.vocab.is_some() { "text" } else { "vectors" },
                description: &served.description,
                labels: model.config().and_then(|c| c.labels.as_deref()),
                classes: model.num_classes(),
                input_size: model.input_size(),
                per_step: model.is_per_step(),
                regression: lrp_app::is_regression(model),
                sites: model.sites().iter().map(ToString::to_string).collect(),
            }
        }
        Loaded::Seq2Seq(dir) => ModelEntry {
            name: &served.name,
            kind: "seq2seq",
            description: &served.description,
            labels: None,
            classes: dir.f64.model.target_vocab_size(),
            input_size: 0,
            per_step: false,
            regression: false,
            sites: dir.f64.model.sites().iter().map(ToString::to_string).collect(),
        },
    }
}

/// `POST /api/explain`'s body: `lrp explain`'s long flags with `-` as
/// `_`, and `model` a name given at start. `vectors` is the input itself
/// (`[T][E]` numbers), never a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplainRequest {
    pub model: Option<String>,
    pub text: Option<String>,
    pub vectors: Option<Vec<Vec<f64>>>,
    pub target: Option<usize>,
    pub position: Option<usize>,
    pub method: Option<String>,
    pub steps: Option<usize>,
    pub composite: Option<String>,
    pub rule: Option<String>,
    pub gate_rule: Option<String>,
    pub gamma: Option<f64>,
    pub alpha: Option<f64>,
    pub eps: Option<f64>,
    pub prop_eps: Option<f64>,
    pub bias_factor: Option<f64>,
    pub rules: Option<String>,
    pub per_dimension: Option<bool>,
    pub precision: Option<String>,
    pub output_text: Option<String>,
    pub max_output_length: Option<usize>,
    /// `/api/deletion` only: the most positions deleted.
    pub deletions: Option<usize>,
}

/// `lrp explain`'s default for `--steps`.
const DEFAULT_STEPS: usize = 50;
/// `lrp explain`'s default for `--max-output-length`, and its largest.
const DEFAULT_OUTPUT_LENGTH: usize = 50;

impl ExplainRequest {
    /// The rule options, with `lrp explain`'s defaults for what is not given.
    fn rule_options(&self) -> Result<RuleOptions, ApiError> {
        if self.composite.is_some() && self.rule.is_some() {
            return Err(ApiError::bad("composite and rule cannot be given together"));
        }
        let d = RuleOptions::default();
        Ok(RuleOptions {
            composite: self.composite.clone().unwrap_or(d.composite),
            rule: self.rule.clone(),
            gate_rule: self.gate_rule.clone().unwrap_or(d.gate_rule),
            gamma: self.gamma.unwrap_or(d.gamma),
            alpha: self.alpha.unwrap_or(d.alpha),
            eps: self.eps.unwrap_or(d.eps),
            prop_eps: self.prop_eps.unwrap_or(d.prop_eps),
            bias_factor: self.bias_factor.unwrap_or(d.bias_factor),
            rules: self.rules.clone(),
        })
    }

    fn method(&self) -> Result<MethodName, ApiError> {
        Ok(match &self.method {
            Some(name) => MethodName::parse("method", name)?,
            None => MethodName::default(),
        })
    }

    fn precision(&self) -> Result<lrp_app::Precision, ApiError> {
        Ok(match &self.precision {
            Some(name) => lrp_app::Precision::parse("precision", name)?,
            None => lrp_app::Precision::default(),
        })
    }
}

/// Reads a request body within [`MAX_BODY_BYTES`] and parses it.
async fn read_json<R: serde::de::DeserializeOwned>(body: Body) -> Result<R, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("the request is not a valid explain request: {e}")))
}

async fn explain(Shared(state): Shared<Arc<State>>, body: Body) -> Result<Response, ApiError> {
    let request: ExplainRequest = read_json(body).await?;
    let line = on_pool(&state, move |state| explain_request(state, &request)).await?;
    Ok(json(line))
}

/// Runs `work` on the worker pool, behind the bounded queue: the I/O
/// threads only wait for its answer. A panic is a 500 naming it.
pub(crate) async fn on_pool<R: Send + 'static>(
    state: &Arc<State>,
    work: impl FnOnce(&State) -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    let Ok(permit) = state.queue.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy ({} explanations under way): try again",
                crate::MAX_QUEUED
            ),
        ));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shared = Arc::clone(state);
    state.pool.spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&shared)));
        let result = result.unwrap_or_else(|panic| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                lrp_app::internal_error(panic.as_ref()),
            ))
        });
        let _ = tx.send(result);
        drop(permit);
    });
    rx.await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the explanation was lost",
        ))
    })
}

/// The served model a request names (the first when it names none).
pub(crate) fn find_model<'s>(state: &'s State, name: Option<&str>) -> Result<&'s Served, ApiError> {
    match name {
        None => Ok(&state.models[0]),
        Some(name) => state.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let names: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::bad(format!(
                "unknown model {:?}: this server has {}",
                lrp_io::printable(name, 100),
                names.join(", ")
            ))
        }),
    }
}

/// Explains one request: the JSON `lrp explain --format json` prints for
/// the same options (for an encoder–decoder, its lines as one array).
pub(crate) fn explain_request(state: &State, request: &ExplainRequest) -> Result<String, ApiError> {
    let served = find_model(state, request.model.as_deref())?;
    let precision = request.precision()?;
    match (&served.loaded, precision) {
        (Loaded::Classifier(dir), lrp_app::Precision::F32) => explain_classifier(&dir.f32, request, &state.limits),
        (Loaded::Classifier(dir), _) => explain_classifier(&dir.f64, request, &state.limits),
        (Loaded::Seq2Seq(dir), lrp_app::Precision::F32) => explain_seq2seq(&dir.f32, request, &state.limits),
        (Loaded::Seq2Seq(dir), _) => explain_seq2seq(&dir.f64, request, &state.limits),
    }
}

/// A classifier's explanation, checked in `lrp explain`'s order.
fn explain_classifier<T: Float>(
    dir: &ModelDir<T>,
    request: &ExplainRequest,
    limits: &Limits,
) -> Result<String, ApiError> {
    if request.deletions.is_some() {
        return Err(ApiError::bad("deletions is a key of /api/deletion"));
    }
    with_report(dir, request, limits, |_, report| Ok(report.json_line()?))
}

/// Explains a classifier's input as `lrp explain` does, and hands the
/// input and its report to `then`.
fn with_report<T: Float, R>(
    dir: &ModelDir<T>,
    request: &ExplainRequest,
    limits: &Limits,
    then: impl FnOnce(&ExplainInput, &lrp_app::Report<'_>) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    if request.output_text.is_some() || request.max_output_length.is_some() {
        return Err(ApiError::bad("output_text and max_output_length need a seq2seq model"));
    }
    let rules = request.rule_options()?.composite_for::<T>(&dir.model.sites())?;
    let steps = request.steps.unwrap_or(DEFAULT_STEPS);
    let method = request
        .method()?
        .checked_method(&dir.model, &rules, steps, request.position)?;
    let input = match (&request.text, &request.vectors) {
        (Some(text), None) => ExplainInput::text(dir.vocab()?, "TEXT", text, limits)?,
        (None, Some(rows)) => ExplainInput::vectors(None, vectors_of(rows, dir.model.input_size(), limits)?),
        _ => return Err(ApiError::bad("give one of text and vectors")),
    };
    limits.check_cost("TEXT", dir.model.cost(method, input.len()))?;
    let options = ReportOptions {
        target: request.target,
        position: request.position,
        per_dimension: request.per_dimension.unwrap_or(false),
        several: false,
    };
    let batch = [input];
    let reports = lrp_app::explain_batch(&dir.model, &batch, method, options)?;
    then(&batch[0], &reports[0])
}

/// The deletion curve of one input (`lrp perturb`'s, for one text): the
/// target's score as its most relevant positions (by the method asked
/// for) are set to zero one after the other.
#[derive(Serialize)]
struct DeletionCurve<'a> {
    method: &'static str,
    target: usize,
    /// The positions deleted, in order.
    order: Vec<usize>,
    /// The target's score after 0, 1, ... deletions.
    scores: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<&'a [String]>,
}

/// The most deletions a curve runs to when `deletions` is not given.
const DEFAULT_DELETIONS: usize = 5;

fn deletion_curve<T: Float>(dir: &ModelDir<T>, request: &ExplainRequest, limits: &Limits) -> Result<String, ApiError> {
    use lrp_models::faithfulness::{check_deletions, deletion_order, deletion_variants};
    let deletions = request.deletions.unwrap_or(DEFAULT_DELETIONS);
    check_deletions(deletions)?;
    with_report(dir, request, limits, |input, report| {
        let order = deletion_order(&report.token_relevance, true);
        let x = input.input(&dir.model)?;
        let variants: Vec<_> = deletion_variants(&x, &order, deletions)?.collect();
        let kept = variants.len() - 1;
        let scores = dir
            .model
            .forward_batch(variants)
            .into_iter()
            .map(|trace| {
                let trace = match request.position {
                    Some(t) => trace?.at_position(t)?,
                    None => trace?,
                };
                Ok(trace.scores()[report.target].as_f64())
            })
            .collect::<Result<Vec<f64>, lrp_models::Error>>()?;
        let curve = DeletionCurve {
            method: report.method,
            target: report.target,
            order: order[..kept].to_vec(),
            scores,
            tokens: report.tokens,
        };
        serde_json::to_string(&curve).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
}

async fn deletion(Shared(state): Shared<Arc<State>>, body: Body) -> Result<Response, ApiError> {
    let request: ExplainRequest = read_json(body).await?;
    let line = on_pool(&state, move |state| {
        let served = find_model(state, request.model.as_deref())?;
        match (&served.loaded, request.precision()?) {
            (Loaded::Classifier(dir), lrp_app::Precision::F32) => deletion_curve(&dir.f32, &request, &state.limits),
            (Loaded::Classifier(dir), _) => deletion_curve(&dir.f64, &request, &state.limits),
            (Loaded::Seq2Seq(_), _) => Err(ApiError::bad("deletion curves are for classifiers")),
        }
    })
    .await?;
    Ok(json(line))
}

/// `[T][E]` numbers as the model's input `[E, T]`, within the limits.
fn vectors_of(rows: &[Vec<f64>], width: usize, limits: &Limits) -> Result<nalgebra::DMatrix<f64>, ApiError> {
    if rows.len() > limits.max_tokens {
        return Err(ApiError::bad(format!(
            "vectors has {} positions, more than the limit of {}",
            rows.len(),
            limits.max_tokens
        )));
    }
    if let Some((t, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(ApiError::bad(format!(
            "vectors[{t}] has {} numbers, but the model reads vectors of {width}",
            row.len()
        )));
    }
    Ok(nalgebra::DMatrix::from_fn(width, rows.len(), |e, t| rows[t][e]))
}

/// An encoder–decoder's explanation: the lines `lrp explain --format
/// json` prints, one per output token, as one JSON array.
fn explain_seq2seq<T: Float>(
    dir: &lrp_io::Seq2SeqDir<T>,
    request: &ExplainRequest,
    limits: &Limits,
) -> Result<String, ApiError> {
    if request.deletions.is_some() {
        return Err(ApiError::bad("deletions is a key of /api/deletion"));
    }
    if request.vectors.is_some() || request.per_dimension == Some(true) || request.position.is_some() {
        return Err(ApiError::bad(
            "a seq2seq model reads text: vectors, per_dimension and position do not apply",
        ));
    }
    let Some(text) = &request.text else {
        return Err(ApiError::bad("give the source text"));
    };
    let rules = request.rule_options()?;
    let options = lrp_app::Seq2SeqOptions {
        output_text: request.output_text.as_deref(),
        max_output_length: request.max_output_length.unwrap_or(DEFAULT_OUTPUT_LENGTH),
        target: request.target,
        method: request.method()?,
        steps: request.steps.unwrap_or(DEFAULT_STEPS),
    };
    if !(1..=lrp_models::seq2seq::MAX_TARGET_LENGTH).contains(&options.max_output_length) {
        return Err(ApiError::bad(format!(
            "max_output_length must be from 1 to {}",
            lrp_models::seq2seq::MAX_TARGET_LENGTH
        )));
    }
    let mut lines = Vec::new();
    lrp_app::explain_seq2seq(dir, text, &rules, options, limits, &mut |report, _| {
        lines.push(report.json_line()?);
        Ok(())
    })?;
    Ok(format!("[{}]", lines.join(",")))
}

/// `GET /api/corpus`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CorpusQuery {
    /// A corpus opened from the page; without it, `--corpus`'s.
    pub corpus: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub sort: Option<String>,
    pub descending: Option<bool>,
    pub filter: Option<String>,
    pub predicted: Option<usize>,
    pub format: Option<String>,
}

async fn corpus_page(
    Shared(state): Shared<Arc<State>>,
    query: Result<Query<CorpusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad corpus query: {}", e.body_text())))?;
    let corpus = match &query.corpus {
        Some(id) => state
            .uploads
            .lock()
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the corpora are unreadable"))?
            .get(id)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no corpus {:?}: the server keeps the last {} files opened from the page, until it stops",
                        lrp_io::printable(id, 40),
                        crate::MAX_UPLOADED
                    ),
                )
            })?,
        None => state.corpus.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this server has no corpus (start it with --corpus FILE.jsonl, or open a file from the page)",
            )
        })?,
    };
    let corpus = &*corpus;
    let answer = corpus::answer(corpus, &query)?;
    Ok(match query.format.as_deref() {
        Some("jsonl") => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"corpus-filtered.jsonl\"",
                ),
            ],
            answer,
        )
            .into_response(),
        _ => json(answer),
    })
}

/// `POST /api/corpus`'s query; the body is the file itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenQuery {
    /// The model that explains the rows (default: the first).
    model: Option<String>,
    /// `jsonl` (default) or `lines`.
    format: Option<String>,
    /// The file's name, shown with the rows.
    name: Option<String>,
}

/// The answer to opening a corpus: where to read its rows.
#[derive(Serialize)]
struct Opened {
    /// The `corpus` key of `GET /api/corpus`.
    corpus: String,
    model: String,
    source: String,
    total: usize,
}

/// Opens a corpus file sent from the page: reads it within
/// [`MAX_UPLOAD_BYTES`] and the limit on data files, explains every row
/// on the worker pool, and keeps it among the last few opened.
async fn open_corpus(
    Shared(state): Shared<Arc<State>>,
    query: Result<Query<OpenQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad corpus query: {}", e.body_text())))?;
    let format = match query.format.as_deref() {
        None => corpus::CorpusFormat::JsonLines,
        Some(name) => corpus::CorpusFormat::parse(name).ok_or_else(|| {
            ApiError::bad(format!(
                "unknown corpus format {:?}: jsonl or lines",
                lrp_io::printable(name, 100)
            ))
        })?,
    };
    let source = lrp_io::printable(query.name.as_deref().unwrap_or("corpus"), 200).to_string();
    let cap = MAX_UPLOAD_BYTES.min(usize::try_from(state.limits.max_data_bytes).unwrap_or(usize::MAX));
    let bytes = axum::body::to_bytes(body, cap).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the corpus is larger than {cap} bytes"),
        )
    })?;
    let model = query.model;
    let corpus = on_pool(&state, move |state| {
        let served = find_model(state, model.as_deref())?;
        Ok(corpus::Corpus::from_bytes(
            &bytes,
            &source,
            format,
            served,
            &state.limits,
        )?)
    })
    .await?;
    let opened = Opened {
        model: corpus.model().to_string(),
        source: corpus.source().to_string(),
        total: corpus.len(),
        corpus: String::new(),
    };
    let id = state
        .uploads
        .lock()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the corpora are unreadable"))?
        .keep(corpus);
    Ok(json(
        serde_json::to_string(&Opened { corpus: id, ..opened }).unwrap_or_default(),
    ))
}
