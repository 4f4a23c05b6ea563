//! Integration tests: one binary, a module per area. Helpers: `common` (service, isolated
//! commands), `tree` (scan trees and runs), `util` (git repos, reports).

mod browser;
mod common;
mod documents;
mod integrations;
mod scan;
mod service;
mod sources;
mod tree;
mod util;
mod verify;
