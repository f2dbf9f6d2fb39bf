//! `cargo run --features dist --example dist -- DIR`: writes xsr's man pages into
//! `DIR/man/man1` and its bash, zsh and fish completions into `DIR/completions` (what
//! `cargo xtask dist` runs, with DIR `target/dist`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: dist DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match xsr::dist::write(&dir) {
        Ok(written) => {
            for path in written.man.iter().chain(&written.completions) {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dist: cannot write into {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}
