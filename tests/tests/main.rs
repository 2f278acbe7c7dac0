//! The integration tests of lrp, one binary split by topic.

mod golden;
