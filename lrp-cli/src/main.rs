//! The `lrp` binary: see the `lrp_cli` library for everything it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    // `run` reports a panic as one line of its own; keep the default hook's
    // message and backtrace note out of stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let code = lrp_cli::run_with(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
        lrp_cli::Terminal::detect(),
    );
    ExitCode::from(code)
}
