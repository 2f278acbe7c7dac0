//! `lrp serve`: the explorer in the browser and the JSON API behind it.
//!
//! The server holds the models (and the corpus) named at start, and the
//! last few corpora opened from the page: a request names a model by its
//! name, never by a path.
//! It speaks HTTP/1 through axum on a small tokio runtime; every
//! explanation runs on a rayon worker pool (the engine's, where
//! [`lrp_app::explain_batch`] spreads its work), never on the I/O threads,
//! behind a bounded queue. `POST /api/explain` answers with exactly the
//! JSON line `lrp explain --format json` prints for the same options,
//! because both write it with [`lrp_app::Report::json_line`] after the
//! same checks ([`lrp_app::RuleOptions::composite_for`],
//! [`lrp_app::MethodName::checked_method`]). `docs/serve.md` is the
//! manual: the endpoints, their keys, errors and limits.
//!
//! Serving the built-in model on a free port of loopback, then stopping:
//!
//! ```
//! use lrp_serve::{ModelSpec, Server, ServeOptions};
//!
//! let options = ServeOptions {
//!     models: vec![ModelSpec { name: "sst".into(), dir: None, description: String::new() }],
//!     ..ServeOptions::default()
//! };
//! let server = Server::load(options)?;
//! let (url, stop) = server.spawn_for_tests()?;
//! assert!(url.starts_with("http://127.0.0.1:"));
//! stop();
//! # Ok::<(), lrp_serve::Error>(())
//! ```

#![deny(missing_docs)]

mod api;
mod assets;
mod corpus;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use lrp_core::Float;
use lrp_io::{Limits, ModelDir, Seq2SeqDir};

pub use corpus::{MAX_CORPUS_ROWS, MAX_UPLOADED};

/// The largest request body accepted, in bytes (a request is a JSON
/// object of options and one text or one sequence of vectors).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The largest corpus file the page may open, in bytes (and never more
/// than the limit on data files); 10,000 sentences take about 1.2 MB.
pub const MAX_UPLOAD_BYTES: usize = 16 << 20;

/// Explanations waiting or running at once, at most; a request beyond
/// them is refused (503) rather than queued without bound.
pub const MAX_QUEUED: usize = 64;

