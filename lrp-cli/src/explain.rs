//! `lrp explain`.

use std::borrow::Cow;
use std::io::Write;

use indicatif::{ProgressBar, ProgressStyle};
use lrp_core::Float;
use lrp_io::{open_sequences, read_text_lines, tokenize_within, AtomicFile, ModelDir, Sequences, TextLines, Vocab};
use lrp_layers::{gate_rule, Composite, RuleParameters, RuleSpec, Site};
use lrp_models::config::Task;
use lrp_models::{ForwardTrace, Method, Model};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::Serialize;

use crate::render::{html_footer, html_header, View};
use crate::{default_model, CliError, Colour, ExplainArgs, ExplainFormat, Precision, RuleArgs, Terminal};

/// One explanation as `lrp explain` prints it: serialised, one line of
/// its JSON output (the CLI contract; keys are stable). Values are f64
/// whatever the precision (an f32 value widens exactly).
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    /// The input file's line (1-based, blank lines counted) for `--input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The array's name, for an npz archive of several arrays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The class scores `[C]`.
    pub scores: Vec<f64>,
    /// The class with the highest score (for a regression head, the
    /// largest output).
    pub predicted: usize,
    /// The class explained.
    pub target: usize,
    /// The output position explained, for a per-step head (`scores` are
    /// that position's outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The method's short name (`lrp`, `sa`, `gi`, `occlusion`, `ig`).
    pub method: &'static str,
    /// Relevance per position `[T]`.
    pub token_relevance: Vec<f64>,
    /// LRP only: relevance that reached the initial states.
    pub initial_state_relevance: Option<f64>,
    /// LRP only: relevance dropped at zero denominators.
    pub unexplained_relevance: Option<f64>,
    /// Relevance per position and input dimension `[T][E]`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_relevance: Option<Vec<Vec<f64>>>,
    /// The attention weights `[T]`, for a head that reads the context.
    pub attention: Option<Vec<f64>>,
    /// The words, for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<&'a [String]>,
    /// Positions of the tokens the vocabulary does not hold (read as its
    /// unknown token), for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<&'a [usize]>,
}

/// What to report besides the method: the flags of `lrp explain` that
/// shape each [`Report`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// The class to explain (default: the predicted class, or output 0 of
    /// a regression head).
    pub target: Option<usize>,
    /// The output position to explain, for a per-step head (default: the
    /// last position).
    pub position: Option<usize>,
    /// Also report `input_relevance` `[T][E]`.
    pub per_dimension: bool,
    /// The inputs are the arrays of an archive: reports and errors name
    /// their array.
    pub several: bool,
}

/// One sequence to explain: text looked up in a vocabulary, or vectors.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    name: Option<String>,
    /// The line of the `--input` file it came from (1-based).
    line: Option<usize>,
    /// The words, for text input.
    tokens: Option<Vec<String>>,
    /// Positions of out-of-vocabulary words, for text input.
    unknown: Option<Vec<usize>>,
    input: Input,
    /// What reading it advanced the progress bar by (bytes of a text file,
    /// else 1).
    progress: u64,
}

/// What the model reads for one item.
#[derive(Debug, Clone)]
enum Input {
    /// Embedding rows, for text: embedded when explained, so that a window
    /// of text holds words, not vectors.
    Ids(Vec<usize>),
    /// Vectors `[E, T]`.
    Vectors(DMatrix<f64>),
}

impl ExplainInput {
    /// Text: tokenised as `lrp explain --text` does (within `limits`;
    /// `what` names it in messages) and looked up in `vocab`.
    pub fn text(vocab: &Vocab, what: &str, text: &str, limits: &lrp_io::Limits) -> Result<Self, CliError> {
        let tokens = tokenize_within(what, text, limits)?;
        text_item(vocab, None, tokens, 1)
    }

    /// Input vectors `[E, T]` (column `t` is position `t`), with the name
    /// reports give them when explained as [`ReportOptions::several`].
    pub fn vectors(name: Option<String>, vectors: DMatrix<f64>) -> Self {
        Self {
            name,
            line: None,
            tokens: None,
            unknown: None,
            input: Input::Vectors(vectors),
            progress: 1,
        }
    }

