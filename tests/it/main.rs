mod common;
mod scan;
