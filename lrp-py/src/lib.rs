//! The native half of the Python package `lrp_rnn` (distribution
//! `lrp-rnn`): the module `lrp_rnn._native`, which the pure-Python
//! `lrp_rnn` wraps with its argument handling, docstrings and type stubs.
//!
//! It adds no computation of its own: it calls `lrp-app`, the application
//! layer the `lrp` command calls too. A model is a model directory read by
//! `lrp-io` (or the built-in SST model, or tensors handed over from Python
//! through the buffer protocol, checked as a weights file is), and a batch
//! of inputs is explained by `lrp_app::explain_batch`, exactly as `lrp
//! explain` explains a window of its input: sorted by length, packed
//! batches of up to 64 on all cores of rayon's pool, with the GIL released.
//! Each explanation comes back as a dict built from `lrp_app::Report`, the
//! type whose serialisation is the CLI's JSON line, so that Python sees
//! the very numbers and keys the command prints (the numbers as floats,
//! never through text). Every failure is one exception whose message is
//! the CLI's one-line message: `OSError` for a file that cannot be read,
//! `ValueError` for everything else the caller can fix, `RuntimeError` for
//! a panic (a bug, caught, never unwound into Python).
//!
//! Ctrl-C interrupts a computation: it runs on a worker thread, in slices
//! of the batch (see [`in_slices`]), while the calling thread waits
//! without the GIL and, every [`SIGNAL_CHECK`], takes the GIL to run
//! Python's signal handlers. When one raises (`KeyboardInterrupt`), the
//! call returns that exception at once and the worker stops after its
//! current slice.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lrp_app::{
    class_index, error_line, explain_batch, internal_error, load_model, scores_batch, Choice, ExplainInput, MethodName,
    Precision, ReportOptions, RuleOptions,
};
use lrp_core::Float;
use lrp_io::{Limits, ModelDir};
use lrp_models::{ModelConfig, Tensor, Tensors};
use nalgebra::DMatrix;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};

/// Everything the module reports, each mapped to one Python exception.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// What `lrp` itself would report (files, models, rules, inputs).
    #[error(transparent)]
    App(#[from] lrp_app::Error),
    /// An argument of a Python call that has no CLI flag behind it.
    #[error("{0}")]
    Argument(String),
    /// A panic, caught (a bug): `lrp_app::internal_error`'s line.
    #[error("{0}")]
    Panic(String),
    /// The worker thread a computation runs on could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// The caller stopped waiting (Ctrl-C): the worker's result, which
    /// nobody receives.
    #[error("interrupted")]
    Interrupted,
}

impl From<lrp_io::Error> for Error {
    fn from(e: lrp_io::Error) -> Self {
        Error::App(e.into())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let line = error_line(&e);
        match e {
            Error::App(lrp_app::Error::Io(
                lrp_io::Error::Read { .. } | lrp_io::Error::NotRegularFile { .. } | lrp_io::Error::Write { .. },
            ))
            | Error::Thread(_) => PyOSError::new_err(line),
            Error::Panic(_) | Error::Interrupted => PyRuntimeError::new_err(line),
            _ => PyValueError::new_err(line),
        }
    }
}

/// A model in the precision it was loaded in.
enum Loaded {
    F64(ModelDir<f64>),
    F32(ModelDir<f32>),
}

/// A loaded model (see `lrp_rnn.Model`, which wraps it). Shared with the
/// worker thread of each computation, which may outlive an interrupted
/// call by one slice.
#[pyclass(frozen, module = "lrp_rnn._native", name = "NativeModel")]
struct NativeModel {
    loaded: Arc<Loaded>,
}

/// What `explain` does, as the flags of `lrp explain` say it.
struct Options {
    method: MethodName,
    rules: RuleOptions,
    steps: usize,
    report: ReportOptions,
    /// The cost limits (`max_work`, `max_memory`); the CLI's defaults.
    limits: Limits,
}

#[pymethods]
impl NativeModel {
    /// The model directory at `path`, or the built-in SST model for `None`,
    /// computing in `precision` (`"f64"` or `"f32"`).
    #[staticmethod]
    #[pyo3(signature = (path, precision))]
    fn load(py: Python<'_>, path: Option<PathBuf>, precision: &str) -> PyResult<Self> {
        let precision = Precision::parse("precision", precision).map_err(Error::from)?;
        let loaded = py.detach(|| {
            guarded(|| {
                let limits = Limits::default();
                Ok(match precision {
                    Precision::F32 => Loaded::F32(load_model(path.as_deref(), &limits)?),
                    _ => Loaded::F64(load_model(path.as_deref(), &limits)?),
                })
            })
        })?;
        Ok(Self {
            loaded: Arc::new(loaded),
        })
    }

