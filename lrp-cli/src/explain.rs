//! `lrp explain`.

use std::borrow::Cow;
use std::io::Write;

use indicatif::ProgressBar;
use lrp_app::{explain_batch_with_progress, load_model, ExplainInput, Report, ReportOptions};
use lrp_core::Float;
use lrp_io::{
    open_csv, open_sequences, read_text_lines, tokenize_within, AtomicFile, CsvSeries, ModelDir, Sequences, TextLines,
    Vocab,
};
use rayon::prelude::*;

use crate::progress::{progress, Unit};
use crate::render::{html_footer, html_header, series_html_header, SeriesView, View};
use crate::{CliError, Colour, ExplainArgs, ExplainFormat, Precision, Terminal};

/// Inputs explained together, at most: enough for every core to get many
/// chunks of equal length, few enough that a window of reports is a few
/// megabytes whatever the size of the input.
const WINDOW_INPUTS: usize = 4096;

/// Input values (`T x E`) of a window, at most (32 MB of f64; one longer
/// sequence still makes a window of its own).
const WINDOW_VALUES: usize = 1 << 22;

pub(crate) fn run(args: &ExplainArgs, stdout: &mut dyn Write, terminal: Terminal) -> Result<(), CliError> {
    if let Some(plot) = &args.plot {
        crate::refuse_output_over_inputs(
            ("--plot", plot),
            &args.model,
            &[("--vectors", &args.vectors)],
            &args.limits.limits(),
        )?;
    }
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
        Some(dir) if lrp_io::is_seq2seq(dir, &limits) => return crate::seq2seq::run_in::<T>(args, out, terminal),
        _ if args.output_text.is_some() => {
            return Err(CliError::Usage(
                "--output-text needs a seq2seq model (docs/seq2seq.md)".into(),
            ))
        }
        _ => {}
    }
    let dir: ModelDir<T> = load_model(args.model.as_deref(), &limits)?;
    let rules = args.rules.options().composite_for::<T>(&dir.model.sites())?;
    let method =
        lrp_app::MethodName::from(args.method).checked_method(&dir.model, &rules, args.steps, args.position)?;
    // What explaining an input of a length costs, checked for each input
    // as it is read, before anything runs.
    let cost_of = |len: usize| dir.model.cost(method, len);
    let mut inputs = Inputs::open(args, &dir, &cost_of)?;
    if args.plot.is_some() && inputs.several {
        return Err(CliError::Usage(
            "--plot draws one input, and this one holds several (an npz archive, or --series-column): \
             draw them all with --format html"
                .into(),
        ));
    }
    let progress = inputs.progress_bar(terminal);
    // Text, and time series from CSV, are shown as text on a terminal.
    let text_input =
        args.sentence.is_some() || args.text.is_some() || args.ids.is_some() || inputs.channels().is_some();
    let (format, colour) = format_and_colour(args, terminal, text_input);
    let channels = inputs.channels().map(<[String]>::to_vec);
    let values_of = |item: &ExplainInput| item.input(&dir.model).map(|x| x.map(|v| v.as_f64()));
    let mut output = Output {
        values_of: &values_of,
        vectors: inputs.vectors(),
        out: std::io::BufWriter::with_capacity(1 << 16, out),
        channels: channels.as_deref(),
        indices: (0..dir.model.input_size()).map(|e| e.to_string()).collect(),
        format,
        colour,
        labels: dir.model.config().and_then(|config| config.labels.as_deref()),
        regression: lrp_app::is_regression(&dir.model),
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
            // The text view of vectors shows each channel's relevance.
            per_dimension: args.per_dimension
                || args.plot.is_some()
                || (matches!(format, ExplainFormat::Text | ExplainFormat::Html) && inputs.vectors()),
            several: inputs.several,
        };
        let mut reports = explain_batch_with_progress(&dir.model, &window, method, options, &|n| progress.inc(n))?;
        if let (Some(path), Some(report), Some(item)) = (&args.plot, reports.first(), window.first()) {
            let series = output.series_view(report, item, inputs.times.first().and_then(Option::as_deref));
            lrp_io::write_atomically(path, series.svg(&values_of(item)?).as_bytes())?;
            // The relevance per channel was for the figure: JSON has it
            // only when asked for.
            if output.format == ExplainFormat::Json && !args.per_dimension {
                reports.iter_mut().for_each(|r| r.input_relevance = None);
            }
        }
        // The bar steps aside while a window is written (stdout may be
        // the same terminal).
        progress.suspend(|| output.window(&reports, &window, &inputs.times))?;
    }
    progress.finish_and_clear();
    output.finish()
}