    /// Positions, `T`.
    pub fn len(&self) -> usize {
        match &self.input {
            Input::Ids(ids) => ids.len(),
            Input::Vectors(vectors) => vectors.ncols(),
        }
    }

    /// Whether it has no positions (the explainers refuse such an input).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The model's input `[E, T]`.
    pub fn input<T: Float>(&self, model: &Model<T>) -> Result<DMatrix<T>, lrp_models::Error> {
        match &self.input {
            Input::Ids(ids) => model.embed(ids),
            Input::Vectors(vectors) => Ok(vectors.map(T::of_f64)),
        }
    }
}

/// Inputs explained together, at most: enough for every core to get many
/// chunks of equal length, few enough that a window of reports is a few
/// megabytes whatever the size of the input.
const WINDOW_INPUTS: usize = 4096;

/// Input values (`T x E`) of a window, at most (32 MB of f64; one longer
/// sequence still makes a window of its own).
const WINDOW_VALUES: usize = 1 << 22;

pub(crate) fn run(args: &ExplainArgs, stdout: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    // `--out -` and `--out /dev/stdout` mean standard output: replacing
    // /dev/stdout by a file would fail, or clobber a device.
    let out_file = args
        .out
        .as_deref()
        .filter(|p| *p != std::path::Path::new("-") && *p != std::path::Path::new("/dev/stdout"));
    let Some(path) = out_file else {
        return run_in_precision(args, stdout, terminal);
    };
    crate::refuse_output_over_inputs(
        ("--out", path),
        &args.model,
        &[("--vectors", &args.vectors), ("--input", &args.input)],
        &args.limits.limits(),
    )?;
    // The output streams into a temporary file that only a run that
    // succeeds puts in place; a failure drops (removes) it.
    let mut file = AtomicFile::create(path)?;
    run_in_precision(args, &mut file, terminal).map_err(|e| match e {
        CliError::Output(source) => lrp_io::Error::Write {
            path: path.to_path_buf(),
            source,
        }
        .into(),
        other => other,
    })?;
    file.commit()?;
    Ok(())
}

fn run_in_precision(args: &ExplainArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    match args.precision {
        Precision::F64 => run_in::<f64>(args, out, terminal),
        Precision::F32 => run_in::<f32>(args, out, terminal),
    }
}

/// Explains the inputs a window at a time: read a window (up to
/// [`WINDOW_INPUTS`] inputs or [`WINDOW_VALUES`] values), explain it on
/// all cores, write its reports in input order, drop them, go on. Memory
/// is bounded by the window, not the input. A window is written only when
/// all of it is explained, so the first failure (in reading a window, else
/// the first input of the window, in input order, whose explanation fails)
/// stops the run with nothing of its window written.
fn run_in<T: Float>(args: &ExplainArgs, out: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    let limits = args.limits.limits();
    match &args.model {
        Some(dir) if lrp_io::is_seq2seq(dir, &limits) => return crate::seq2seq::run_in::<T>(args, out),
        _ if args.output_text.is_some() => {
            return Err(CliError::Usage(
                "--output-text needs a seq2seq model (docs/seq2seq.md)".into(),
            ))
        }
        _ => {}
    }
    let dir: ModelDir<T> = default_model::load(&args.model, &limits)?;
    check_rules(&args.rules, &dir.model.sites())?;
    let rules = composite::<T>(&args.rules)?;
    let method = args.method.method(&rules, args.steps);
    if args.position.is_some() && !dir.model.is_per_step() {
        return Err(lrp_models::Error::NotPerStep.into());
    }
    method.validate()?;
    // What explaining an input of a length costs, checked for each input
    // as it is read, before anything runs.
    let cost_of = |len: usize| dir.model.cost(method, len);
    let mut inputs = Inputs::open(args, &dir, &cost_of)?;
    let progress = inputs.progress_bar(terminal);
    let text_input = args.sentence.is_some() || args.text.is_some();
    let format = match args.format {
        ExplainFormat::Auto if text_input && terminal.stdout && args.out.is_none() => ExplainFormat::Text,
        ExplainFormat::Auto => ExplainFormat::Json,
        other => other,
    };
    let colour = if args.out.is_none() {
        terminal.colour
    } else {
        Colour::None
    };
    let mut output = Output {
        out: std::io::BufWriter::with_capacity(1 << 16, out),
        format,
        colour,
        labels: dir.model.config().and_then(|config| config.labels.as_deref()),
        regression: is_regression(&dir.model),
        written: 0,
        started: false,
    };
    let window_inputs = args.window.map_or(WINDOW_INPUTS, |n| n as usize);
    // A window's positions, at most: its input values within
    // WINDOW_VALUES, and what explaining them needs within the memory
    // limit.
    let by_values = WINDOW_VALUES / dir.model.input_size().max(1);
    let by_memory = limits.max_memory_bytes / cost_of(1).bytes.max(1);
    let window_positions = by_values.min(usize::try_from(by_memory).unwrap_or(usize::MAX));
    loop {
        let window = inputs.window(window_inputs, window_positions)?;
        if window.is_empty() {
            break;
        }
        let options = ReportOptions {
            target: args.target,
            position: args.position,
            per_dimension: args.per_dimension,
            several: inputs.several,
        };
        let reports = explain_window(&dir.model, &window, method, options, &|n| progress.inc(n))?;
        output.window(&reports, &window)?;
    }
    progress.finish_and_clear();
    output.finish()
}