    /// A model from a `config.json` text and its tensors (name, then an
    /// object with the buffer protocol holding float64), plus the text of
    /// its vocabulary, checked as a model directory is.
    #[staticmethod]
    #[pyo3(signature = (config, tensors, vocab, precision))]
    fn from_tensors(
        config: &str,
        tensors: Vec<(String, Bound<'_, PyAny>)>,
        vocab: Option<String>,
        precision: &str,
    ) -> PyResult<Self> {
        let precision = Precision::parse("precision", precision).map_err(Error::from)?;
        let here = Path::new("<from_torch>");
        let config: ModelConfig =
            lrp_io::parse_config(&here.join("config.json"), config.as_bytes()).map_err(Error::from)?;
        let mut named = Tensors::new();
        for (name, tensor) in tensors_from_buffers(&tensors)? {
            named.insert(name, tensor);
        }
        let vocab = vocab.as_deref().map(|v| (here.join("vocab.txt"), v.as_bytes()));
        let vocab = vocab.as_ref().map(|(p, b)| (p.as_path(), *b));
        let loaded = guarded(|| {
            Ok(match precision {
                Precision::F32 => Loaded::F32(lrp_io::model_from_tensors(here, config, named, vocab)?),
                _ => Loaded::F64(lrp_io::model_from_tensors(here, config, named, vocab)?),
            })
        })?;
        Ok(Self {
            loaded: Arc::new(loaded),
        })
    }

    /// The model's `config.json` as a dict, every key with its default
    /// filled in.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let config = match self.loaded.as_ref() {
            Loaded::F64(dir) => dir.model.config(),
            Loaded::F32(dir) => dir.model.config(),
        };
        // A model loaded from a directory always has its configuration.
        Ok(pythonize::pythonize(py, &config)?)
    }

    /// `"f64"` or `"f32"`.
    fn precision(&self) -> &'static str {
        match self.loaded.as_ref() {
            Loaded::F64(_) => "f64",
            Loaded::F32(_) => "f32",
        }
    }

    /// Explains each input (a `str`, or a float64 array `[T, E]` with the
    /// buffer protocol) and returns its explanation as a dict with the keys
    /// and numbers of the CLI's JSON line, in input order. `target` and
    /// `steps` are Python ints of any size (checked here, so that no
    /// `OverflowError` escapes), and so are `max_work` and `max_memory`
    /// (`None`: the CLI's defaults).
    #[pyo3(signature = (inputs, method, target, eps, bias_factor, composite, gate_rule, per_dimension, steps, max_work, max_memory))]
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        py: Python<'_>,
        inputs: Vec<Bound<'_, PyAny>>,
        method: &str,
        target: Option<Bound<'_, PyInt>>,
        eps: f64,
        bias_factor: f64,
        composite: String,
        gate_rule: String,
        per_dimension: bool,
        steps: Bound<'_, PyInt>,
        max_work: Option<Bound<'_, PyInt>>,
        max_memory: Option<Bound<'_, PyInt>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let mut limits = Limits::default();
        if let Some(n) = max_work {
            limits.max_work = cost_limit(&n, "max_work")?;
        }
        if let Some(n) = max_memory {
            limits.max_memory_bytes = cost_limit(&n, "max_memory")?;
        }
        let target = match target {
            // The CLI's parsing of `--target`, on the number's digits.
            Some(k) => Some(class_index(&k.to_string()).map_err(Error::Argument)?),
            None => None,
        };
        let options = Options {
            method: MethodName::parse("method", method).map_err(Error::from)?,
            rules: RuleOptions {
                eps,
                bias_factor,
                composite,
                gate_rule,
                ..RuleOptions::default()
            },
            steps: ig_steps(&steps)?,
            report: ReportOptions {
                target,
                per_dimension,
                several: false,
                position: None,
            },
            limits,
        };
        let loaded = Arc::clone(&self.loaded);
        let items = match self.loaded.as_ref() {
            Loaded::F64(dir) => items(&inputs, dir)?,
            Loaded::F32(dir) => items(&inputs, dir)?,
        };
        interruptible(py, move |stop| match loaded.as_ref() {
            Loaded::F64(dir) => explain_in(dir, &items, &options, &stop),
            Loaded::F32(dir) => explain_in(dir, &items, &options, &stop),
        })
    }

    /// The class scores of each input, in input order.
    fn forward(&self, py: Python<'_>, inputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<Vec<f64>>> {
        let loaded = Arc::clone(&self.loaded);
        let items = match self.loaded.as_ref() {
            Loaded::F64(dir) => items(&inputs, dir)?,
            Loaded::F32(dir) => items(&inputs, dir)?,
        };
        interruptible(py, move |stop| match loaded.as_ref() {
            Loaded::F64(dir) => in_slices(&items, &stop, |slice| Ok(scores_batch(&dir.model, slice)?)),
            Loaded::F32(dir) => in_slices(&items, &stop, |slice| Ok(scores_batch(&dir.model, slice)?)),
        })
    }
}

