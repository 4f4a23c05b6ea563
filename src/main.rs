//! The `offkey` binary: parse arguments, run, map the outcome to the exit code
//! (0 clean, 1 findings, 2 error).

use std::process::ExitCode;

fn main() -> ExitCode {
    offkey::cli::main()
}
