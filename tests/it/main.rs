//! Integration tests: one binary, a module per area; helpers in `common`.

mod browser;
mod common;
mod service;