/// Explains a batch of inputs on the current rayon pool's cores, as `lrp
/// explain` explains each window of its input: sorted by length, in
/// chunks of similar length (at most 64), each chunk one packed batch (one
/// matrix product per step and direction for all its sequences, forward and
/// backward). Returns the reports in input order, or the first failure in
/// that order.
pub fn explain_batch<'w, T: Float>(
    model: &Model<T>,
    inputs: &'w [ExplainInput],
    method: Method<'_, T>,
    options: ReportOptions,
) -> Result<Vec<Report<'w>>, CliError> {
    explain_window(model, inputs, method, options, &|_| {})
}

/// The class scores of a batch of inputs, in input order, computed as
/// [`explain_batch`] runs them (sorted by length, packed batches of at
/// most 64 on all cores); or the first failure in input order.
pub fn scores_batch<T: Float>(model: &Model<T>, inputs: &[ExplainInput]) -> Result<Vec<Vec<f64>>, CliError> {
    in_chunks(model, inputs, |traced| {
        traced
            .into_iter()
            .map(|(k, trace)| {
                let scores = trace.map(|t| t.scores().iter().map(|v| v.as_f64()).collect());
                (k, scores.map_err(CliError::from))
            })
            .collect()
    })
    .into_iter()
    .collect()
}

/// One input's forward pass, by its index in the batch.
type Traced<T> = (usize, Result<ForwardTrace<T>, lrp_models::Error>);

/// Runs a batch through the model as `lrp explain` runs a window: sorted
/// by length, in chunks of similar length on all cores, each chunk's
/// inputs one packed forward batch. `each` turns a chunk's traces (an
/// input that cannot be embedded keeps its error) into one result per
/// input; the results come back in input order.
///
/// The chunks hold at most 64: products wide enough to pay, traces small
/// enough (about 15 MB for SST sentences) for the free lists to keep, and
/// several chunks per core.
fn in_chunks<T: Float, R: Send>(
    model: &Model<T>,
    inputs: &[ExplainInput],
    each: impl Fn(Vec<Traced<T>>) -> Vec<(usize, R)> + Sync,
) -> Vec<R> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&k| inputs[k].len());
    let chunk = inputs.len().div_ceil(4 * rayon::current_num_threads()).clamp(1, 64);
    let done: Vec<Vec<(usize, R)>> = order
        .par_chunks(chunk)
        .map(|members| {
            let mut ready = Vec::with_capacity(members.len());
            let mut failed = Vec::with_capacity(members.len());
            for &k in members {
                match inputs[k].input(model) {
                    Ok(x) => {
                        ready.push(x);
                        failed.push(None);
                    }
                    Err(e) => failed.push(Some(e)),
                }
            }
            let mut traces = model.forward_batch(ready).into_iter();
            let traced = members
                .iter()
                .zip(failed)
                .map(|(&k, failure)| match failure {
                    Some(e) => (k, Err(e)),
                    None => (k, traces.next().expect("one trace per embedded input")),
                })
                .collect();
            each(traced)
        })
        .collect();
    let mut results: Vec<Option<R>> = inputs.iter().map(|_| None).collect();
    for (k, result) in done.into_iter().flatten() {
        results[k] = Some(result);
    }
    results
        .into_iter()
        .map(|r| r.expect("every input of the batch run"))
        .collect()
}

