//! The integration tests of lrp, one binary split by topic.

mod attention;
mod bad_input;
mod batching;
mod chain;
mod check;
mod cli;
mod conservation;
mod conv;
mod docs;
mod faithfulness;
mod frameworks;
mod golden;
mod groundtruth;
mod heads;
mod min_cells;
mod model_info;
mod oracle;
mod parity;
mod robustness;
mod rules;
mod seq2seq;
mod stages;
mod streaming;
mod text;
mod untrusted;
mod whitebox;
