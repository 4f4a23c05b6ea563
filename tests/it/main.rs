//! Integration tests: one binary, a module per area; helpers in `common` and `util`.

mod common;
mod integrations;
mod service;
mod sources;
mod util;
mod verify;