/// [`explain_batch`], telling `progress` what each chunk done advanced the
/// progress bar by.
/// Whether the model's head is a regression (a model built in code,
/// without a configuration, is read as a classifier).
pub(crate) fn is_regression<T: Float>(model: &Model<T>) -> bool {
    model
        .config()
        .is_some_and(|config| config.head.task == Task::Regression)
}

fn explain_window<'w, T: Float>(
    model: &Model<T>,
    window: &'w [ExplainInput],
    method: Method<'_, T>,
    options: ReportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Report<'w>>, CliError> {
    let regression = is_regression(model);
    in_chunks(model, window, |traced| {
        // A per-step head's traces look at the asked-for position.
        let traced: Vec<Traced<T>> = traced
            .into_iter()
            .map(|(k, trace)| match (trace, options.position) {
                (Ok(trace), Some(t)) => (k, trace.at_position(t)),
                (other, _) => (k, other),
            })
            .collect();
        // Failed inputs keep their error; the others are explained
        // together, one backward pass for the chunk.
        let requests: Vec<(&ForwardTrace<T>, usize)> = traced
            .iter()
            .filter_map(|(_, t)| t.as_ref().ok())
            .map(|t| (t, default_target(options, t, regression)))
            .collect();
        let mut found = model.attribute_batch(&requests, method).into_iter();
        let explained: Vec<(usize, Result<Report<'w>, CliError>)> = traced
            .into_iter()
            .map(|(k, trace)| {
                let found = match &trace {
                    Ok(_) => found.next().expect("one attribution per trace"),
                    Err(e) => Err(e.clone()),
                };
                (k, explain_one(&window[k], trace, found, method, options, regression))
            })
            .collect();
        progress(explained.iter().map(|(k, _)| window[*k].progress).sum());
        explained
    })
    .into_iter()
    .collect()
}

/// Where the reports go, in the chosen format: JSON Lines, text views
/// separated by blank lines, or one HTML page whose sections stream
/// between its header and its footer.
struct Output<'a> {
    out: std::io::BufWriter<&'a mut dyn Write>,
    format: ExplainFormat,
    colour: Colour,
    labels: Option<&'a [String]>,
    /// Whether the outputs are a regression's.
    regression: bool,
    /// Reports written so far.
    written: usize,
    /// Whether anything (the HTML header) is written: only once the first
    /// window is explained, so that a failure there leaves no output.
    started: bool,
}

