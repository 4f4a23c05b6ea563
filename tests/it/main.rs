//! Integration tests: one binary, a module per area.

mod integrations;
mod sources;
mod util;