/// Explains `items` with `dir`'s model; the reports as Python dicts, built
/// a slice at a time on the worker thread (taking the GIL for that only).
fn explain_in<T: Float>(
    dir: &ModelDir<T>,
    items: &[ExplainInput],
    options: &Options,
    stop: &AtomicBool,
) -> Result<Vec<Py<PyAny>>, Error> {
    let rules = options.rules.composite::<T>()?;
    let method = options.method.method(&rules, options.steps);
    method.validate().map_err(lrp_app::Error::from)?;
    // Every input is costed before any runs, as `lrp explain` costs each
    // input it reads.
    for (k, item) in items.iter().enumerate() {
        let cost = dir.model.cost(method, item.len());
        options
            .limits
            .check_cost(&format!("input {k}"), cost)
            .map_err(over_cost_limit)?;
    }
    in_slices(items, stop, |slice| {
        let reports = explain_batch(&dir.model, slice, method, options.report)?;
        Python::attach(|py| {
            reports
                .iter()
                .map(|r| {
                    pythonize::pythonize(py, r)
                        .map(Bound::unbind)
                        .map_err(|e| Error::Argument(e.to_string()))
                })
                .collect()
        })
    })
}

/// A cost limit given from Python: a whole number from 1 up.
fn cost_limit(value: &Bound<'_, PyInt>, name: &str) -> Result<u64, Error> {
    match value.extract::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::Argument(format!(
            "{name} = {} is out of range: use a whole number from 1 to {}",
            lrp_io::printable(&value.to_string(), 60),
            u64::MAX
        ))),
    }
}

/// The CLI's refusal of an input over a cost limit, naming the keyword of
/// `Model.explain` that raises it instead of the flag.
fn over_cost_limit(error: lrp_io::Error) -> Error {
    match error {
        lrp_io::Error::Cost {
            input,
            kind,
            needed,
            limit,
        } => {
            let keyword = match kind {
                lrp_io::LimitKind::Work => "max_work",
                _ => "max_memory",
            };
            Error::Argument(format!(
                "{input}: explaining it needs about {needed} {kind}, more than the {limit} allowed (raise the limit with {keyword}=)"
            ))
        }
        other => other.into(),
    }
}

/// How often a waiting call runs Python's signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs `work` on a worker thread while this thread waits without the
/// GIL, running Python's signal handlers every [`SIGNAL_CHECK`]. A handler
/// that raises (Ctrl-C's `KeyboardInterrupt`) ends the wait with its
/// exception at once and raises the flag `work` is given, which it checks
/// between slices; the worker then finishes its slice and stops, its
/// result dropped. `work` owns what it reads, since it may outlive the call.
fn interruptible<R: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce(Arc<AtomicBool>) -> Result<R, Error> + Send + 'static,
) -> PyResult<R> {
    let stop = Arc::new(AtomicBool::new(false));
    let (send, mut receive) = mpsc::channel();
    let flag = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("lrp-explain".into())
        .spawn(move || {
            // The receiver is gone when the caller was interrupted.
            let _ = send.send(guarded(|| work(flag)));
        })
        .map_err(Error::Thread)?;
    loop {
        // `Receiver` is not `Sync`: it moves into the wait and back.
        let (received, back) = py.detach(move || (receive.recv_timeout(SIGNAL_CHECK), receive));
        receive = back;
        match received {
            Ok(result) => return Ok(result?),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    stop.store(true, Ordering::Relaxed);
                    return Err(interrupt);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // `guarded` catches panics, so the worker always sends.
                let line = "internal error (the worker thread ended without a result); please report this";
                return Err(Error::Panic(line.into()).into());
            }
        }
    }
}

/// How long one slice of a batch should take: the worker checks its stop
/// flag this often, so an interrupted call stops using the cores soon.
const SLICE_TIME: Duration = Duration::from_millis(250);

/// The most inputs in one slice: as `lrp explain`'s window.
const MAX_SLICE: usize = 4096;

/// Runs `each` on consecutive slices of `items` (in input order, so that
/// the first failure is still the first in input order) and joins their
/// results, stopping early when `stop` is raised. Slices start at one input
/// per core and double, or halve, towards [`SLICE_TIME`] each. Explaining a
/// slice gives the same numbers as explaining the whole batch: a packed
/// batch computes each sequence as if it were alone.
fn in_slices<R>(
    items: &[ExplainInput],
    stop: &AtomicBool,
    mut each: impl FnMut(&[ExplainInput]) -> Result<Vec<R>, Error>,
) -> Result<Vec<R>, Error> {
    let mut done = Vec::with_capacity(items.len());
    let mut size = rayon::current_num_threads().max(1);
    let mut rest = items;
    while !rest.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let (slice, after) = rest.split_at(size.min(rest.len()));
        let started = Instant::now();
        done.extend(each(slice)?);
        let took = started.elapsed();
        if took < SLICE_TIME / 2 {
            size = (size * 2).min(MAX_SLICE);
        } else if took > SLICE_TIME {
            size = (size / 2).max(1);
        }
        rest = after;
    }
    Ok(done)
}