impl Output<'_> {
    /// Writes a window's reports and flushes them, so that a reader sees
    /// each window as soon as it is done.
    fn window(&mut self, reports: &[Report<'_>], items: &[ExplainInput]) -> Result<(), CliError> {
        self.start()?;
        if !matches!(self.format, ExplainFormat::Text | ExplainFormat::Html) {
            // JSON Lines are rendered on all cores and written in order.
            let lines: Vec<String> = reports
                .par_iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()
                .map_err(std::io::Error::from)?;
            for line in lines {
                self.out.write_all(line.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            self.written += reports.len();
            self.out.flush()?;
            return Ok(());
        }
        for (report, item) in reports.iter().zip(items) {
            let display = display(item);
            let mut view = view(report, item, &display, self.labels);
            view.regression = self.regression;
            if self.format == ExplainFormat::Html {
                self.out.write_all(view.html_section().as_bytes())?;
            } else {
                if self.written > 0 {
                    self.out.write_all(b"\n")?;
                }
                self.out.write_all(view.terminal(self.colour).as_bytes())?;
            }
            self.written += 1;
        }
        self.out.flush()?;
        Ok(())
    }

    fn start(&mut self) -> Result<(), CliError> {
        if !self.started && self.format == ExplainFormat::Html {
            self.out.write_all(html_header().as_bytes())?;
        }
        self.started = true;
        Ok(())
    }

    fn finish(mut self) -> Result<(), CliError> {
        self.start()?;
        if self.format == ExplainFormat::Html {
            self.out.write_all(html_footer().as_bytes())?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// The inputs of a run, read a window at a time, each refused when
/// explaining it would cost more than the limits allow.
struct Inputs<'m> {
    source: Source<'m>,
    /// Several inputs (an npz archive): reports and errors name their array.
    several: bool,
    /// The limits on what explaining one input may cost.
    limits: lrp_io::Limits,
    /// What explaining an input of a length costs.
    cost_of: &'m dyn Fn(usize) -> lrp_models::Cost,
    /// The file read (`--input`, `--vectors`), for messages.
    path: std::path::PathBuf,
}

enum Source<'m> {
    /// `TEXT` or `--text`: one item.
    One(Option<ExplainInput>),
    /// `--input`: the lines of a file or standard input.
    Lines {
        lines: TextLines<Box<dyn std::io::BufRead + Send>>,
        vocab: &'m Vocab,
    },
    /// `--vectors`: the arrays of an npy or npz file.
    Arrays(Sequences),
}

impl<'m> Inputs<'m> {
    fn open<T: Float>(
        args: &ExplainArgs,
        dir: &'m ModelDir<T>,
        cost_of: &'m dyn Fn(usize) -> lrp_models::Cost,
    ) -> Result<Self, CliError> {
        let limits = args.limits.limits();
        // What is read a piece at a time has no limit on its size in all
        // unless one is given.
        let streamed = args.limits.streaming_limits();
        if let Some(path) = &args.vectors {
            let arrays = open_sequences(path, &streamed)?;
            let several = arrays.remaining() > 1 || path.extension().is_some_and(|e| e == "npz");
            return Ok(Self {
                source: Source::Arrays(arrays),
                several,
                limits,
                cost_of,
                path: path.clone(),
            });
        }
        let source = match (&args.sentence, &args.text, &args.input) {
            (Some(text), _, _) | (None, Some(text), _) => {
                let tokens = tokenize_within("TEXT", text, &limits)?;
                Source::One(Some(text_item(dir.vocab()?, None, tokens, 1)?))
            }
            // `-` is standard input, as for most Unix tools.
            (None, None, Some(path)) => Source::Lines {
                lines: read_text_lines(path, &streamed)?,
                vocab: dir.vocab()?,
            },
            (None, None, None) => {
                return Err(CliError::Usage(
                    "give a TEXT, --text TEXT, --input FILE or --vectors FILE".into(),
                ))
            }
        };
        Ok(Self {
            source,
            several: false,
            limits,
            cost_of,
            path: args.input.clone().unwrap_or_else(|| "TEXT".into()),
        })
    }

    /// The next inputs, up to `inputs` of them and `positions` positions
    /// in all (at least one input while any are left); none at the end.
    fn window(&mut self, inputs: usize, positions: usize) -> Result<Vec<ExplainInput>, CliError> {
        let mut window = Vec::new();
        let mut held = 0usize;
        while window.len() < inputs.max(1) && (window.is_empty() || held < positions) {
            let Some(item) = self.next_item()? else {
                break;
            };
            held = held.saturating_add(item.len());
            window.push(item);
        }
        Ok(window)
    }

    /// The next input, refused when explaining it would cost more than
    /// the limits allow.
    fn next_item(&mut self) -> Result<Option<ExplainInput>, CliError> {
        let Some(item) = self.read_item()? else {
            return Ok(None);
        };
        let path = self.path.display();
        let what = match (&item.line, &item.name) {
            (Some(line), _) => format!("{path} line {line}"),
            (None, Some(name)) if self.several => format!("{path}, array {name}"),
            _ => path.to_string(),
        };
        self.limits.check_cost(&what, (self.cost_of)(item.len()))?;
        Ok(Some(item))
    }

    fn read_item(&mut self) -> Result<Option<ExplainInput>, CliError> {
        match &mut self.source {
            Source::One(item) => Ok(item.take()),
            Source::Lines { lines, vocab } => {
                let before = lines.bytes_read();
                let Some(line) = lines.next() else {
                    return Ok(None);
                };
                let (number, tokens) = line?;
                // Bytes for a file's bar, lines for standard input's count.
                let progress = match lines.length() {
                    Some(_) => lines.bytes_read() - before,
                    None => 1,
                };
                Ok(Some(text_item(vocab, Some(number), tokens, progress)?))
            }
            Source::Arrays(arrays) => {
                let Some(sequence) = arrays.next() else {
                    return Ok(None);
                };
                let sequence = sequence?;
                Ok(Some(ExplainInput::vectors(Some(sequence.name), sequence.vectors)))
            }
        }
    }

    /// A progress bar on a terminal's stderr for inputs of many items: the
    /// share of a file's bytes or an archive's arrays done, or a count of
    /// lines from standard input (hidden elsewhere).
    fn progress_bar(&self, terminal: Terminal) -> ProgressBar {
        if !terminal.stderr {
            return ProgressBar::hidden();
        }
        let styled = |bar: ProgressBar, template: &str| match ProgressStyle::with_template(template) {
            Ok(style) => bar.with_style(style),
            Err(_) => bar,
        };
        match &self.source {
            Source::Arrays(arrays) if arrays.remaining() > 1 => ProgressBar::new(arrays.remaining() as u64),
            Source::Lines { lines, .. } => match lines.length() {
                Some(length) => styled(ProgressBar::new(length), "{wide_bar} {percent}%"),
                None => styled(ProgressBar::new_spinner(), "{spinner} {pos} lines explained"),
            },
            _ => ProgressBar::hidden(),
        }
    }
}

/// An item of text input: its words looked up in the vocabulary.
fn text_item(vocab: &Vocab, line: Option<usize>, tokens: Vec<String>, progress: u64) -> Result<ExplainInput, CliError> {
    let (ids, unknown) = vocab.lookup(&tokens)?;
    Ok(ExplainInput {
        name: None,
        line,
        tokens: Some(tokens),
        unknown: Some(unknown),
        input: Input::Ids(ids),
        progress,
    })
}

/// What a human view shows per position: the words, or `#t` for vectors.
fn display(item: &ExplainInput) -> Cow<'_, [String]> {
    match &item.tokens {
        Some(tokens) => Cow::Borrowed(tokens),
        None => Cow::Owned((0..item.len()).map(|t| format!("#{t}")).collect()),
    }
}

/// The human view of a report; vector inputs show positions as `#t`.
fn view<'a>(
    report: &'a Report<'_>,
    item: &'a ExplainInput,
    display: &'a [String],
    labels: Option<&'a [String]>,
) -> View<'a> {
    View {
        tokens: display,
        unknown: item.unknown.as_deref().unwrap_or_default(),
        relevance: &report.token_relevance,
        scores: &report.scores,
        predicted: report.predicted,
        target: report.target,
        labels,
        method: report.method,
        position: report.position,
        regression: false,
    }
}