/// Everything starting the server can fail with: one line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Loading a model or reading the corpus.
    #[error(transparent)]
    App(#[from] lrp_app::Error),
    /// A model or corpus named at start that cannot be served.
    #[error("{0}")]
    Usage(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// Starting the runtime or its worker threads, or writing the URL.
    #[error("cannot run the server: {0}")]
    Runtime(#[from] std::io::Error),
}

/// A model named at start.
#[derive(Debug, Clone, Default)]
pub struct ModelSpec {
    /// The name requests use (`"model": NAME`).
    pub name: String,
    /// The model directory; `None` is the built-in SST model.
    pub dir: Option<PathBuf>,
    /// What `lrp model-info` says about it (shown by the model picker).
    pub description: String,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The models, in the picker's order; the first is the default.
    pub models: Vec<ModelSpec>,
    /// A JSON Lines file of inputs for the corpus view.
    pub corpus: Option<PathBuf>,
    /// The limits on what files and requests may make the server read
    /// and compute.
    pub limits: Limits,
    /// The address to listen on (loopback unless asked).
    pub host: IpAddr,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// Worker threads that explain (default: one per core).
    pub threads: Option<usize>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            corpus: None,
            limits: Limits::default(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            threads: None,
        }
    }
}

/// A model loaded for serving, in both precisions (requests choose one).
pub(crate) enum Loaded {
    /// A classifier or per-step model.
    Classifier(Box<Precisions<ModelDir<f64>, ModelDir<f32>>>),
    /// An encoder–decoder.
    Seq2Seq(Box<Precisions<Seq2SeqDir<f64>, Seq2SeqDir<f32>>>),
}

/// One model in each precision.
pub(crate) struct Precisions<A, B> {
    pub f64: A,
    pub f32: B,
}

/// A served model: its name, description and weights.
pub(crate) struct Served {
    pub name: String,
    pub description: String,
    pub loaded: Loaded,
}

/// What every handler shares.
pub(crate) struct State {
    pub models: Vec<Served>,
    pub limits: Limits,
    pub pool: rayon::ThreadPool,
    pub queue: Arc<tokio::sync::Semaphore>,
    pub corpus: Option<Arc<corpus::Corpus>>,
    pub uploads: std::sync::Mutex<corpus::Uploads>,
}

/// The server, its models loaded, not yet listening.
pub struct Server {
    state: Arc<State>,
    host: IpAddr,
    port: u16,
}

fn load_classifier<T: Float>(dir: Option<&std::path::Path>, limits: &Limits) -> Result<ModelDir<T>, Error> {
    Ok(lrp_app::load_model::<T>(dir, limits)?)
}

impl Server {
    /// Loads the models (each in f64 and f32) and the corpus, and starts
    /// the worker pool. Without models, the built-in one is served as
    /// `sst-default`.
    pub fn load(mut options: ServeOptions) -> Result<Self, Error> {
        if options.models.is_empty() {
            options.models.push(ModelSpec {
                name: "sst-default".into(),
                dir: None,
                description: String::new(),
            });
        }
        let limits = options.limits;
        let mut models: Vec<Served> = Vec::with_capacity(options.models.len());
        for spec in options.models {
            if models.iter().any(|m| m.name == spec.name) {
                return Err(Error::Usage(format!(
                    "two models are named {:?}: name them NAME=DIR",
                    spec.name
                )));
            }
            let loaded = match &spec.dir {
                Some(dir) if lrp_io::is_seq2seq(dir, &limits) => Loaded::Seq2Seq(Box::new(Precisions {
                    f64: lrp_io::load_seq2seq(dir, &limits).map_err(lrp_app::Error::from)?,
                    f32: lrp_io::load_seq2seq(dir, &limits).map_err(lrp_app::Error::from)?,
                })),
                dir => Loaded::Classifier(Box::new(Precisions {
                    f64: load_classifier(dir.as_deref(), &limits)?,
                    f32: load_classifier(dir.as_deref(), &limits)?,
                })),
            };
            models.push(Served {
                name: spec.name,
                description: spec.description,
                loaded,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.unwrap_or(0))
            .thread_name(|k| format!("lrp-explain-{k}"))
            .build()
            .map_err(|e| Error::Runtime(std::io::Error::other(e)))?;
        let corpus = match &options.corpus {
            Some(path) => Some(Arc::new(
                pool.install(|| corpus::Corpus::load(path, &models[0], &limits))?,
            )),
            None => None,
        };
        Ok(Self {
            state: Arc::new(State {
                models,
                limits,
                pool,
                queue: Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED)),
                corpus,
                uploads: std::sync::Mutex::new(corpus::Uploads::new()),
            }),
            host: options.host,
            port: options.port,
        })
    }

    /// Listens, writes `http://HOST:PORT/` and a line break to `out` once
    /// ready (a warning to `err` first when the host is not loopback),
    /// and serves until the future `stop` makes resolves (the command
    /// passes Ctrl-C); requests under way are finished first. `stop` is
    /// called in the runtime before the URL is written, so that a signal
    /// handler it installs is in place by the time anyone knows the URL.
    pub fn run<F>(self, out: &mut dyn Write, err: &mut dyn Write, stop: impl FnOnce() -> F) -> Result<(), Error>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lrp-serve-io")
            .enable_all()
            .build()?;
        let stop = {
            let _inside = runtime.enter();
            stop()
        };
        let addr = SocketAddr::new(self.host, self.port);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr()?;
        if !self.host.is_loopback() {
            writeln!(
                err,
                "warning: lrp serve listens on {local}, reachable from other machines: anyone who can reach it can use the models it serves"
            )?;
        }
        writeln!(out, "{}", url_of(local))?;
        out.flush()?;
        let app = api::router(self.state, api::allowed_hosts(local));
        runtime.block_on(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await })?;
        Ok(())
    }

    /// Serves on a free port of loopback from a thread of its own, for
    /// tests and examples: returns the URL and a function that stops the
    /// server and waits for it.
    pub fn spawn_for_tests(self) -> Result<(String, impl FnOnce()), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut out = UrlSink(url_tx);
            let result = self.run(&mut out, &mut std::io::sink(), || async move {
                let _ = rx.await;
            });
            if let Err(e) = result {
                let _ = out.0.send(Err(e));
            }
        });
        let url = url_rx
            .recv()
            .map_err(|_| Error::Usage("the server stopped before listening".into()))??;
        Ok((url, move || {
            let _ = tx.send(());
            let _ = thread.join();
        }))
    }
}

/// The URL a browser opens for `addr` (IPv6 in brackets).
fn url_of(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("http://{}:{}/", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("http://[{}]:{}/", a.ip(), a.port()),
    }
}

/// Where [`Server::spawn_for_tests`] reads the URL the server writes.
struct UrlSink(std::sync::mpsc::Sender<Result<String, Error>>);

impl Write for UrlSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf).trim().to_string();
        if !line.is_empty() {
            let _ = self.0.send(Ok(line));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