/// The format `--format` chooses (`auto`: the text view for `text_input`
/// shown on a terminal, else JSON), and the colours of the text view (none
/// in a file).
pub(crate) fn format_and_colour(args: &ExplainArgs, terminal: Terminal, text_input: bool) -> (ExplainFormat, Colour) {
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
    (format, colour)
}

/// Where the reports go, in the chosen format: JSON Lines, text views
/// separated by blank lines, or one HTML page whose sections stream
/// between its header and its footer.
struct Output<'a> {
    out: std::io::BufWriter<&'a mut dyn Write>,
    /// The channels' names, for a CSV input: a key of each JSON report.
    channels: Option<&'a [String]>,
    /// The input dimensions' indices, which name the channels of other
    /// vector inputs in the text view.
    indices: Vec<String>,
    /// Whether the inputs are vectors (`--vectors`): the HTML page is a
    /// time-series page.
    vectors: bool,
    /// A vector input's values `[E, T]`, which the HTML page draws.
    values_of: &'a dyn Fn(&ExplainInput) -> Result<nalgebra::DMatrix<f64>, lrp_models::Error>,
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
    fn window(
        &mut self,
        reports: &[Report<'_>],
        items: &[ExplainInput],
        times: &[Option<Vec<f64>>],
    ) -> Result<(), CliError> {
        self.start()?;
        if !matches!(self.format, ExplainFormat::Text | ExplainFormat::Html) {
            // JSON Lines are rendered on all cores and written in order.
            let channels = self.channels;
            let lines: Vec<String> = reports
                .par_iter()
                .enumerate()
                .map(|(k, report)| match channels {
                    Some(channels) => serde_json::to_string(&SeriesReport {
                        report,
                        channels,
                        time: times.get(k).and_then(Option::as_deref),
                    })
                    .map_err(|e| CliError::Output(e.into())),
                    None => report.json_line(),
                })
                .collect::<Result<_, _>>()?;
            for line in lines {
                self.out.write_all(line.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            self.written += reports.len();
            self.out.flush()?;
            return Ok(());
        }
        for (k, (report, item)) in reports.iter().zip(items).enumerate() {
            let display = display(item);
            let mut view = view(report, item, &display, self.labels);
            view.regression = self.regression;
            let html = self.format == ExplainFormat::Html;
            // Vectors are shown as time series: channels, not positions.
            let shown = if item.tokens().is_none() {
                let series = self.series_view(report, item, times.get(k).and_then(Option::as_deref));
                if html {
                    series.html_section(&(self.values_of)(item)?)
                } else {
                    series.terminal(self.colour)
                }
            } else if html {
                view.html_section()
            } else {
                view.terminal(self.colour)
            };
            if !html && self.written > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(shown.as_bytes())?;
            self.written += 1;
        }
        self.out.flush()?;
        Ok(())
    }

    /// The view of a vector input as a time series.
    fn series_view<'v>(
        &'v self,
        report: &'v Report<'_>,
        item: &'v ExplainInput,
        time: Option<&'v [f64]>,
    ) -> SeriesView<'v> {
        let mut view = view(report, item, &[], self.labels);
        view.regression = self.regression;
        SeriesView {
            view,
            name: report.name,
            channels: self.channels.unwrap_or(&self.indices),
            time,
            cells: report.input_relevance.as_deref(),
        }
    }

    fn start(&mut self) -> Result<(), CliError> {
        if !self.started && self.format == ExplainFormat::Html {
            // Vector inputs get the time-series page's legend.
            let header = if self.vectors {
                series_html_header()
            } else {
                html_header()
            };
            self.out.write_all(header.as_bytes())?;
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

/// The report of a CSV series: the report's keys, then the channels'
/// names and the time column's values (docs/cli.md).
#[derive(serde::Serialize)]
struct SeriesReport<'a> {
    #[serde(flatten)]
    report: &'a Report<'a>,
    /// The channels' names `[C]`, in the order of the input's dimensions.
    channels: &'a [String],
    /// The time column's values `[T]`, when `--time-column` names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a [f64]>,
}

/// Opens a CSV file of time series ([`open_csv`]; `columns` names the
/// time, series and label columns) for a model that reads vectors of
/// `input_size` dimensions: refused, in one line naming the header, when
/// the file has another number of channels.
pub(crate) fn open_csv_for(
    path: &std::path::Path,
    [time, series, label]: [Option<&str>; 3],
    input_size: usize,
    limits: &lrp_io::Limits,
) -> Result<CsvSeries, CliError> {
    let opened = open_csv(path, time, series, label, limits)?;
    let channels = opened.channels().len();
    if channels != input_size {
        return Err(lrp_io::Error::Csv {
            path: path.to_path_buf(),
            line: opened.header_line(),
            column: None,
            message: format!(
                "{channels} channel columns ({}), but the model reads vectors of {input_size} dimensions",
                opened.channels().join(", ")
            ),
        }
        .into());
    }
    Ok(opened)
}

/// The token ids of `--ids` (`3,17,5`; spaces allowed), within the limits
/// of one line of text (its bytes, and at most `max_tokens` ids).
fn parse_ids(ids: &str, limits: &lrp_io::Limits) -> Result<Vec<usize>, CliError> {
    let spaced = ids.replace(',', " ");
    let words = lrp_io::split_within("--ids", &spaced, limits)?;
    if words.is_empty() {
        return Err(CliError::Usage("--ids needs at least one token id".into()));
    }
    words
        .iter()
        .map(|word| {
            word.parse::<usize>().map_err(|_| {
                CliError::Usage(format!(
                    "--ids: {} is not a token id (a whole number >= 0)",
                    lrp_io::printable(word, 40)
                ))
            })
        })
        .collect()
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
    /// What one of several inputs is called in messages: `array`, `series`.
    item_kind: &'static str,
    /// The time column's values of each input of the current window (for
    /// a CSV series with a time column; else `None`).
    times: Vec<Option<Vec<f64>>>,
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
    /// `--vectors FILE.csv`: the series of a CSV file (boxed: the reader
    /// with its buffer is the largest source by far).
    Csv(Box<CsvSeries>),
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
        let is_csv = |path: &std::path::Path| path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if let Some(path) = args.vectors.as_deref().filter(|p| is_csv(p)) {
            let series = open_csv_for(
                path,
                [
                    args.time_column.as_deref(),
                    args.series_column.as_deref(),
                    args.label_column.as_deref(),
                ],
                dir.model.input_size(),
                &streamed,
            )?;
            return Ok(Self {
                source: Source::Csv(Box::new(series)),
                several: args.series_column.is_some(),
                limits,
                cost_of,
                path: path.to_path_buf(),
                item_kind: "series",
                times: Vec::new(),
            });
        }
        if args.time_column.is_some() || args.series_column.is_some() || args.label_column.is_some() {
            return Err(CliError::Usage(
                "--time-column, --series-column and --label-column read a CSV file: give --vectors FILE.csv".into(),
            ));
        }
        if let Some(path) = &args.vectors {
            let arrays = open_sequences(path, &streamed)?;
            let several = arrays.remaining() > 1 || path.extension().is_some_and(|e| e == "npz");
            return Ok(Self {
                source: Source::Arrays(arrays),
                several,
                limits,
                cost_of,
                path: path.clone(),
                item_kind: "array",
                times: Vec::new(),
            });
        }
        if let Some(ids) = &args.ids {
            return Ok(Self {
                source: Source::One(Some(ExplainInput::ids(parse_ids(ids, &limits)?))),
                several: false,
                limits,
                cost_of,
                path: "--ids".into(),
                item_kind: "array",
                times: Vec::new(),
            });
        }
        let source = match (&args.sentence, &args.text, &args.input) {
            // A Hugging Face directory's own tokenizer, else lrp's words.
            (Some(text), _, _) | (None, Some(text), _) => match &dir.tokenizer {
                Some(tokenizer) => {
                    let (ids, tokens) = tokenizer.encode_within("TEXT", text, &limits)?;
                    Source::One(Some(ExplainInput::tokenized(ids, tokens)))
                }
                None => {
                    let tokens = tokenize_within("TEXT", text, &limits)?;
                    Source::One(Some(ExplainInput::words(dir.vocab()?, tokens)?))
                }
            },
            // `-` is standard input, as for most Unix tools.
            (None, None, Some(path)) => Source::Lines {
                lines: read_text_lines(path, &streamed)?,
                vocab: dir.vocab()?,
            },
            (None, None, None) => {
                return Err(CliError::Usage(
                    "give a TEXT, --text TEXT, --input FILE, --vectors FILE or --ids IDS".into(),
                ))
            }
        };
        Ok(Self {
            source,
            several: false,
            limits,
            cost_of,
            path: args.input.clone().unwrap_or_else(|| "TEXT".into()),
            item_kind: "array",
            times: Vec::new(),
        })
    }

    /// Whether the inputs are vectors (`--vectors`).
    fn vectors(&self) -> bool {
        matches!(self.source, Source::Arrays(_) | Source::Csv(_))
    }

    /// The channels' names, for a CSV input.
    fn channels(&self) -> Option<&[String]> {
        match &self.source {
            Source::Csv(series) => Some(series.channels()),
            _ => None,
        }
    }

    /// The next inputs, up to `inputs` of them and `positions` positions
    /// in all (at least one input while any are left); none at the end.
    fn window(&mut self, inputs: usize, positions: usize) -> Result<Vec<ExplainInput>, CliError> {
        let mut window = Vec::new();
        self.times.clear();
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
        let what = match (item.line(), item.name()) {
            (Some(line), _) => format!("{path} line {line}"),
            (None, Some(name)) if self.several => format!("{path}, {} {name}", self.item_kind),
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
                Ok(Some(
                    ExplainInput::words(vocab, tokens)?
                        .with_line(number)
                        .with_progress(progress),
                ))
            }
            Source::Arrays(arrays) => {
                let Some(sequence) = arrays.next() else {
                    return Ok(None);
                };
                let sequence = sequence?;
                self.times.push(None);
                Ok(Some(ExplainInput::vectors(Some(sequence.name), sequence.vectors)))
            }
            Source::Csv(all) => {
                let before = all.bytes_read();
                let Some(series) = all.next() else {
                    return Ok(None);
                };
                let series = series?;
                self.times.push(series.time);
                Ok(Some(
                    ExplainInput::vectors(series.name, series.vectors).with_progress(all.bytes_read() - before),
                ))
            }
        }
    }

    /// Progress on a terminal's stderr for inputs of many items: the
    /// share of a file's bytes or an archive's arrays done, or a count of
    /// lines from standard input (hidden for one input).
    fn progress_bar(&self, terminal: Terminal) -> ProgressBar {
        match &self.source {
            Source::Arrays(arrays) if arrays.remaining() > 1 => progress(
                terminal,
                "explain",
                Some(arrays.remaining() as u64),
                Unit::Items("arrays"),
            ),
            Source::Csv(series) => progress(terminal, "explain", Some(series.length()), Unit::Bytes),
            Source::Lines { lines, .. } => match lines.length() {
                Some(length) => progress(terminal, "explain", Some(length), Unit::Bytes),
                None => progress(terminal, "explain", None, Unit::Items("lines")),
            },
            _ => ProgressBar::hidden(),
        }
    }
}

/// What a human view shows per position: the words, or `#t` for vectors.
fn display(item: &ExplainInput) -> Cow<'_, [String]> {
    match item.tokens() {
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
        unknown: item.unknown().unwrap_or_default(),
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
            item_kind: "array",
            times: Vec::new(),
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
                    .map(|item| (item.line().unwrap(), item.len()))
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