/// `steps` of integrated gradients as a count, or the models' message for
/// a number of steps out of range (a negative number, or one past any
/// `usize`, is refused whatever the method, as `lrp explain --steps -1`).
fn ig_steps(steps: &Bound<'_, PyInt>) -> Result<usize, Error> {
    steps.extract::<usize>().map_err(|_| {
        Error::Argument(format!(
            "integrated gradients: {} steps is out of range: use 1 to {}",
            lrp_io::printable(&steps.to_string(), 60),
            lrp_models::Method::<f64>::MAX_IG_STEPS
        ))
    })
}

/// The inputs as the CLI's: text tokenised and looked up in the model's
/// vocabulary, arrays `[T, E]` read through the buffer protocol.
fn items<T: Float>(inputs: &[Bound<'_, PyAny>], dir: &ModelDir<T>) -> Result<Vec<ExplainInput>, Error> {
    let limits = Limits::default();
    inputs
        .iter()
        .enumerate()
        .map(|(k, input)| {
            if let Ok(text) = input.cast::<PyString>() {
                let text = text
                    .to_str()
                    .map_err(|_| Error::Argument(format!("input {k}: not valid Unicode text")))?;
                return Ok(ExplainInput::text(dir.vocab()?, &format!("input {k}"), text, &limits)?);
            }
            let buffer = PyBuffer::<f64>::get(input)
                .map_err(|_| Error::Argument(format!("input {k}: neither text nor an array of float64")))?;
            let shape = buffer.shape();
            if shape.len() != 2 {
                return Err(Error::Argument(format!(
                    "input {k}: an array [T, E] has 2 dimensions, not {}",
                    shape.len()
                )));
            }
            let (t, e) = (shape[0], shape[1]);
            let values = buffer
                .to_vec(input.py())
                .map_err(|err| Error::Argument(format!("input {k}: {err}")))?;
            // Row-major [T, E] is column-major [E, T]: column t is position t.
            Ok(ExplainInput::vectors(None, DMatrix::from_vec(e, t, values)))
        })
        .collect()
}

/// Tensors handed over from Python (a name, then an object with the
/// buffer protocol holding float64), read into lrp's tensors.
fn tensors_from_buffers(tensors: &[(String, Bound<'_, PyAny>)]) -> Result<Vec<(String, Tensor)>, Error> {
    tensors
        .iter()
        .map(|(name, array)| {
            let buffer = PyBuffer::<f64>::get(array)
                .map_err(|_| Error::Argument(format!("tensor {name}: not an array of float64")))?;
            let values = buffer
                .to_vec(array.py())
                .map_err(|e| Error::Argument(format!("tensor {name}: {e}")))?;
            let shape = buffer.shape().to_vec();
            Ok((name.clone(), Tensor { shape, values }))
        })
        .collect()
}

/// Writes a model directory at `dir`, as `lrp import` writes one: its
/// `config.json` (the text given), its weights (`tensors`, float64 arrays
/// with the buffer protocol, written in float64 when `double`, else in
/// float32) and its vocabulary (the text given, if any). Every file is
/// staged beside its target and put in place only when all are written,
/// `config.json` last; the files' paths are returned. The model was
/// checked when it was built (`NativeModel.from_tensors`).
#[pyfunction]
#[pyo3(signature = (dir, config, tensors, vocab, double))]
fn save_model_dir(
    py: Python<'_>,
    dir: PathBuf,
    config: &str,
    tensors: Vec<(String, Bound<'_, PyAny>)>,
    vocab: Option<String>,
    double: bool,
) -> PyResult<Vec<PathBuf>> {
    let config: ModelConfig = lrp_io::parse_config(&dir.join("config.json"), config.as_bytes()).map_err(Error::from)?;
    let tensors = tensors_from_buffers(&tensors)?;
    let files = py.detach(|| {
        guarded(|| {
            let staged = lrp_io::stage_model_dir(&dir, &config, &tensors, double, vocab.as_deref().map(str::as_bytes))?;
            Ok(staged.commit()?)
        })
    })?;
    Ok(files)
}

/// Runs `f`, turning a panic into [`Error::Panic`].
fn guarded<R>(f: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(Error::Panic(internal_error(panic.as_ref()))))
}

/// The module `lrp_rnn._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(save_model_dir, m)?)?;
    Ok(())
}
