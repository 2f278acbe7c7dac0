//! The integration tests of lrp, one binary split by topic.

mod golden;
mod parity;
mod conservation;
mod attention;
mod cli;
