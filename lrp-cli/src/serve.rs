//! `lrp serve`: the explorer in the browser (`docs/serve.md`). The server
//! itself is the `lrp-serve` crate; the command names the models, asks
//! `model-info` to describe each, and stops on Ctrl-C.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use lrp_serve::{ModelSpec, ServeOptions, Server};

use crate::{CliError, InfoFormat, LimitArgs, ModelInfoArgs, Terminal, ThreadArgs};

/// Arguments of `lrp serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A model to serve, `DIR` or `NAME=DIR` (repeat for several; the first is the default); without one, the built-in SST model as `sst-default`.
    #[arg(long = "model", value_name = "[NAME=]DIR")]
    pub models: Vec<String>,
    /// Texts for the corpus view: JSON Lines `{"text": ..., "label": ...}`, explained with the first model at start.
    #[arg(long, value_name = "FILE.jsonl")]
    pub corpus: Option<PathBuf>,
    /// The address to listen on; anything but loopback lets other machines in, and the server says so.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (0: a free one; the URL printed says which).
    #[arg(long, value_name = "N", default_value_t = 8000)]
    pub port: u16,
    /// Limits on untrusted input (the model files, the corpus, and every request).
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Worker threads that explain.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

pub(crate) fn run(args: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), CliError> {
    let limits = args.limits.limits();
    let mut models = Vec::with_capacity(args.models.len());
    for given in &args.models {
        let (name, dir) = name_and_dir(given);
        models.push(ModelSpec {
            description: describe(Some(dir.clone()), &args.limits)?,
            name,
            dir: Some(dir),
        });
    }
    if models.is_empty() {
        models.push(ModelSpec {
            name: "sst-default".into(),
            dir: None,
            description: describe(None, &args.limits)?,
        });
    }
    let options = ServeOptions {
        models,
        corpus: args.corpus.clone(),
        limits,
        host: args.host,
        port: args.port,
        threads: args.threads.threads,
    };
    let server = Server::load(options).map_err(serve_error)?;
    server.run(out, err, interrupted).map_err(serve_error)?;
    writeln!(err, "lrp serve: stopped")?;
    Ok(())
}

/// A model's name and directory from `NAME=DIR` or `DIR` (named after
/// its last component).
fn name_and_dir(given: &str) -> (String, PathBuf) {
    if let Some((name, dir)) = given.split_once('=') {
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if !name.is_empty() && name.chars().all(plain) {
            return (name.to_string(), PathBuf::from(dir));
        }
    }
    let dir = PathBuf::from(given);
    let name = dir
        .file_name()
        .map_or_else(|| given.to_string(), |n| n.to_string_lossy().into_owned());
    (name, dir)
}

/// `lrp model-info`'s text view of a model directory (or the built-in model).
fn describe(dir: Option<PathBuf>, limits: &LimitArgs) -> Result<String, CliError> {
    let args = ModelInfoArgs {
        dir,
        config: None,
        format: InfoFormat::Text,
        limits: limits.clone(),
    };
    let mut text = Vec::new();
    crate::model_info::run(&args, &mut text, Terminal::default())?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM: the server then
/// finishes the requests under way and stops. The handlers are installed
/// when this is called (in the server's runtime), before the URL is out.
fn interrupted() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
        async move {
            match signals {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                // Without handlers the default actions stop the server.
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The server's failures as the command's.
fn serve_error(e: lrp_serve::Error) -> CliError {
    match e {
        lrp_serve::Error::App(e) => e,
        other => CliError::Usage(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_named_by_their_directory_or_explicitly() {
        assert_eq!(name_and_dir("a/b/sst"), ("sst".to_string(), PathBuf::from("a/b/sst")));
        assert_eq!(name_and_dir("mine=a/b"), ("mine".to_string(), PathBuf::from("a/b")));
        // An `=` in a path whose first part is no plain name stays a path.
        assert_eq!(name_and_dir("x/y=z"), ("y=z".to_string(), PathBuf::from("x/y=z")));
    }
}
