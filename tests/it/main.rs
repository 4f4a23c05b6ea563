//! Integration tests: one binary, a module per area; helpers in `common`.

mod common;
mod service;