/// The output to explain: `--target`, else the predicted class, else (a
/// regression head, whose largest output means nothing) output 0.
fn default_target<T: Float>(options: ReportOptions, trace: &ForwardTrace<T>, regression: bool) -> usize {
    match options.target {
        Some(k) => k,
        None if regression => 0,
        None => trace.predicted(),
    }
}

/// Attributes the target score of one item, given its forward pass.
fn explain_one<'a, T: Float>(
    item: &'a ExplainInput,
    trace: Result<ForwardTrace<T>, lrp_models::Error>,
    found: Result<lrp_models::Attribution<T>, lrp_models::Error>,
    method: Method<'_, T>,
    options: ReportOptions,
    regression: bool,
) -> Result<Report<'a>, CliError> {
    let in_item = |e: lrp_models::Error| match &item.name {
        Some(name) if options.several => CliError::Item {
            name: name.clone(),
            source: e,
        },
        _ => CliError::Model(e),
    };
    let trace = trace.map_err(in_item)?;
    let target = default_target(options, &trace, regression);
    let found = found.map_err(in_item)?;
    let to_f64 = |v: &[T]| v.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    Ok(Report {
        line: item.line,
        name: if options.several { item.name.as_deref() } else { None },
        scores: to_f64(trace.scores().as_slice()),
        predicted: trace.predicted(),
        target,
        position: trace.position(),
        method: method.name(),
        token_relevance: to_f64(&found.per_position),
        initial_state_relevance: found.initial_state_relevance.map(|v| v.as_f64()),
        unexplained_relevance: found.unexplained_relevance.map(|v| v.as_f64()),
        input_relevance: if options.per_dimension {
            found.per_dimension.map(|m| {
                m.column_iter()
                    .map(|c| c.iter().map(|v| v.as_f64()).collect())
                    .collect()
            })
        } else {
            None
        },
        attention: trace.attention_weights().map(to_f64),
        tokens: item.tokens.as_deref(),
        unknown: item.unknown.as_deref(),
    })
}

