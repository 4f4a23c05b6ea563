//! Integration tests: one binary, a module per area. Helpers: `common` (service, isolated
//! commands), `tree` (scan trees and runs), `util` (git repos, reports).

mod action;
mod ai_history;
mod browser;
mod common;
mod documents;
mod faults;
mod fuzz_replay;
mod github;
mod history;
mod hostile;
mod images;
mod integrations;
mod leaks;
mod network;
mod postgres;
mod properties;
mod scan;
mod screens;
mod service;
mod sources;
mod tree;
mod util;
mod verify;