/// The LRP rules the flags ask for: a preset, or one rule everywhere, plus
/// the gate rule, refined by the rules by site of `--rules`.
pub fn composite<T: Float>(args: &RuleArgs) -> Result<Composite<T>, CliError> {
    let p = RuleParameters {
        eps: args.eps,
        bias_factor: args.bias_factor,
        gamma: args.gamma,
        alpha: args.alpha,
        prop_eps: args.prop_eps,
    };
    let rules = match &args.rule {
        Some(name) => Composite::with_every_rule(name, &p)?,
        None => Composite::preset(&args.composite, &p)?,
    };
    let rules = rules.with_boxed_gate_rule(gate_rule(&args.gate_rule, &p)?);
    Ok(match &args.rules {
        Some(spec) => rules.with_rules(spec, &p)?,
        None => rules,
    })
}

/// Refuses a `--rules` entry that can never apply to a model with these
/// `sites` (`Model::sites`, `Seq2Seq::sites`): one that selects none of
/// them, or whose sites earlier entries all take (see `RuleSpec::check`).
pub fn check_rules(args: &RuleArgs, sites: &[Site]) -> Result<(), CliError> {
    if let Some(spec) = &args.rules {
        RuleSpec::parse(spec)?.check(sites)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded_by_inputs_and_by_positions() {
        let vocab = Vocab::parse("<unk>\na\nfilm\n", Some("<unk>"), true).unwrap();
        let text = "a film a\n\na a a\nfilm film film\na\nfilm a\n";
        let reader: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(text));
        let free = |_| lrp_models::Cost { work: 0, bytes: 0 };
        let mut inputs = Inputs {
            source: Source::Lines {
                lines: TextLines::new("t".as_ref(), reader, &lrp_io::Limits::default()),
                vocab: &vocab,
            },
            several: false,
            limits: lrp_io::Limits::default(),
            cost_of: &free,
            path: "t".into(),
        };
        let mut sizes = Vec::new();
        loop {
            // At most 3 inputs, and no more once 5 positions are held.
            let window = inputs.window(3, 5).unwrap();
            if window.is_empty() {
                break;
            }
            sizes.push(
                window
                    .iter()
                    .map(|item| (item.line.unwrap(), item.len()))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            sizes,
            [vec![(1, 3), (3, 3)], vec![(4, 3), (5, 1), (6, 2)]],
            "a window closes at 3 inputs or at 5 positions"
        );
        // One input longer than the bound still makes a window.
        let reader: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new("a a a a a a a\n"));
        inputs.source = Source::Lines {
            lines: TextLines::new("t".as_ref(), reader, &lrp_io::Limits::default()),
            vocab: &vocab,
        };
        assert_eq!(inputs.window(3, 5).unwrap().len(), 1);
    }
}
